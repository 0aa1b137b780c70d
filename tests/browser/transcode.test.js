// Transcoding in both directions between two browsers delivers the
// source's frames: the receiver decodes as many frames as the sender
// encoded (within 2 %), none duplicated, none lost on loopback.
'use strict';

const test = require('node:test');
const assert = require('node:assert/strict');
const h = require('./lib/harness');
const { call, waitFor, negotiate, pageStats } = h;

let server;
let pages;
let browser;
let client;

test.before(async () => {
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

/** Sender (only `from`) → endpoint A → endpoint B → receiver (only `to`):
 * frames encoded by the sender and decoded by the receiver over `ms`. */
async function framesThrough(from, to, ms) {
  const pipeline = await call(client, 'create', 'MediaPipeline');
  const a = await call(pipeline, 'create', 'WebRtcEndpoint');
  const b = await call(pipeline, 'create', 'WebRtcEndpoint');
  await call(a, 'connect', b);
  const sPage = await browser.newPage(pages.url);
  await negotiate(sPage, a, 'sendonly', { videoCodec: from });
  const rPage = await browser.newPage(pages.url);
  await negotiate(rPage, b, 'recvonly', { videoCodec: to });
  const first = await waitFor('decoded frames', 30000, async () => {
    const s = await pageStats(rPage);
    return s.framesDecoded > 30 ? s : null;
  });
  assert.equal(first.videoCodec, `video/${to}`);
  assert.equal(await call(a, 'isMediaTranscoding', 'VIDEO'), true);
  // Let the start-up keyframe exchange settle, then count over a window.
  await new Promise((r) => setTimeout(r, 2000));
  const [s0, r0] = [await pageStats(sPage), await pageStats(rPage)];
  await new Promise((r) => setTimeout(r, ms));
  const [s1, r1] = [await pageStats(sPage), await pageStats(rPage)];
  await sPage.close();
  await rPage.close();
  await call(pipeline, 'release');
  return { sent: s1.framesSent - s0.framesSent, decoded: r1.framesDecoded - r0.framesDecoded };
}

function assertSameCount({ sent, decoded }, what) {
  assert.ok(sent > 100, `${what}: the sender encoded frames (${sent})`);
  const diff = Math.abs(decoded - sent) / sent;
  assert.ok(diff <= 0.02, `${what}: sent ${sent} frames, decoded ${decoded} (${(diff * 100).toFixed(1)} % apart)`);
}

test('H.264 to VP8: the receiver decodes as many frames as the sender encoded', async () => {
  assertSameCount(await framesThrough('H264', 'VP8', 15000), 'H.264→VP8');
});

test('VP8 to H.264: the receiver decodes as many frames as the sender encoded', async () => {
  assertSameCount(await framesThrough('VP8', 'H264', 15000), 'VP8→H.264');
});
