// BaseRtpEndpoint MTU (`setMtu`) bounds the RTP packets a WebRtcEndpoint
// sends, whoever payloads them: our payloader when the media is transcoded
// for it, and a re-payloading (depayloader → payloader, no decoding) when
// the media would otherwise be forwarded in the browser's bigger packets.
//
// What is counted: tcpdump on lo (as root) captures the UDP datagrams the
// server sends from the endpoint's (bundled) ICE port; the UDP payload is
// the SRTP packet = the RTP packet (header + payload, what the MTU bounds)
// plus the SRTP authentication tag (10 bytes with AES_CM_128_HMAC_SHA1_80,
// 16 with AEAD_AES_128_GCM). With MTU 600 no datagram may exceed 600 + 16;
// with the default MTU (1200) some do, so the test can fail. (RTCP and STUN
// from that port are small.)
'use strict';

const test = require('node:test');
const assert = require('node:assert/strict');
const { execFile, spawnSync } = require('node:child_process');
const h = require('./lib/harness');
const { call, waitFor, negotiate, pageStats } = h;

const SRTP_TAG_MAX = 16;
const canCapture = process.getuid && process.getuid() === 0 &&
  spawnSync('tcpdump', ['--version'], { stdio: 'ignore' }).status === 0;

let server;
let pages;
let browser;
let client;

test.before(async () => {
  if (!canCapture) return;
  server = await h.startServer();
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
    assert.ok(r && r.code === 0, `server exited cleanly: ${JSON.stringify(r)}`);
  }
});

/** UDP payload sizes of the datagrams the endpoint sends (tcpdump on lo). */
async function sentSizes(ep) {
  const pairs = await call(ep, 'getICECandidatePairs');
  assert.equal(pairs.length, 1, 'one selected candidate pair');
  const port = pairs[0].localCandidate.split(' ')[5];
  assert.match(port, /^\d+$/);
  return new Promise((resolve, reject) => {
    execFile('timeout', ['4', 'tcpdump', '-i', 'lo', '-n', '-c', '300', `udp and src port ${port}`],
      (err, stdout, stderr) => {
        const sizes = stdout.split('\n').map((l) => /UDP, length (\d+)/.exec(l)).filter(Boolean).map((m) => Number(m[1]));
        if (sizes.length === 0) reject(new Error(`no packets captured: ${err ? err.message : ''} ${stderr}`));
        else resolve(sizes);
      });
  });
}

/** A 640x480 VP8 sender → A → B (MTU `mtu`, or the default) → a browser
 * taking `codec`: the datagram sizes B sends. Each run has its own
 * pipeline: consumers of one payloader share the smallest MTU. */
async function sizesFor(codec, mtu) {
  const pipeline = await call(client, 'create', 'MediaPipeline');
  const a = await call(pipeline, 'create', 'WebRtcEndpoint');
  const b = await call(pipeline, 'create', 'WebRtcEndpoint');
  if (mtu) {
    await call(b, 'setMtu', mtu);
    assert.equal(await call(b, 'getMtu'), mtu);
  }
  await call(a, 'connect', b);
  const sPage = await browser.newPage(pages.url);
  await negotiate(sPage, a, 'sendonly', { videoCodec: 'VP8', video: { width: 640, height: 480, frameRate: 15 } });
  const rPage = await browser.newPage(pages.url);
  await negotiate(rPage, b, 'recvonly', { videoCodec: codec });
  await waitFor('decoded frames', 30000, async () => (await pageStats(rPage)).framesDecoded > 20);
  const transcoding = await call(a, 'isMediaTranscoding', 'VIDEO');
  const sizes = await sentSizes(b);
  await sPage.close();
  await rPage.close();
  await call(pipeline, 'release');
  return { transcoding, sizes };
}

async function sizesWithAndWithoutMtu(codec) {
  const small = await sizesFor(codec, 600);
  const plain = await sizesFor(codec, 0);
  return { transcoding: small.transcoding, small: small.sizes, plain: plain.sizes };
}

function check({ small, plain }, what) {
  const max = (v) => Math.max(...v);
  console.log(`# ${what}: MTU 600 → largest datagram ${max(small)} of ${small.length}; default → ${max(plain)} of ${plain.length}`);
  assert.ok(small.length > 50 && plain.length > 50, 'media flowed');
  assert.ok(max(small) <= 600 + SRTP_TAG_MAX, `${what}: with MTU 600 the largest datagram is ${max(small)} bytes`);
  assert.ok(plain.some((n) => n > 600 + SRTP_TAG_MAX), `${what}: with the default MTU some are bigger (${max(plain)})`);
}

test('transcoded media: the payloader obeys the receiving endpoint\'s MTU', { skip: !canCapture && 'needs root and tcpdump' }, async () => {
  const r = await sizesWithAndWithoutMtu('H264');
  assert.equal(r.transcoding, true);
  check(r, 'VP8 → H.264');
});

test('forwarded media: packets bigger than the MTU are re-payloaded', { skip: !canCapture && 'needs root and tcpdump' }, async () => {
  const r = await sizesWithAndWithoutMtu('VP8');
  check(r, 'VP8 → VP8');
});
