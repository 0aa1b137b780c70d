// Benchmark (not a test): server CPU per 640x480@30 stream through each
// filter, for docs/benchmarks.md (## Filters). Run through
// ci/bench-filters.sh.
//
// STREAMS PlayerEndpoints play a 640x480@30 VP8 WebM; each goes to a
// WebRtcEndpoint received (and decoded) by its own headless Chromium page.
// Modes: the baseline decodes in the player and re-encodes VP8 for the
// WebRtcEndpoint (what any filter costs at least: one decode, one encode);
// the filters get the encoded stream, which the player's agnosticbin
// decodes for them, and their agnosticbin re-encodes. Server CPU
// (utime+stime of /proc/<pid>/stat) over WINDOW seconds, minus the idle
// server, divided by STREAMS.
'use strict';

const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');
const zlib = require('node:zlib');
const { execFileSync } = require('node:child_process');
const h = require('./lib/harness');
const { status, cpuOver } = require('./lib/proc-stats');
const kms = require('../shared/kms-process');
const { call, negotiate, pageStats, waitFor } = h;

// The generated JS clients of the module crates (crates/*/js, e.g. chroma),
// registered as an application would: copied next to a link to our
// node_modules, so they require() the kurento-client instance used here.
const jsDir = fs.mkdtempSync(path.join(os.tmpdir(), 'kms-bench-js-'));
fs.symlinkSync(path.join(__dirname, 'node_modules'), path.join(jsDir, 'node_modules'), 'dir');
const crates = path.join(__dirname, '..', '..', 'crates');
for (const c of fs.readdirSync(crates)) {
  const js = path.join(crates, c, 'js');
  if (!fs.existsSync(path.join(js, 'package.json'))) continue;
  fs.cpSync(js, path.join(jsDir, c), { recursive: true });
  h.kurentoClient.register(require(path.join(jsDir, c)));
}
process.on('exit', () => fs.rmSync(jsDir, { recursive: true, force: true }));

const N = Number(process.env.STREAMS || 2);
const WINDOW = Number(process.env.WINDOW || 10);

/** A 128x128 half-transparent PNG (the overlay image). */
function png(w, hh) {
  const table = Array.from({ length: 256 }, (_, n) => {
    let c = n;
    for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
    return c >>> 0;
  });
  const crc = (b) => { let c = 0xffffffff; for (const x of b) c = table[(c ^ x) & 0xff] ^ (c >>> 8); return (c ^ 0xffffffff) >>> 0; };
  const chunk = (type, data) => {
    const body = Buffer.concat([Buffer.from(type), data]);
    const out = Buffer.alloc(8 + data.length + 4);
    out.writeUInt32BE(data.length, 0);
    body.copy(out, 4);
    out.writeUInt32BE(crc(body), 8 + data.length);
    return out;
  };
  const ihdr = Buffer.alloc(13);
  ihdr.writeUInt32BE(w, 0);
  ihdr.writeUInt32BE(hh, 4);
  ihdr.set([8, 6, 0, 0, 0], 8);
  const row = Buffer.concat([Buffer.from([0]), Buffer.from(Array(w).fill([255, 200, 0, 160]).flat())]);
  return Buffer.concat([Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]), chunk('IHDR', ihdr),
    chunk('IDAT', zlib.deflateSync(Buffer.concat(Array(hh).fill(row)))), chunk('IEND', Buffer.alloc(0))]);
}

/** kurento-client 7.3.0 mangles addImage's params (see filters.test.js). */
async function rawInvoke(url, object, operation, operationParams) {
  const WebSocket = require('ws');
  const ws = new WebSocket(url);
  await new Promise((res, rej) => { ws.on('open', res); ws.on('error', rej); });
  const answer = await new Promise((resolve) => {
    ws.on('message', (d) => resolve(JSON.parse(d.toString())));
    ws.send(JSON.stringify({ jsonrpc: '2.0', id: 1, method: 'invoke', params: { object: object.id, operation, operationParams } }));
  });
  ws.close();
  if (answer.error) throw new Error(answer.error.message);
}

(async () => {
  const root = fs.mkdtempSync(path.join(os.tmpdir(), 'kms-bench-filters-'));
  const clip = path.join(root, 'clip.webm');
  const secs = WINDOW + 20;
  execFileSync('gst-launch-1.0', ['-q', '-e', ...(
    `videotestsrc pattern=smpte horizontal-speed=4 num-buffers=${secs * 30} ! video/x-raw,width=640,height=480,framerate=30/1 `
    + '! vp8enc deadline=1 cpu-used=4 target-bitrate=500000 keyframe-max-dist=60 end-usage=cbr ! queue ! webmmux name=m '
    + `! filesink location=${clip}`).split(/\s+/)], { stdio: 'ignore' });
  fs.writeFileSync(path.join(root, 'logo.png'), png(128, 128));
  const server = await kms.startServer({
    bin: h.BIN,
    prefix: 'kms-bench-filters-',
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
    { what: 'baseline: player decodes, VP8 re-encode → WebRtcEndpoint', filter: null },
    { what: 'GStreamerFilter `videoflip video-direction=horiz`', filter: ['GStreamerFilter', { command: 'videoflip video-direction=horiz' }] },
    { what: 'ImageOverlayFilter, one 128×128 PNG over a quarter of the frame', filter: ['ImageOverlayFilter', {}], overlay: true },
  ];
  const extra = (process.env.EXTRA_FILTERS || '').split(',').filter(Boolean);
  // FILTER_PARAMS='{"<Type>": {constructor params}}' for classes that need
  // some; "$ROOT" in a string is the media root (with logo.png); objects
  // with __module__/__type__ become that complex type.
  const params = JSON.parse((process.env.FILTER_PARAMS || '{}').replaceAll('$ROOT', root), (k, v) => {
    if (!v || typeof v !== 'object' || !v.__type__) return v;
    const { __module__: m, __type__: t, ...fields } = v;
    return h.kurentoClient.getComplexType(m ? `${m}.${t}` : t)(fields);
  });
  for (const type of extra) modes.push({ what: type, filter: [type, params[type] || {}] });
  let baseline = null;
  for (const { what, filter, overlay } of modes) {
    const pipeline = await call(client, 'create', 'MediaPipeline');
    const players = [];
    const opened = [];
    for (let i = 0; i < N; i++) {
      const player = await call(pipeline, 'create', 'PlayerEndpoint', { uri: `file://${clip}`, useEncodedMedia: !!filter });
      players.push(player);
      const webrtc = await call(pipeline, 'create', 'WebRtcEndpoint');
      if (filter) {
        const f = await call(pipeline, 'create', filter[0], filter[1]);
        // FILTER_CALLS='{"<Type>": ["method", ...]}': parameterless methods
        // called right after create (e.g. trackColorFromCalibrationRegion).
        for (const m of JSON.parse(process.env.FILTER_CALLS || '{}')[filter[0]] || []) await call(f, m);
        if (overlay) {
          await rawInvoke(server.url, f, 'addImage', {
            id: 'logo', uri: `file://${root}/logo.png`, offsetXPercent: 0.5, offsetYPercent: 0, widthPercent: 0.5,
            heightPercent: 0.5, keepAspectRatio: false, center: false,
          });
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
    const st = status(pid);
    const perStream = (cpu - idle) / N;
    if (baseline === null) baseline = perStream;
    const row = {
      what, streams: N, serverCpu: +cpu.toFixed(1), perStream: +perStream.toFixed(2),
      overBaseline: +(perStream - baseline).toFixed(2), fps: +fps.toFixed(1), rssMiB: +st.rssMiB.toFixed(0), threads: st.threads,
    };
    console.log(`| ${what} | ${N} | ${row.serverCpu} | ${row.perStream} | ${row.overBaseline} | ${row.fps} | ${row.rssMiB} MiB | ${row.threads} |`);
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
