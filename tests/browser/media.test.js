// MediaElement media settings proven in headless Chromium with the official
// kurento-client: forced output formats (setVideoFormat) and latency stats.
'use strict';

const test = require('node:test');
const assert = require('node:assert/strict');
const h = require('./lib/harness');
const { decodes } = h;
const { call, waitFor, negotiate, pageStats, kurentoClient } = h;

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
    if (process.env.KMS_TEST_VERBOSE) console.log(server.log());
    assert.ok(r && r.code === 0, `server exited cleanly: ${JSON.stringify(r)}`);
  }
});

/** Browser A sends VP8 into endpoint A, which feeds endpoints B (its browser
 * offers Chromium's default codecs) and C (H.264 only). */
async function fanOut(forceH264) {
  const pipeline = await call(client, 'create', 'MediaPipeline');
  const a = await call(pipeline, 'create', 'WebRtcEndpoint');
  const b = await call(pipeline, 'create', 'WebRtcEndpoint');
  const c = await call(pipeline, 'create', 'WebRtcEndpoint');
  if (forceH264) {
    const Fraction = kurentoClient.getComplexType('Fraction');
    const VideoCaps = kurentoClient.getComplexType('VideoCaps');
    await call(a, 'setVideoFormat', VideoCaps({ codec: 'H264', framerate: Fraction({ numerator: 15, denominator: 1 }) }));
  }
  await call(a, 'connect', b);
  await call(a, 'connect', c);
  const aPage = await browser.newPage(pages.url);
  const { answer } = await negotiate(aPage, a, 'sendonly', { videoCodec: 'VP8' });
  assert.match(answer, /VP8\/90000/);
  const bPage = await browser.newPage(pages.url);
  const { answer: bAnswer } = await negotiate(bPage, b, 'recvonly');
  const cPage = await browser.newPage(pages.url);
  await negotiate(cPage, c, 'recvonly', { videoCodec: 'H264' });
  // Whether B's answer lets it receive H.264 too (KMS answers with every
  // codec both sides support; an answer may also keep only the first).
  const bTakesH264 = /H264\/90000/.test(bAnswer.split('m=video')[1] || '');
  return { pipeline, a, bTakesH264, pages: [aPage, bPage, cPage] };
}

test('setVideoFormat(H264): consumers get only H.264, transcoded from the VP8 sent', async () => {
  const { pipeline, a, bTakesH264, pages: [aPage, bPage, cPage] } = await fanOut(true);
  const c = await decodes(cPage);
  assert.equal(c.videoCodec, 'video/H264', 'the H.264-only peer decodes');
  assert.equal(await call(a, 'isMediaTranscoding', 'VIDEO'), true);
  if (bTakesH264) {
    const b = await decodes(bPage);
    assert.equal(b.videoCodec, 'video/H264', 'B decodes the forced codec, not the VP8 it also takes');
  } else {
    // B only negotiated VP8: it gets nothing rather than a format other
    // than the forced one (KMS's not-negotiated branch).
    const before = (await pageStats(cPage)).framesDecoded;
    await waitFor('C decoding on', 15000, async () => (await pageStats(cPage)).framesDecoded > before + 30);
    assert.equal((await pageStats(bPage)).framesDecoded, 0, 'no VP8 reaches B');
  }
  for (const p of [aPage, bPage, cPage]) await p.close();
  await call(pipeline, 'release');
});

test('without setVideoFormat the same consumer gets VP8 as sent', async () => {
  const { pipeline, a, pages: [aPage, bPage, cPage] } = await fanOut(false);
  const b = await decodes(bPage);
  assert.equal(b.videoCodec, 'video/VP8');
  const c = await decodes(cPage);
  assert.equal(c.videoCodec, 'video/H264', 'C still gets H.264 (transcoded for it alone)');
  assert.equal(await call(a, 'isMediaTranscoding', 'VIDEO'), true);
  for (const p of [aPage, bPage, cPage]) await p.close();
  await call(pipeline, 'release');
});

test('latency stats: measured on a running loopback while enabled, empty while disabled', async () => {
  const pipeline = await call(client, 'create', 'MediaPipeline');
  const ep = await call(pipeline, 'create', 'WebRtcEndpoint');
  await call(ep, 'connect', ep);
  const page = await browser.newPage(pages.url);
  await negotiate(page, ep, 'sendrecv');
  await decodes(page, 10);
  const own = async () => {
    const stats = await call(ep, 'getStats');
    return Object.values(stats).find((s) => s.type === 'endpoint');
  };
  let s = await own();
  assert.deepEqual(s.inputLatency, []);
  assert.deepEqual(s.E2ELatency, []);
  assert.equal(await call(pipeline, 'getLatencyStats'), false);

  await call(pipeline, 'setLatencyStats', true);
  assert.equal(await call(pipeline, 'getLatencyStats'), true);
  s = await waitFor('latency stats', 10000, async () => {
    const x = await own();
    const types = (l) => l.map((m) => m.type).sort().join();
    return types(x.inputLatency) === 'AUDIO,VIDEO' && types(x.E2ELatency) === 'AUDIO,VIDEO' ? x : null;
  });
  if (process.env.KMS_TEST_VERBOSE) console.log(JSON.stringify(s, null, 1));
  for (const m of [...s.inputLatency, ...s.E2ELatency]) {
    assert.equal(m.name, 'default');
    // Nanoseconds since the packet arrived: more than nothing, less than
    // the 10 s a loopback never takes.
    assert.ok(m.avg > 0 && m.avg < 10e9, `${m.type} avg ${m.avg} ns`);
  }

  await call(pipeline, 'setLatencyStats', false);
  s = await own();
  assert.deepEqual(s.inputLatency, []);
  assert.deepEqual(s.E2ELatency, []);
  await page.close();
  await call(pipeline, 'release');
});
