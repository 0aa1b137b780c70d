// REMB in both directions, changed while media flows (no renegotiation,
// so the SDP's b=AS cannot be what steers the browsers):
// - receive side: the REMB the endpoint sends its sending browser is capped
//   by maxVideoRecvBandwidth, and the browser's encoder follows it;
// - send side: the receiving browser's REMB reaches the endpoint (its
//   outbound stats report it), and the encoder of a transcoding branch runs
//   at that REMB within [minVideoSendBandwidth, maxVideoSendBandwidth]: the
//   receiving browser's inbound bitrate stays under a low cap, and with a
//   high cap it stays at the browser's REMB rather than at the cap;
// - forwarding: a receiver's limit travels upstream and becomes the REMB
//   the source endpoint sends its browser.
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

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const bitrate = (page, dir) => page.evaluate((d) => window.kms.videoBitrate(d, 3000), dir);
const kbps = (b) => `${Math.round(b / 1000)} kbps`;

async function videoStat(ep, type) {
  return Object.values(await call(ep, 'getStats', 'VIDEO')).find((x) => x.type === type);
}

test('the sending browser follows maxVideoRecvBandwidth through REMB', async () => {
  const pipeline = await call(client, 'create', 'MediaPipeline');
  const ep = await call(pipeline, 'create', 'WebRtcEndpoint');
  const page = await browser.newPage(pages.url);
  const { answer } = await negotiate(page, ep, 'sendonly', { videoCodec: 'VP8' });
  assert.doesNotMatch(answer, /b=AS:/, 'no bandwidth limit in the SDP');
  assert.match(answer.slice(answer.indexOf('m=video')), /a=rtcp-fb:\d+ goog-remb/, 'REMB negotiated');
  await waitFor('video sent', 30000, async () => (await pageStats(page)).framesSent > 30);
  // Unlimited: the REMB estimate grows and the browser sends what its
  // encoder makes of the fake camera.
  await sleep(4000);
  const free = await bitrate(page, 'outbound-rtp');
  await call(ep, 'setMaxVideoRecvBandwidth', 60);
  await sleep(4000);
  const capped = await bitrate(page, 'outbound-rtp');
  const remb = (await videoStat(ep, 'inboundrtp')).remb;
  console.log(`# sender: unlimited ${kbps(free)}, maxVideoRecvBandwidth 60 kbps: ${kbps(capped)}, REMB sent ${remb}`);
  assert.ok(free > 120000, `unlimited, the browser sends ${kbps(free)}`);
  assert.ok(capped < 85000, `with REMB ≤ 60 kbps the browser sends ${kbps(capped)}`);
  assert.ok(remb > 0 && remb <= 60000, `the REMB sent: ${remb}`);
  await page.close();
  await call(pipeline, 'release');
});

test('a transcoding branch encodes at the receiver\'s REMB within maxVideoSendBandwidth', async () => {
  const pipeline = await call(client, 'create', 'MediaPipeline');
  const a = await call(pipeline, 'create', 'WebRtcEndpoint');
  const b = await call(pipeline, 'create', 'WebRtcEndpoint');
  await call(b, 'setMaxVideoSendBandwidth', 150);
  await call(a, 'connect', b);
  const sPage = await browser.newPage(pages.url);
  // A camera the encoder has something to spend bits on.
  await negotiate(sPage, a, 'sendonly', { videoCodec: 'VP8', video: { width: 640, height: 480, frameRate: 15 } });
  const rPage = await browser.newPage(pages.url);
  const { answer } = await negotiate(rPage, b, 'recvonly', { videoCodec: 'H264' });
  assert.match(answer.slice(answer.indexOf('m=video')), /a=rtcp-fb:\d+ goog-remb/, 'REMB negotiated');
  await waitFor('decoded frames', 30000, async () => (await pageStats(rPage)).framesDecoded > 30);
  assert.equal(await call(a, 'isMediaTranscoding', 'VIDEO'), true);
  await sleep(3000);
  const low = await bitrate(rPage, 'inbound-rtp');
  await call(b, 'setMaxVideoSendBandwidth', 1500);
  await sleep(5000);
  const high = await bitrate(rPage, 'inbound-rtp');
  const remb = await waitFor('the receiver\'s REMB', 5000, async () => (await videoStat(b, 'outboundrtp')).remb || null);
  console.log(`# receiver: maxVideoSendBandwidth 150 kbps: ${kbps(low)}, 1500 kbps: ${kbps(high)}, its REMB ${remb}`);
  assert.ok(low < 180000, `under a 150 kbps cap the receiver gets ${kbps(low)}`);
  // Bounded only by the cap, this encoder makes ~700 kbps of this camera;
  // the browser's REMB (a little above what it receives) holds it down.
  assert.ok(remb > 0 && remb < 1000000, `the receiving browser's REMB reached the endpoint: ${remb}`);
  assert.ok(high < remb * 1.3, `with the cap raised the encoder follows the REMB: ${kbps(high)}`);
  await sPage.close();
  await rPage.close();
  await call(pipeline, 'release');
});

test('forwarding: the receiver\'s limit travels upstream to the sending browser', async () => {
  const pipeline = await call(client, 'create', 'MediaPipeline');
  const a = await call(pipeline, 'create', 'WebRtcEndpoint');
  const b = await call(pipeline, 'create', 'WebRtcEndpoint');
  await call(a, 'connect', b);
  const sPage = await browser.newPage(pages.url);
  await negotiate(sPage, a, 'sendonly', { videoCodec: 'VP8' });
  const rPage = await browser.newPage(pages.url);
  await negotiate(rPage, b, 'recvonly', { videoCodec: 'VP8' });
  await h.decodes(rPage, 30, 30000);
  assert.equal(await call(a, 'isMediaTranscoding', 'VIDEO'), false, 'pass-through');
  await sleep(3000);
  const free = await bitrate(sPage, 'outbound-rtp');
  await call(b, 'setMinVideoSendBandwidth', 30);
  await call(b, 'setMaxVideoSendBandwidth', 60);
  await sleep(4000);
  const capped = await bitrate(sPage, 'outbound-rtp');
  const remb = (await videoStat(a, 'inboundrtp')).remb;
  console.log(`# forwarding sender: ${kbps(free)}, receiver capped at 60 kbps: ${kbps(capped)}, REMB sent ${remb}`);
  // Chromium's own rate for the fake camera varies with the machine's load
  // (118–154 kbps seen): what matters is room above the cap and a clear drop.
  assert.ok(free > 90000, `before, the browser sends ${kbps(free)}`);
  assert.ok(capped < 85000 && capped < 0.75 * free, `after, the browser sends ${kbps(capped)} (before ${kbps(free)})`);
  assert.ok(remb > 0 && remb <= 60000, `the REMB sent upstream: ${remb}`);
  await sPage.close();
  await rPage.close();
  await call(pipeline, 'release');
});
