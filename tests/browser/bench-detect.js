// Benchmark (not a test): server CPU per 640x480@30 stream through
// ZBarFilter and FaceOverlayFilter, for docs/benchmarks.md (## Detection
// filters). Run through ci/bench-detect.sh.
//
// A VP8 WebM clip (moving SMPTE bars with the astronaut's face and a QR
// code composited on them, no audio) is played N times, decoded by each
// PlayerEndpoint, through the filter (or none: the baseline), re-encoded to
// VP8 for a WebRtcEndpoint received by a headless Chromium page. Server CPU
// (utime+stime of /proc/<pid>/stat) over WINDOW seconds minus the idle
// server, divided by N; the filter's own cost is the difference to the
// baseline row.
'use strict';

const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');
const { execFileSync } = require('node:child_process');
const h = require('./lib/harness');
const { status, cpuOver } = require('./lib/proc-stats');
const kms = require('../shared/kms-process');
const { call, negotiate, pageStats, waitFor } = h;

const N = Number(process.env.STREAMS || 2);
const WINDOW = Number(process.env.WINDOW || 10);

function gst(desc) {
  execFileSync('gst-launch-1.0', ['-q', '-e', ...desc.split(/\s+/).filter(Boolean)], { stdio: 'ignore' });
}

(async () => {
  const root = fs.mkdtempSync(path.join(os.tmpdir(), 'kms-bench-detect-'));
  const clip = path.join(root, 'clip.webm');
  const qr = path.join(root, 'qr.png');
  const green = path.join(root, 'green.png');
  const face = path.join(__dirname, 'fixtures', 'astronaut.jpg');
  const frames = (WINDOW + 20) * 30;
  execFileSync('qrencode', ['-o', qr, '-s', '8', '-m', '4', 'kurento-rs bench']);
  gst(`videotestsrc pattern=solid-color foreground-color=0xff00ff00 num-buffers=1 ! video/x-raw,width=64,height=64
    ! videoconvert ! pngenc snapshot=true ! filesink location=${green}`);
  gst(`compositor name=c sink_1::xpos=40 sink_1::ypos=100 sink_2::xpos=360 sink_2::ypos=120
      ! video/x-raw,width=640,height=480,framerate=30/1
      ! vp8enc deadline=1 cpu-used=4 target-bitrate=500000 keyframe-max-dist=60 end-usage=cbr ! webmmux
      ! filesink location=${clip}
    videotestsrc pattern=smpte horizontal-speed=4 num-buffers=${frames} ! video/x-raw,width=640,height=480,framerate=30/1 ! c.
    filesrc location=${face} ! jpegdec ! videoconvert ! videoscale ! video/x-raw,width=280,height=280
      ! imagefreeze num-buffers=${frames} ! video/x-raw,framerate=30/1 ! c.
    filesrc location=${qr} ! pngdec ! videoconvert ! videoscale method=0 ! video/x-raw,width=240,height=240
      ! imagefreeze num-buffers=${frames} ! video/x-raw,framerate=30/1 ! c.`);
  const server = await kms.startServer({
    bin: h.BIN,
    prefix: 'kms-bench-detect-',
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
  const ver = execFileSync('gst-launch-1.0', ['--version']).toString().split('\n')[1];
  console.log(`# ${new Date().toISOString()} ${os.cpus().length} cores, ${ver}, ${N} streams, ${WINDOW} s window`);
  await new Promise((r) => setTimeout(r, 2000));
  const idle = await cpuOver(pid, 5);
  const idleStatus = status(pid);
  const modes = [
    { filter: null, what: 'no filter (player decode + VP8 encode)' },
    { filter: 'ZBarFilter', what: 'ZBarFilter' },
    { filter: 'FaceOverlayFilter', image: true, what: 'FaceOverlayFilter, image set' },
    { filter: 'FaceOverlayFilter', image: false, what: 'FaceOverlayFilter, no image (detection idle)' },
  ];
  console.log('| pipeline per stream | streams | server CPU % | per stream | filter alone | fps per browser | RSS | threads | events |');
  console.log('| --- | --- | --- | --- | --- | --- | --- | --- | --- |');
  let base = null;
  for (const { filter, image, what } of modes) {
    const pipeline = await call(client, 'create', 'MediaPipeline');
    const players = [];
    const opened = [];
    let events = 0;
    for (let i = 0; i < N; i++) {
      const player = await call(pipeline, 'create', 'PlayerEndpoint', { uri: `file://${clip}` });
      players.push(player);
      const webrtc = await call(pipeline, 'create', 'WebRtcEndpoint');
      if (filter) {
        const f = await call(pipeline, 'create', filter);
        if (filter === 'ZBarFilter') f.on('CodeFound', () => { events++; });
        if (image) await call(f, 'setOverlayedImage', `file://${green}`, 0, 0, 1, 1);
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
    const st = status(pid);
    const per = (cpu - idle) / N;
    if (base === null) base = per;
    const row = {
      what, streams: N, serverCpu: +cpu.toFixed(1), idleCpu: +idle.toFixed(1), perStream: +per.toFixed(1),
      filterAlone: +(per - base).toFixed(1), fpsPerBrowser: +fps.toFixed(1), rssMiB: +st.rssMiB.toFixed(0),
      threads: st.threads, perStreamThreads: +((st.threads - idleStatus.threads) / N).toFixed(1),
      codeFound: filter === 'ZBarFilter' ? events : undefined,
    };
    console.log(`| ${what} | ${N} | ${row.serverCpu} | ${row.perStream} | ${filter ? row.filterAlone : '—'} | ${row.fpsPerBrowser} | ${row.rssMiB} MiB | ${row.threads} | ${filter === 'ZBarFilter' ? `${events} CodeFound` : ''} |`);
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
})().catch((e) => { console.error(e); process.exit(1); });
