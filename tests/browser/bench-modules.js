// Benchmark (not a test): server CPU per 640x480@30 stream through the
// extra modules' filters (CrowdDetectorFilter, PlateDetectorFilter), for
// docs/benchmarks.md (## Extra modules). Run through ci/bench-modules.sh. Same method as bench-filters.js: STREAMS
// PlayerEndpoints play a 640x480@30 VP8 WebM of a moving test pattern
// (everything moves: the analysis' worst case, block matching in every
// block) into WebRtcEndpoints decoded by headless Chromium pages; server
// CPU over WINDOW seconds minus the idle server, per stream; a baseline
// without a filter first.
'use strict';

const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');
const { execFileSync } = require('node:child_process');
const h = require('./lib/harness');
const { cpuOver } = require('./lib/proc-stats');
const kms = require('../shared/kms-process');
const crowd = require('./lib/crowd-module');
const { call, negotiate, pageStats, waitFor } = h;

const N = Number(process.env.STREAMS || 2);
const WINDOW = Number(process.env.WINDOW || 10);

(async () => {
  const jsOut = crowd.register(h);
  const plateJs = crowd.register(h, 'platedetector');
  const { rect, roi } = crowd.types(h);
  const rois = () => [
    roi('left', rect(0, 0, 0.5, 1), { sendOpticalFlowEvent: true }),
    roi('right', rect(0.5, 0, 1, 1), { sendOpticalFlowEvent: true }),
  ];
  const root = fs.mkdtempSync(path.join(os.tmpdir(), 'kms-bench-modules-'));
  const clip = path.join(root, 'clip.webm');
  const secs = WINDOW + 20;
  execFileSync('gst-launch-1.0', ['-q', '-e', ...(
    `videotestsrc pattern=smpte horizontal-speed=4 num-buffers=${secs * 30} ! video/x-raw,width=640,height=480,framerate=30/1 `
    + '! vp8enc deadline=1 cpu-used=4 target-bitrate=500000 keyframe-max-dist=60 end-usage=cbr ! queue ! webmmux name=m '
    + `! filesink location=${clip}`).split(/\s+/)], { stdio: 'ignore' });
  const server = await kms.startServer({
    bin: h.BIN,
    prefix: 'kms-bench-modules-',
    env: { KMS_LOG: 'warn' },
    files: { 'modules/kurento/WebRtcEndpoint.conf.ini': 'networkInterfaces=lo\n' },
    config: (port) => ({
      mediaServer: {
        resources: { mediaRoots: [root] },
        net: { websocket: { port, path: 'kurento', address: '127.0.0.1' } },
      },
    }),
  });
  const pid = server.child.pid;
  const pages = await h.startPageServer();
  const browser = await h.launchBrowser();
  const client = await h.connect(server.url);
  const gst = execFileSync('gst-launch-1.0', ['--version']).toString().split('\n')[1];
  console.log(`# ${new Date().toISOString()} ${os.cpus().length} cores, ${gst}, ${N} streams, ${WINDOW} s window`);
  await new Promise((r) => setTimeout(r, 2000));
  const idle = await cpuOver(pid, 5);
  const modes = [
    { what: 'baseline: player decodes, VP8 re-encode → WebRtcEndpoint', width: null },
    { what: 'CrowdDetectorFilter, 2 ROIs with direction, processingWidth 160', width: 160 },
    { what: 'CrowdDetectorFilter, 2 ROIs with direction, processingWidth 320 (default)', width: 320 },
    { what: 'CrowdDetectorFilter, 2 ROIs with direction, processingWidth 640 (full)', width: 640 },
    // The pattern's white bar is no plate (too tall): the cost of looking
    // on every frame the OCR thread is idle, without OCR.
    { what: 'PlateDetectorFilter (locating on every idle frame, no plate in view)', width: 1, plate: true },
  ];
  let baseline = null;
  for (const { what, width, plate } of modes) {
    const pipeline = await call(client, 'create', 'MediaPipeline');
    const players = [];
    const opened = [];
    const events = [];
    for (let i = 0; i < N; i++) {
      const player = await call(pipeline, 'create', 'PlayerEndpoint', { uri: `file://${clip}`, useEncodedMedia: !!width });
      players.push(player);
      const webrtc = await call(pipeline, 'create', 'WebRtcEndpoint');
      if (width) {
        const f = plate
          ? await call(pipeline, 'create', 'PlateDetectorFilter')
          : await call(pipeline, 'create', 'CrowdDetectorFilter', { rois: rois() });
        if (!plate) await call(f, 'setProcessingWidth', width);
        for (const ev of ['CrowdDetectorOccupancy', 'CrowdDetectorFluidity', 'CrowdDetectorDirection', 'PlateDetected']) {
          if (!!plate !== (ev === 'PlateDetected')) continue;
          f.on(ev, (e) => events.push(e));
        }
        await call(player, 'connect', f);
        await call(f, 'connect', webrtc);
      } else {
        await call(player, 'connect', webrtc);
      }
      const page = await browser.newPage(pages.url);
      await negotiate(page, webrtc, 'recvonly');
      opened.push(page);
    }
    for (const p of players) await call(p, 'play');
    for (const page of opened) {
      await waitFor('frames', 30000, async () => (await pageStats(page)).framesDecoded > 30);
    }
    await new Promise((r) => setTimeout(r, 2000));
    const f0 = await Promise.all(opened.map((p) => pageStats(p)));
    const cpu = await cpuOver(pid, WINDOW);
    const f1 = await Promise.all(opened.map((p) => pageStats(p)));
    const fps = f1.reduce((a, s, i) => a + s.framesDecoded - f0[i].framesDecoded, 0) / N / WINDOW;
    const perStream = (cpu - idle) / N;
    if (baseline === null) baseline = perStream;
    const row = {
      what, streams: N, serverCpu: +cpu.toFixed(1), perStream: +perStream.toFixed(2),
      overBaseline: +(perStream - baseline).toFixed(2), fps: +fps.toFixed(1), events: events.length,
    };
    console.log(`| ${what} | ${N} | ${row.serverCpu} | ${row.perStream} | ${row.overBaseline} | ${row.fps} | ${row.events} |`);
    console.log(JSON.stringify(row));
    for (const page of opened) await page.close();
    await call(pipeline, 'release');
    await new Promise((r) => setTimeout(r, 1000));
  }
  client.close();
  await browser.close();
  await pages.close();
  await server.stop();
  fs.rmSync(root, { recursive: true, force: true });
  fs.rmSync(jsOut, { recursive: true, force: true });
  fs.rmSync(plateJs, { recursive: true, force: true });
})().catch((e) => { console.error(e); process.exit(1); });
