// An independent gRPC client for the collector: grpc-js, which has its own HTTP/2 and TLS (no
// gRPC C core, unlike every Python, Ruby or PHP client), reading the contract from protos/
// with @grpc/proto-loader, as a team writing its own agent would. The keys and requests it
// sends are made by the openssl CLI (tests/e2e/test_interop_node_enroll.py); what the contract
// asks a device key to sign is built and signed here (proof.js). One call per run; prints one
// JSON line: {"ok": true, ...the answer} or {"code": N, "name": "...", "details": "..."}.
//
//   node client.js PROTOS ADDRESS CA [CERT KEY] CALL ARGUMENT_JSON
//
// ARGUMENT_JSON may be @FILE: the JSON is read from FILE (a message past the command line's
// limit).
//
// CALL is one of:
//   Pin          the collector's CA, found by its fingerprint in the chain the enrollment
//                port presents (read with Node's TLS, trusting nothing yet): {"fingerprint":
//                "sha256:..."} gives {"ok": true, "ca_pem": ..., "protocol": "TLSv1.3",
//                "cipher": ..., "alpn": "h2"}. CA, CERT and KEY are "".
//   Enroll       over server-authenticated TLS (CERT and KEY ""): the argument is the
//                EnrollRequest.
//   Report, ReportBatch, Renew   over mutual TLS with CERT and KEY.
//   Reestablish  on the enrollment port, without a client certificate: CERT is the device's
//                last certificate and KEY its key, which signs the proof the contract defines;
//                the argument holds csr_pem, and may set signed_at (seconds; default now),
//                dsa_encoding ("der", the default, or "ieee-p1363": r||s) and signer ("node",
//                the default, or "openssl": `openssl dgst -sha256 -sign`).
//   Health       grpc.health.v1 Check on the enrollment port, without a client certificate.
//   Admin        Admin/Run on the administration port, its credential taken from
//                DEVPOSTURE_ADMIN_CREDENTIAL, never from the command line.
//
// The environment may set:
//   DEVPOSTURE_GRPC_COMPRESSION=gzip   every request sent gzip-compressed;
//   DEVPOSTURE_DEADLINE_MS             the call's deadline (20000 by default);
//   DEVPOSTURE_CALL_ON_STDIN=1         connect first, print {"connected": true}, and make the
//                                      call only once a line arrives on standard input (so a
//                                      test can freeze the collector between the two);
//   DEVPOSTURE_TLS_MIN, DEVPOSTURE_TLS_MAX   the TLS versions Node may speak ("TLSv1.2", ...),
//                                      through a secure context of the client's own;
//   DEVPOSTURE_TLS_CIPHERS             that context's OpenSSL cipher string.
'use strict';
const fs = require('fs');
const tls = require('tls');
const grpc = require('@grpc/grpc-js');
const loader = require('@grpc/proto-loader');
const {reestablishRequest} = require('./proof');

const [protos, address, ca, cert, key, call, argument] = process.argv.slice(2);
const options = {includeDirs: [protos], keepCase: true, longs: String, enums: String,
                 defaults: false, oneofs: true};
const deadlineMs = Number(process.env.DEVPOSTURE_DEADLINE_MS || 20000);
// DEVPOSTURE_GRPC_COMPRESSION=gzip: every request compressed, as a client may choose to.
const channelOptions = process.env.DEVPOSTURE_GRPC_COMPRESSION === 'gzip'
  ? {'grpc.default_compression_algorithm': 2} : {};

function credentials(withClientCertificate) {
  const mine = withClientCertificate && cert;
  const {DEVPOSTURE_TLS_MIN: minVersion, DEVPOSTURE_TLS_MAX: maxVersion,
         DEVPOSTURE_TLS_CIPHERS: ciphers} = process.env;
  if (minVersion || maxVersion || ciphers) {  // Node's own TLS settings, through grpc-js
    const context = tls.createSecureContext({
      ca: fs.readFileSync(ca), minVersion, maxVersion, ciphers,
      ...(mine ? {key: fs.readFileSync(key), cert: fs.readFileSync(cert)} : {}),
    });
    return grpc.credentials.createFromSecureContext(context);
  }
  return mine
    ? grpc.credentials.createSsl(fs.readFileSync(ca), fs.readFileSync(key), fs.readFileSync(cert))
    : grpc.credentials.createSsl(fs.readFileSync(ca));
}

function done(err, answer) {
  if (err) {
    console.log(JSON.stringify({code: err.code, name: grpc.status[err.code], details: err.details}));
  } else {
    console.log(JSON.stringify(Object.assign({ok: true}, answer)));
  }
  process.exit(0);  // standard input, when read (DEVPOSTURE_CALL_ON_STDIN), would keep it running
}

// The call, once the client is connected when asked (DEVPOSTURE_CALL_ON_STDIN).
function whenReady(client, send) {
  if (process.env.DEVPOSTURE_CALL_ON_STDIN !== '1') {
    send({deadline: Date.now() + deadlineMs});
    return;
  }
  client.waitForReady(Date.now() + 20000, (err) => {
    if (err) return done({code: grpc.status.UNAVAILABLE, details: err.message});
    console.log(JSON.stringify({connected: true}));
    process.stdin.once('data', () => send({deadline: Date.now() + deadlineMs}));
  });
}

// The chain the enrollment port presents, read without trusting it, and in it the certificate
// whose SHA-256 is the fingerprint IT gave: the CA to trust from now on. Node's TLS settings
// (DEVPOSTURE_TLS_*) apply, and the answer says what the handshake agreed.
function pin(fingerprint) {
  const colon = address.lastIndexOf(':');
  const host = address.slice(0, colon);
  const {DEVPOSTURE_TLS_MIN: minVersion, DEVPOSTURE_TLS_MAX: maxVersion,
         DEVPOSTURE_TLS_CIPHERS: ciphers} = process.env;
  const socket = tls.connect({host, port: Number(address.slice(colon + 1)), servername: host,
                              ALPNProtocols: ['h2'], rejectUnauthorized: false, minVersion,
                              maxVersion, ciphers}, () => {
    const wanted = fingerprint.replace(/^sha256:/, '').toLowerCase();
    const agreed = {protocol: socket.getProtocol(), cipher: socket.getCipher().name,
                    alpn: socket.alpnProtocol || ''};
    const seen = [];
    for (let c = socket.getPeerCertificate(true); c && c.raw; c = c.issuerCertificate) {
      const found = c.fingerprint256.replace(/:/g, '').toLowerCase();
      if (seen.includes(found)) break;  // a self-signed certificate is its own issuer
      seen.push(found);
      if (found === wanted) {
        const body = c.raw.toString('base64').match(/.{1,64}/g).join('\n');
        socket.destroy();
        return done(null, {...agreed, ca_pem:
          `-----BEGIN CERTIFICATE-----\n${body}\n-----END CERTIFICATE-----\n`});
      }
    }
    socket.destroy();
    done({code: grpc.status.UNAUTHENTICATED,
          details: `no certificate with fingerprint ${fingerprint} in the chain (${seen})`});
  });
  socket.on('error', (err) => done({code: grpc.status.UNAVAILABLE,
                                    details: `${err.code || ''}: ${err.message}`}));
}

const text = argument || '{}';
const request = JSON.parse(text.startsWith('@') ? fs.readFileSync(text.slice(1), 'utf8') : text);
if (call === 'Pin') {
  pin(request.fingerprint);
} else if (call === 'Health') {
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
  const client = new pkg.Health(address, credentials(false), channelOptions);
  whenReady(client, (deadline) => client.Check(request, deadline, done));
} else if (call === 'Admin') {
  const pkg = grpc.loadPackageDefinition(
    loader.loadSync('devposture/v1/admin.proto', options)).devposture.v1;
  const metadata = new grpc.Metadata();
  metadata.set('authorization', `Bearer ${process.env.DEVPOSTURE_ADMIN_CREDENTIAL || ''}`);
  const client = new pkg.Admin(address, credentials(false), channelOptions);
  whenReady(client, (deadline) => client.Run(request, metadata, deadline, done));
} else {
  const definition = loader.loadSync('devposture/v1/devposture.proto', options);
  const pkg = grpc.loadPackageDefinition(definition).devposture.v1;
  // Reestablish goes to the enrollment port: its certificate is proof, not TLS credentials.
  const mutual = call !== 'Enroll' && call !== 'Reestablish';
  const message = call === 'Reestablish'
    ? reestablishRequest(fs.readFileSync(cert, 'ascii'), key, request) : request;
  const client = new pkg.Collector(address, credentials(mutual), channelOptions);
  whenReady(client, (deadline) => client[call](message, deadline, done));
}
