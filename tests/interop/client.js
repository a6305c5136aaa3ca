// An independent gRPC client for the collector: grpc-js, which has its own HTTP/2 and TLS (no
// gRPC C core, unlike every Python, Ruby or PHP client), reading the contract from protos/
// with @grpc/proto-loader, as a team writing its own tool would. One call per run; prints one
// JSON line: {"ok": true, ...the answer} or {"code": N, "name": "...", "details": "..."}.
//
//   node client.js PROTOS ADDRESS CA [CERT KEY] CALL ARGUMENT_JSON
//
// CALL is Report, ReportBatch, Health (grpc.health.v1 Check on the enrollment port, without
// a client certificate: give "" for CERT and KEY) or Admin (Admin/Run on the administration
// port, its credential taken from DEVPOSTURE_ADMIN_CREDENTIAL, never from the command line).
// DEVPOSTURE_GRPC_COMPRESSION=gzip sends the request gzip-compressed.
'use strict';
const fs = require('fs');
const grpc = require('@grpc/grpc-js');
const loader = require('@grpc/proto-loader');

const [protos, address, ca, cert, key, call, argument] = process.argv.slice(2);
const options = {includeDirs: [protos], keepCase: true, longs: String, enums: String,
                 defaults: false, oneofs: true};
const credentials = cert
  ? grpc.credentials.createSsl(fs.readFileSync(ca), fs.readFileSync(key), fs.readFileSync(cert))
  : grpc.credentials.createSsl(fs.readFileSync(ca));
const deadline = {deadline: Date.now() + 20000};
// DEVPOSTURE_GRPC_COMPRESSION=gzip: every request compressed, as a client may choose to.
const channelOptions = process.env.DEVPOSTURE_GRPC_COMPRESSION === 'gzip'
  ? {'grpc.default_compression_algorithm': 2} : {};

function done(err, answer) {
  if (err) {
    console.log(JSON.stringify({code: err.code, name: grpc.status[err.code], details: err.details}));
  } else {
    console.log(JSON.stringify(Object.assign({ok: true}, answer)));
  }
}

if (call === 'Health') {
  // The standard health service, its contract written out here (it is not in protos/).
  const health = `syntax = "proto3"; package grpc.health.v1;
    message HealthCheckRequest { string service = 1; }
    message HealthCheckResponse { enum ServingStatus { UNKNOWN = 0; SERVING = 1;
      NOT_SERVING = 2; SERVICE_UNKNOWN = 3; } ServingStatus status = 1; }
    service Health { rpc Check(HealthCheckRequest) returns (HealthCheckResponse); }`;
  const file = require('path').join(require('os').tmpdir(), `health-${process.pid}.proto`);
  fs.writeFileSync(file, health);
  const pkg = grpc.loadPackageDefinition(loader.loadSync(file, options)).grpc.health.v1;
  fs.unlinkSync(file);
  new pkg.Health(address, credentials, channelOptions).Check(JSON.parse(argument), deadline, done);
} else if (call === 'Admin') {
  const pkg = grpc.loadPackageDefinition(
    loader.loadSync('devposture/v1/admin.proto', options)).devposture.v1;
  const metadata = new grpc.Metadata();
  metadata.set('authorization', `Bearer ${process.env.DEVPOSTURE_ADMIN_CREDENTIAL || ''}`);
  new pkg.Admin(address, credentials, channelOptions).Run(JSON.parse(argument), metadata, deadline,
                                                         done);
} else {
  const definition = loader.loadSync('devposture/v1/devposture.proto', options);
  const pkg = grpc.loadPackageDefinition(definition).devposture.v1;
  new pkg.Collector(address, credentials, channelOptions)[call](JSON.parse(argument), deadline,
                                                                 done);
}
