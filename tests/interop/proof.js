// The proof a ReestablishRequest carries, built from the contract's words alone
// (protos/devposture/v1/devposture.proto, ReestablishRequest.signature) with Node's crypto or
// the openssl CLI: never with the project's Python, so that the two readings of the contract
// are independent.
'use strict';
const crypto = require('crypto');
const {execFileSync} = require('child_process');

// The device id, as the contract defines it: the first 128 bits of SHA-256 over the key's
// SubjectPublicKeyInfo, in hex.
function deviceId(certificate) {
  const spki = certificate.publicKey.export({type: 'spki', format: 'der'});
  return crypto.createHash('sha256').update(spki).digest('hex').slice(0, 32);
}

// ECDSA-SHA256 over `payload` with the key in `keyFile`: Node's DER by default, r||s when
// asked ("ieee-p1363", what WebCrypto and .NET give), or the openssl CLI's DER.
function sign(payload, keyFile, {signer = 'node', dsa_encoding: dsaEncoding = 'der'}) {
  if (signer === 'openssl') {
    return execFileSync('openssl', ['dgst', '-sha256', '-sign', keyFile], {input: payload});
  }
  const key = crypto.createPrivateKey(require('fs').readFileSync(keyFile));
  return crypto.sign('sha256', payload, {key, dsaEncoding});
}

// A ReestablishRequest for the certificate `certificatePem` (the device's last one) and the
// request `csr_pem` over the same key, signed now (or at `signed_at`, seconds).
function reestablishRequest(certificatePem, keyFile, argument) {
  const certificate = new crypto.X509Certificate(certificatePem);
  // Node prints the serial as its bytes in uppercase hex ("055A8C..."); the contract takes it
  // in lowercase, and the collector takes this spelling too.
  const serial = certificate.serialNumber.toLowerCase();
  const signedAt = argument.signed_at || Math.floor(Date.now() / 1000);
  const csrDigest = crypto.createHash('sha256').update(argument.csr_pem, 'ascii').digest('hex');
  const payload = Buffer.from(['devposture-reestablish/v1', deviceId(certificate), serial,
                               String(signedAt), csrDigest].join('\n'), 'ascii');
  return {
    certificate_pem: certificatePem,
    csr_pem: argument.csr_pem,
    signed_at: {seconds: String(signedAt), nanos: 0},
    signature: sign(payload, keyFile, argument),
    agent_version: argument.agent_version || 'interop-node',
  };
}

module.exports = {deviceId, reestablishRequest};
