// Benchmark (not a test): a Composite with 4 browser inputs at 640×480, for
// docs/benchmarks.md (## Composite). Run through ci/bench-composite.sh.
//
// INPUTS headless Chromium pages send their fake camera (640×480@30) and
// microphone into a Composite (800×600, FRAMERATE fps from
// Composite.conf.ini) through HubPorts. Two rows: the inputs send only and
// one recvonly viewer receives the mix (one VP8 encode on the server); then
// every input also receives the mix (INPUTS+1 encodes, each port has its
// own agnosticbin). Server CPU (utime+stime of /proc/<pid>/stat) over WINDOW
// seconds, RSS, and the frame rate the viewer decodes (delivered fps).
'use strict';

const os = require('node:os');
const { execFileSync } = require('node:child_process');
const h = require('./lib/harness');
const { status, cpuOver } = require('./lib/proc-stats');
const kms = require('../shared/kms-process');
const { call, negotiate, pageStats, waitFor } = h;

const N = Number(process.env.INPUTS || 4);
const WINDOW = Number(process.env.WINDOW || 10);
const FRAMERATE = Number(process.env.FRAMERATE || 30);
const CAMERA = { width: 640, height: 480, frameRate: 30 };

(async () => {
  const server = await kms.startServer({
    bin: h.BIN,
    prefix: 'kms-bench-composite-',
    files: { 'modules/kurento/Composite.conf.ini': `framerate=${FRAMERATE}\n` },
    env: { KMS_LOG: 'warn' },
    config: (port) => ({ mediaServer: { net: { websocket: { port, path: 'kurento', address: '127.0.0.1' } } } }),
  });
  const pid = server.child.pid;
  const pages = await h.startPageServer();
  const browser = await h.launchBrowser();
  const client = await h.connect(server.url);
  const gst = execFileSync('gst-launch-1.0', ['--version']).toString().split('\n')[1];
  console.log(`# ${new Date().toISOString()} ${os.cpus().length} cores, ${gst}, ${N} inputs 640x480@30,`
    + ` output 800x600@${FRAMERATE}, ${WINDOW} s window`);
  await new Promise((r) => setTimeout(r, 2000));
  const idle = await cpuOver(pid, 5);
  const modes = [
    { mode: 'sendonly', what: `${N} sendonly inputs + 1 recvonly viewer` },
    { mode: 'sendrecv', what: `${N} sendrecv inputs (each receives the mix) + 1 viewer` },
  ];
  for (const { mode, what } of modes) {
    const pipeline = await call(client, 'create', 'MediaPipeline');
    const composite = await call(pipeline, 'create', 'Composite');
    const opened = [];
    for (let i = 0; i < N; i++) {
      const port = await call(composite, 'createHubPort');
      const ep = await call(pipeline, 'create', 'WebRtcEndpoint');
      await call(ep, 'connect', port);
      if (mode === 'sendrecv') await call(port, 'connect', ep);
      const page = await browser.newPage(pages.url);
      await negotiate(page, ep, mode, { video: CAMERA });
      opened.push(page);
    }
    const port = await call(composite, 'createHubPort');
    const viewerEp = await call(pipeline, 'create', 'WebRtcEndpoint');
    await call(port, 'connect', viewerEp);
    const viewer = await browser.newPage(pages.url);
    await negotiate(viewer, viewerEp, 'recvonly');
    await waitFor('viewer frames', 30000, async () => (await pageStats(viewer)).framesDecoded > 30);
    await new Promise((r) => setTimeout(r, 3000));
    const sent0 = await Promise.all(opened.map((p) => pageStats(p)));
    const v0 = await pageStats(viewer);
    const cpu = await cpuOver(pid, WINDOW);
    const v1 = await pageStats(viewer);
    const sent1 = await Promise.all(opened.map((p) => pageStats(p)));
    const st = status(pid);
    const inFps = sent1.reduce((a, s, i) => a + s.framesSent - sent0[i].framesSent, 0) / N / WINDOW;
    const row = {
      what, inputs: N, serverCpu: +cpu.toFixed(1), idleCpu: +idle.toFixed(1),
      rssMiB: +st.rssMiB.toFixed(0), threads: st.threads,
      viewerFps: +((v1.framesDecoded - v0.framesDecoded) / WINDOW).toFixed(1),
      viewerSize: `${v1.width}x${v1.height}`, inputFpsSent: +inFps.toFixed(1),
      load: os.loadavg()[0],
    };
    console.log(`| ${what} | ${row.serverCpu} % | ${row.rssMiB} MiB | ${row.threads} | ${row.viewerFps} | ${row.inputFpsSent} |`);
    console.log(JSON.stringify(row));
    for (const page of opened.concat([viewer])) await page.close();
    await call(pipeline, 'release');
    await new Promise((r) => setTimeout(r, 1000));
  }
  const after = status(pid);
  console.log(JSON.stringify({ afterReleaseRssMiB: +after.rssMiB.toFixed(0), threads: after.threads }));
  client.close();
  await browser.close();
  await pages.close();
  await server.stop();
})().catch((e) => { console.error(e); process.exit(1); });
