// Benchmark (not a test): server CPU per PlayerEndpoint, for
// docs/benchmarks.md (## Player). Run through ci/bench-player.sh.
//
// N players of a 640x480@30 VP8/Opus WebM, each connected to a
// WebRtcEndpoint received by its own headless Chromium page (decoded
// there), first with useEncodedMedia (no decode on the server), then
// decoded and re-encoded. Server CPU (utime+stime of /proc/<pid>/stat)
// over WINDOW seconds, minus the idle server, divided by N.
'use strict';

const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');
const { execFileSync } = require('node:child_process');
const h = require('./lib/harness');
const { status, cpuOver } = require('./lib/proc-stats');
const kms = require('../shared/kms-process');
const { call, negotiate, pageStats, waitFor } = h;

const N = Number(process.env.PLAYERS || 4);
const WINDOW = Number(process.env.WINDOW || 10);

(async () => {
  const root = fs.mkdtempSync(path.join(os.tmpdir(), 'kms-bench-player-'));
  const clip = path.join(root, 'clip.webm');
  const secs = WINDOW + 15;
  execFileSync('gst-launch-1.0', ['-q', '-e', ...(
    `videotestsrc pattern=smpte horizontal-speed=4 num-buffers=${secs * 30} ! video/x-raw,width=640,height=480,framerate=30/1 `
    + '! vp8enc deadline=1 cpu-used=4 target-bitrate=500000 keyframe-max-dist=60 end-usage=cbr ! queue ! webmmux name=m '
    + `! filesink location=${clip} audiotestsrc num-buffers=${Math.ceil((secs * 48000) / 960)} samplesperbuffer=960 `
    + '! audio/x-raw,rate=48000,channels=2 ! opusenc ! queue ! m.').split(/\s+/)], { stdio: 'ignore' });
  const server = await kms.startServer({
    bin: h.BIN,
    prefix: 'kms-bench-player-',
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
  console.log(`# ${new Date().toISOString()} ${os.cpus().length} cores, ${gst}, ${N} players, ${WINDOW} s window`);
  await new Promise((r) => setTimeout(r, 2000));
  const idle = await cpuOver(pid, 5);
  const idleStatus = status(pid);
  const modes = [
    { useEncodedMedia: true, browser: true, what: 'useEncodedMedia (no decode) → WebRtcEndpoint → Chromium' },
    { useEncodedMedia: true, browser: false, what: 'useEncodedMedia, player alone (no consumer)' },
    { useEncodedMedia: false, browser: true, what: 'decoded + VP8 re-encode → WebRtcEndpoint → Chromium' },
  ];
  for (const { useEncodedMedia, browser: withBrowser, what } of modes) {
    const pipeline = await call(client, 'create', 'MediaPipeline');
    const players = [];
    const opened = [];
    for (let i = 0; i < N; i++) {
      const player = await call(pipeline, 'create', 'PlayerEndpoint', { uri: `file://${clip}`, useEncodedMedia });
      players.push(player);
      if (!withBrowser) continue;
      const webrtc = await call(pipeline, 'create', 'WebRtcEndpoint');
      await call(player, 'connect', webrtc);
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
    const fps = withBrowser ? f1.reduce((a, s, i) => a + s.framesDecoded - f0[i].framesDecoded, 0) / N / WINDOW : NaN;
    const st = status(pid);
    const row = {
      what, players: N, serverCpu: +cpu.toFixed(1), idleCpu: +idle.toFixed(1),
      perPlayer: +((cpu - idle) / N).toFixed(2), fpsPerBrowser: +fps.toFixed(1),
      rssMiB: +st.rssMiB.toFixed(0), threads: st.threads,
      perPlayerRssMiB: +((st.rssMiB - idleStatus.rssMiB) / N).toFixed(1),
      perPlayerThreads: +((st.threads - idleStatus.threads) / N).toFixed(1),
    };
    console.log(`| ${what} | ${N} | ${row.serverCpu} | ${row.perPlayer} | ${row.fpsPerBrowser} | ${row.rssMiB} MiB | ${row.threads} |`);
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
