// Transport settings of the WebRtcEndpoint, seen from outside:
// - DTLS certificates (spec §10.7, §11.3): a configured pemCertificateRSA
//   and the generated ECDSA certificate are the ones the browser's
//   handshake sees, and the answer's fingerprint is theirs. Media flows with
//   both, so the fingerprint and the handshake agree.
// - qosDscp: the packets the server sends carry the DSCP codepoint in their
//   IP header (captured with tcpdump on the loopback interface).
'use strict';

const test = require('node:test');
const assert = require('node:assert/strict');
const crypto = require('node:crypto');
const { execFile, execFileSync, spawnSync } = require('node:child_process');
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');
const h = require('./lib/harness');
const { call, waitFor, negotiate, pageStats } = h;

/** A self-signed RSA certificate and its key, in one PEM (openssl CLI). */
function rsaPem() {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'kms-pem-'));
  const key = path.join(dir, 'key.pem');
  const cert = path.join(dir, 'cert.pem');
  execFileSync('openssl', ['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', key, '-out', cert,
    '-subj', '/CN=kurento-rs-test', '-days', '2'], { stdio: 'ignore' });
  const pem = fs.readFileSync(cert, 'utf8') + fs.readFileSync(key, 'utf8');
  fs.rmSync(dir, { recursive: true, force: true });
  return pem;
}

function sdpFingerprint(sdp) {
  const m = /a=fingerprint:sha-256 ([0-9A-F:]+)/i.exec(sdp);
  assert.ok(m, 'the answer carries a sha-256 fingerprint');
  return m[1].toUpperCase();
}

let server;
let pages;
let browser;
let client;
const pem = rsaPem();
const configured = new crypto.X509Certificate(pem);

test.before(async () => {
  server = await h.startServer({
    modules: { 'WebRtcEndpoint.conf.ini': 'pemCertificateRSA=dtls-rsa.pem\n', 'dtls-rsa.pem': pem },
  });
  pages = await h.startPageServer();
  browser = await h.launchBrowser();
  client = await h.connect(server.url);
});

test.after(async () => {
  if (client) client.close();
  if (browser) await browser.close();
  if (pages) await pages.close();
  if (server) {
    const r = await server.stop();
    if (process.env.KMS_TEST_VERBOSE) console.log(server.log());
    assert.ok(r && r.code === 0, `server exited cleanly: ${JSON.stringify(r)}`);
  }
});

/** Loopback with one endpoint: the answer, and once video decodes (which
 * needs a DTLS handshake Chromium accepted: it checks the server's
 * certificate against the answer's fingerprint), the certificate the
 * browser received if its stats expose it (Chromium sometimes leaves
 * `remoteCertificateId` out). */
async function loopback(params, whileFlowing = async () => {}) {
  const pipeline = await call(client, 'create', 'MediaPipeline');
  const ep = await call(pipeline, 'create', 'WebRtcEndpoint', params);
  await call(ep, 'connect', ep);
  const page = await browser.newPage(pages.url);
  const { answer } = await negotiate(page, ep, 'sendrecv');
  await waitFor('decoded frames', 30000, async () => (await pageStats(page)).framesDecoded > 10);
  const extra = await whileFlowing(ep);
  const der = await waitFor('the remote certificate in the stats', 5000, async () => {
    const st = await pageStats(page);
    return st.remoteCertificate ? Buffer.from(st.remoteCertificate, 'base64') : null;
  }).catch(() => null);
  await page.close();
  await call(pipeline, 'release');
  return { answer, cert: der && new crypto.X509Certificate(der), extra };
}

/** The IP TOS bytes of packets the server sends from the port of the
 * candidate pair in use (tcpdump on lo, as root). */
async function serverTos(ep) {
  const pairs = await call(ep, 'getICECandidatePairs');
  assert.equal(pairs.length, 1, 'one selected candidate pair');
  const port = pairs[0].localCandidate.split(' ')[5];
  assert.match(port, /^\d+$/);
  return new Promise((resolve, reject) => {
    execFile('timeout', ['5', 'tcpdump', '-i', 'lo', '-n', '-v', '-c', '20', `src port ${port}`],
      (err, stdout, stderr) => {
        // IPv4 headers print `tos 0x..`; IPv6 ones `class 0x..` unless 0.
        const tos = stdout.split('\n').filter((l) => / IP6? \(/.test(l)).map((l) => {
          const m = /(?:tos|class) (0x[0-9a-f]+)/.exec(l);
          return m ? Number(m[1]) : 0;
        });
        if (tos.length === 0) reject(new Error(`no packets captured: ${err ? err.message : ''} ${stderr}`));
        else resolve(tos);
      });
  });
}

const canCapture = process.getuid && process.getuid() === 0 &&
  spawnSync('tcpdump', ['--version'], { stdio: 'ignore' }).status === 0;

test('a configured pemCertificateRSA is presented, and matches the SDP fingerprint', async () => {
  const { answer, cert } = await loopback({});
  assert.equal(sdpFingerprint(answer), configured.fingerprint256, 'the configured certificate in the answer');
  if (cert) assert.equal(cert.fingerprint256, configured.fingerprint256, 'and in the handshake');
});

test('certificateKeyType ECDSA: one generated P-256 certificate per process', async () => {
  const a = await loopback({ certificateKeyType: 'ECDSA' });
  assert.notEqual(sdpFingerprint(a.answer), configured.fingerprint256, 'not the RSA certificate');
  if (a.cert) {
    assert.equal(a.cert.publicKey.asymmetricKeyType, 'ec');
    assert.equal(a.cert.publicKey.asymmetricKeyDetails.namedCurve, 'prime256v1');
    assert.equal(sdpFingerprint(a.answer), a.cert.fingerprint256);
  }
  const b = await loopback({ certificateKeyType: 'ECDSA' });
  assert.equal(sdpFingerprint(b.answer), sdpFingerprint(a.answer), 'the same certificate for the next endpoint');
});

test('qosDscp marks the packets the endpoint sends; NO_DSCP marks none', { skip: !canCapture && 'needs root and tcpdump' }, async () => {
  const marked = await loopback({ qosDscp: 'AF41' }, serverTos);
  assert.ok(marked.extra.every((t) => t === 34 << 2), `AF41 (34) in every packet: ${marked.extra}`);
  const plain = await loopback({ qosDscp: 'NO_DSCP' }, serverTos);
  assert.ok(plain.extra.every((t) => t === 0), `no marking: ${plain.extra}`);
});
