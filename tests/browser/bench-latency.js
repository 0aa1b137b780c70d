// Benchmark, not a test (docs/benchmarks.md, `ci/bench-webrtc.sh browser`):
// setup latency the way a tutorial application sees it. Each run opens a
// fresh page in headless Chromium (fake camera), then times
// create(MediaPipeline) → WebRtcEndpoint → connect(self) → processOffer →
// gatherCandidates → first frame the page's <video> presents, as the page
// timestamps it itself (requestVideoFrameCallback's presentationTime, in
// epoch milliseconds like the start). The page's getUserMedia runs inside
// that window, as it does in the tutorial.
//
// The first measure of this benchmark polled getStats for framesDecoded > 0
// every 10 ms; it is still printed, as "polled". It reads late: Chromium's
// RTCStatsCollector serves a cached report for 50 ms, so a poll can see a
// frame up to 50 ms after it was decoded.
//
//   node tests/browser/bench-latency.js [runs]   (KMS_BIN: server binary)
//
// The page's camera is the test suite's 320x240 at 15 fps unless
// KMS_BENCH_CONSTRAINTS=library: then kurento-utils' own default
// constraints (640 wide; its `framerate: 15` is no constraint name, so the
// camera runs at its rate), which is what a tutorial application asks for.
// The frame interval shows directly in the setup time: Chromium sends its
// first video frame one to two frame intervals after DTLS connects.
'use strict';

const h = require('./lib/harness');
const { call, negotiate, pageStats } = h;

async function main() {
  const runs = Number(process.argv[2] || 20);
  const library = process.env.KMS_BENCH_CONSTRAINTS === 'library';
  const server = await h.startServer();
  const pages = await h.startPageServer();
  const browser = await h.launchBrowser();
  const client = await h.connect(server.url);
  const times = [];
  const polled = [];
  // One warm-up run (browser and server caches), not counted.
  for (let i = 0; i <= runs; i++) {
    const page = await browser.newPage(pages.url);
    await page.evaluate(() => {
      window.firstFrameAt = null;
      document.getElementById('remote').requestVideoFrameCallback((now, meta) => {
        window.firstFrameAt = performance.timeOrigin + (meta.presentationTime || now);
      });
    });
    const epoch0 = performance.timeOrigin + performance.now();
    const t0 = performance.now();
    const pipeline = await call(client, 'create', 'MediaPipeline');
    const ep = await call(pipeline, 'create', 'WebRtcEndpoint');
    await call(ep, 'connect', ep);
    const tNeg = performance.now();
    const { timing } = await negotiate(page, ep, 'sendrecv', { libraryConstraints: library });
    const tAns = performance.now();
    for (;;) {
      if ((await pageStats(page)).framesDecoded > 0) break;
      if (performance.now() - t0 > 20000) throw new Error('no decoded frame within 20 s');
      await new Promise((r) => setTimeout(r, 10));
    }
    const polledMs = performance.now() - t0;
    const presentedAt = await h.waitFor('the first frame presented', 5000,
      () => page.evaluate(() => window.firstFrameAt), 5);
    const ms = presentedAt - epoch0;
    if (i > 0) {
      times.push(ms);
      polled.push(polledMs);
    }
    if (process.env.KMS_BENCH_VERBOSE) {
      console.log(`run ${i}: objects ${(tNeg - t0).toFixed(0)} ms, negotiation ${(tAns - tNeg).toFixed(0)} ms (offer, processOffer, gather, answer: ${timing.join(', ')}), media ${(t0 + ms - tAns).toFixed(0)} ms, presented at ${ms.toFixed(0)} ms, polled at ${polledMs.toFixed(0)} ms`);
    }
    await page.close();
    await call(pipeline, 'release');
  }
  client.close();
  await browser.close();
  await pages.close();
  await new Promise((r) => setTimeout(r, 200));
  await server.stop();
  const stats = (xs) => {
    xs.sort((a, b) => a - b);
    const q = (p) => xs[Math.min(xs.length - 1, Math.floor(p * xs.length))];
    return { p50: q(0.5), p90: q(0.9), max: xs[xs.length - 1] };
  };
  const [s, p] = [stats(times), stats(polled)];
  const r = {
    mode: 'browser-latency', runs: times.length, p50_ms: s.p50, p90_ms: s.p90, max_ms: s.max,
    polled_p50_ms: p.p50, polled_p90_ms: p.p90, polled_max_ms: p.max,
  };
  const camera = library ? 'kurento-utils default constraints' : '320x240 at 15 fps';
  console.log(`| first frame presented in Chromium (${camera}) | ${s.p50.toFixed(0)} ms | ${s.p90.toFixed(0)} ms | ${s.max.toFixed(0)} ms | ${r.runs}/${r.runs} |`);
  console.log(`| framesDecoded > 0 in getStats, polled (${camera}) | ${p.p50.toFixed(0)} ms | ${p.p90.toFixed(0)} ms | ${p.max.toFixed(0)} ms | ${r.runs}/${r.runs} |`);
  console.log(JSON.stringify(r));
}

main().catch((e) => { console.error(e); process.exit(1); });
