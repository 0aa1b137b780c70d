// RecorderEndpoint through the real server: a browser's WebRTC stream
// (fake camera and microphone) recorded to every MediaProfileSpecType, to
// files and to a local HTTP server, inspected with ffprobe and decoded with
// ffmpeg. Every way a recording can end is checked: stopAndWait, release of
// the recorder or of its pipeline without stop, session garbage collection,
// SIGTERM (all finalized: duration in the header, seekable) and SIGKILL
// (still decodes at least 3 s of a 5 s recording).
'use strict';

const test = require('node:test');
const assert = require('node:assert/strict');
const fs = require('node:fs');
const http = require('node:http');
const os = require('node:os');
const path = require('node:path');
const { execFileSync } = require('node:child_process');
const h = require('./lib/harness');
const kms = require('../shared/kms-process');
const { call, waitFor, negotiate, pageStats } = h;

const RECORD_MS = 5500;
const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'kms-rec-'));

let pages;
let browser;

/** A server whose media root is `dir` (and a short GC period). */
async function startServer() {
  const s = await kms.startServer({
    bin: h.BIN,
    prefix: 'kms-rec-srv-',
    env: { KMS_LOG: 'info' },
    config: (port) => ({
      mediaServer: {
        resources: { garbageCollectorPeriod: 1, mediaRoots: [dir] },
        net: { websocket: { port, path: 'kurento', address: '127.0.0.1' } },
      },
    }),
  });
  // KMS_REC_LOG=<file>: the servers' logs, for debugging.
  const stop = s.stop.bind(s);
  s.stop = async () => {
    const r = await stop();
    if (process.env.KMS_REC_LOG) fs.appendFileSync(process.env.KMS_REC_LOG, s.log());
    return r;
  };
  return s;
}

test.before(async () => {
  pages = await h.startPageServer();
  browser = await h.launchBrowser();
});

test.after(async () => {
  if (browser) await browser.close();
  if (pages) await pages.close();
  if (!process.env.KMS_KEEP_RECORDINGS) fs.rmSync(dir, { recursive: true, force: true });
});

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

function probe(file) {
  const out = execFileSync('ffprobe', ['-v', 'error', '-show_format', '-show_streams', '-of', 'json', file]);
  return JSON.parse(out.toString());
}

/** Decodes the first stream of `kind` ('v' | 'a'): frames and the time of
 * the last one (s). */
function decode(file, kind) {
  // JPEG_VIDEO_ONLY: JPEG images one after another (an MJPEG stream).
  const fmt = file.endsWith('.jpg') ? ['-f', 'mjpeg'] : [];
  const out = execFileSync('ffmpeg', ['-v', 'error', ...fmt, '-i', file, '-map', `0:${kind}:0`, '-f', 'null', '-',
    '-progress', 'pipe:1']).toString();
  const last = (k) => { const m = [...out.matchAll(new RegExp(`^${k}=(\\S+)$`, 'gm'))].pop(); return m ? m[1] : null; };
  return { frames: Number(last('frame') || 0), seconds: Number(last('out_time_us') || 0) / 1e6 };
}

/** Top-level MP4 boxes and the movie duration (s) in the moov: mvhd's,
 * or for a fragmented file mvex/mehd's (in mvhd's timescale). */
function mp4Boxes(file) {
  const b = fs.readFileSync(file);
  const top = [];
  let mvhd = null;
  let timescale = null;
  let mehd = null;
  const walk = (start, end, depth) => {
    let pos = start;
    while (pos + 8 <= end) {
      let size = b.readUInt32BE(pos);
      const type = b.toString('latin1', pos + 4, pos + 8);
      let hdr = 8;
      if (size === 1) { size = Number(b.readBigUInt64BE(pos + 8)); hdr = 16; }
      if (size === 0) size = end - pos;
      if (depth === 0) top.push(type);
      if (type === 'moov' || type === 'mvex') walk(pos + hdr, pos + size, depth + 1);
      if (type === 'mvhd') {
        const v = b[pos + hdr];
        timescale = v === 0 ? b.readUInt32BE(pos + hdr + 12) : b.readUInt32BE(pos + hdr + 20);
        const d = v === 0 ? b.readUInt32BE(pos + hdr + 16) : Number(b.readBigUInt64BE(pos + hdr + 24));
        mvhd = d / timescale;
      }
      if (type === 'mehd') {
        const v = b[pos + hdr];
        mehd = v === 0 ? b.readUInt32BE(pos + hdr + 4) : Number(b.readBigUInt64BE(pos + hdr + 4));
      }
      pos += size;
    }
  };
  walk(0, b.length, 0);
  return { top, duration: mehd !== null && timescale ? mehd / timescale : mvhd };
}

const EBML_CUES = Buffer.from([0x1c, 0x53, 0xbb, 0x6b]);

/** Finalized: duration in the header and an index to seek with. */
function assertFinalized(file, what) {
  const p = probe(file);
  if (/\.(webm|mkv)$/.test(file)) {
    assert.ok(Number(p.format.duration) >= 4, `${what}: Matroska duration in the header (${p.format.duration})`);
    assert.ok(fs.readFileSync(file).includes(EBML_CUES), `${what}: Matroska cues written`);
  } else if (file.endsWith('.mp4')) {
    // Fragmented (crash-safe): finalized = the duration in the moov
    // (mehd) and the random-access index (mfra) at the end.
    const { top, duration } = mp4Boxes(file);
    assert.ok(duration >= 4, `${what}: duration in the moov ${duration}`);
    assert.equal(top[top.length - 1], 'mfra', `${what}: random-access index written (boxes ${top.slice(-3)})`);
  } else {
    assert.ok(Number(p.format.duration) >= 4, `${what}: duration ${p.format.duration}`);
  }
}

const EXPECT = {
  WEBM: ['vp8', 'opus'], MKV: ['h264', 'aac'], MP4: ['h264', 'aac'], FLV: ['h264', 'aac'],
  WEBM_VIDEO_ONLY: ['vp8'], WEBM_AUDIO_ONLY: ['opus'], MKV_VIDEO_ONLY: ['h264'], MKV_AUDIO_ONLY: ['aac'],
  MP4_VIDEO_ONLY: ['h264'], MP4_AUDIO_ONLY: ['aac'], JPEG_VIDEO_ONLY: ['mjpeg'],
};
const EXT = (p) => (p.startsWith('WEBM') ? 'webm' : p.startsWith('MKV') ? 'mkv' : p.startsWith('MP4') ? 'mp4'
  : p === 'FLV' ? 'flv' : 'jpg');

/** Streams, codecs, source resolution and frame rate, duration. */
function assertRecording(file, profile, sent, what = profile, stream = false) {
  const p = probe(file);
  const codecs = p.streams.map((s) => s.codec_name).sort();
  assert.deepEqual(codecs, [...EXPECT[profile]].sort(), `${what}: streams`);
  const v = p.streams.find((s) => s.codec_type === 'video');
  if (v) {
    assert.equal(`${v.width}x${v.height}`, `${sent.sentWidth}x${sent.sentHeight}`, `${what}: the source's resolution`);
    const d = decode(file, 'v');
    const fps = profile === 'JPEG_VIDEO_ONLY' ? null : d.frames / d.seconds;
    if (fps !== null) {
      assert.ok(d.seconds >= 4, `${what}: video decodes for ${d.seconds} s`);
      assert.ok(Math.abs(fps - sent.sentFps) <= sent.sentFps * 0.35,
        `${what}: the source's frame rate (${fps.toFixed(1)} fps recorded, ${sent.sentFps} sent)`);
    } else {
      assert.ok(d.frames >= 4 * sent.sentFps * 0.6, `${what}: ${d.frames} JPEG images`);
    }
  }
  if (p.streams.some((s) => s.codec_type === 'audio')) {
    const a = decode(file, 'a');
    assert.ok(a.seconds >= 4, `${what}: audio decodes for ${a.seconds} s`);
  }
  // A stream (upload) is written forward only: no duration in its header.
  if (profile !== 'JPEG_VIDEO_ONLY' && !stream) {
    assert.ok(Number(p.format.duration) >= 4, `${what}: duration ${p.format.duration}`);
  }
}

/** A local HTTP server taking POST/PUT uploads into `dir`. */
async function startUploadServer() {
  const uploads = {};
  const srv = http.createServer((req, res) => {
    const name = path.basename(req.url);
    const u = { method: req.method, headers: req.headers, bytes: 0, done: false, file: path.join(dir, `up-${name}`) };
    uploads[name] = u;
    const out = fs.createWriteStream(u.file);
    req.on('data', (d) => { u.bytes += d.length; out.write(d); });
    req.on('end', () => out.end(() => { u.done = true; res.writeHead(200); res.end(); }));
    req.on('close', () => { u.closed = true; });
    req.on('error', (e) => { u.error = String(e); });
  });
  await new Promise((r) => srv.listen(0, '127.0.0.1', r));
  return { uploads, url: `http://127.0.0.1:${srv.address().port}`, close: () => new Promise((r) => srv.close(r)) };
}

/** A pipeline with a browser's WebRTC loopback, flowing. */
async function loopback(client) {
  const pipeline = await call(client, 'create', 'MediaPipeline');
  const webrtc = await call(pipeline, 'create', 'WebRtcEndpoint');
  await call(webrtc, 'connect', webrtc);
  const page = await browser.newPage(pages.url);
  await negotiate(page, webrtc, 'sendrecv');
  const stats = await waitFor('media from the browser', 30000, async () => {
    const s = await pageStats(page);
    return s.framesDecoded > 15 && s.sentWidth ? s : null;
  });
  return { pipeline, webrtc, page, stats };
}

async function recorder(pipeline, source, uri, mediaProfile, extra = {}, waitFlow = true) {
  const r = await call(pipeline, 'create', 'RecorderEndpoint', Object.assign({ uri, mediaProfile }, extra));
  const events = [];
  for (const ev of ['Recording', 'Paused', 'Stopped', 'UriEndpointStateChanged']) {
    r.on(ev, (e) => events.push(ev === 'UriEndpointStateChanged' ? `${ev}:${e.state}` : ev));
  }
  await call(source, 'connect', r);
  // KMS's advice: record once every recorded media type flows in.
  const kinds = (EXPECT[mediaProfile] || []).map((c) => (['vp8', 'h264', 'mjpeg'].includes(c) ? 'VIDEO' : 'AUDIO'));
  for (const k of waitFlow ? kinds : []) await waitFor(`${mediaProfile} ${k} flowing in`, 20000, () => call(r, 'isMediaFlowingIn', k));
  return { r, events, uri };
}

test('a browser stream recorded to every profile, to files and over HTTP; stopAndWait finalizes', async () => {
  const server = await startServer();
  const up = await startUploadServer();
  const client = await h.connect(server.url);
  try {
    const { pipeline, webrtc, page, stats } = await loopback(client);
    // KMS's answer for the split recorder it does not ship.
    const ksr = await call(pipeline, 'create', 'RecorderEndpoint',
      { uri: `file://${dir}/x.ksr`, mediaProfile: 'KURENTO_SPLIT_RECORDER' }).catch((e) => e);
    assert.equal(ksr.code, 40107, `KSR: ${ksr.message}`);
    const denied = await call(pipeline, 'create', 'RecorderEndpoint', { uri: 'file:///root/x.webm' }).catch((e) => e);
    assert.equal(denied.code, 40107, 'outside the media roots');

    const recs = {};
    for (const p of Object.keys(EXPECT)) recs[p] = await recorder(pipeline, webrtc, `file://${dir}/a/${p}.${EXT(p)}`, p);
    const uploadWebm = await recorder(pipeline, webrtc, `${up.url}/u.webm`, 'WEBM');
    const uploadMp4 = await recorder(pipeline, webrtc, `${up.url}/u.mp4`, 'MP4');
    const paused = await recorder(pipeline, webrtc, `file://${dir}/a/paused.webm`, 'WEBM');
    // `paused` first: one connection's calls run in order, so the later
    // recorders keep recording while the earlier ones finalize, and the
    // paused recording's length is checked below.
    const all = [paused, ...Object.values(recs), uploadWebm, uploadMp4];
    await Promise.all(all.map((x) => call(x.r, 'record')));
    assert.equal(await call(recs.WEBM.r, 'getState'), 'START');
    await sleep(2000);
    await call(paused.r, 'pause');
    assert.equal(await call(paused.r, 'getState'), 'PAUSE');
    await sleep(1500);
    await call(paused.r, 'record');
    await sleep(RECORD_MS - 3500);
    // Streamed while recording, not buffered until the end.
    for (const n of ['u.webm', 'u.mp4']) {
      assert.ok(up.uploads[n] && up.uploads[n].bytes > 10000, `${n}: uploaded while recording`);
      assert.equal(up.uploads[n].done, false, `${n}: upload still open`);
    }
    const sent = await pageStats(page);
    await Promise.all(all.map((x) => call(x.r, 'stopAndWait')));
    for (const x of all) {
      assert.equal(await call(x.r, 'getState'), 'STOP');
      assert.deepEqual(x.events.filter((e) => e !== 'Paused' && e !== 'UriEndpointStateChanged:PAUSE'),
        x === paused
          ? ['UriEndpointStateChanged:START', 'Recording', 'UriEndpointStateChanged:START', 'Recording',
            'UriEndpointStateChanged:STOP', 'Stopped']
          : ['UriEndpointStateChanged:START', 'Recording', 'UriEndpointStateChanged:STOP', 'Stopped'],
        `${x.uri}: events`);
    }
    assert.ok(paused.events.includes('Paused'));
    const src = { sentWidth: stats.sentWidth, sentHeight: stats.sentHeight, sentFps: sent.sentFps || 15 };
    for (const [p, x] of Object.entries(recs)) {
      const file = x.uri.slice('file://'.length);
      assertRecording(file, p, src);
      if (!p.startsWith('JPEG')) assertFinalized(file, p);
    }
    // The pause (1.5 s) is cut out of the file.
    const d = Number(probe(`${dir}/a/paused.webm`).format.duration);
    assert.ok(d > 3.2 && d < 4.6, `paused recording lasts ${d} s`);
    await waitFor('uploads complete', 10000, () => up.uploads['u.webm'].done && up.uploads['u.mp4'].done)
      .catch((e) => { throw new Error(`${e.message}: ${JSON.stringify(up.uploads)}`); });
    for (const [n, p] of [['u.webm', 'WEBM'], ['u.mp4', 'MP4']]) {
      const u = up.uploads[n];
      assert.equal(u.method, 'POST');
      assert.equal(u.headers['transfer-encoding'], 'chunked', `${n}: chunked upload`);
      assertRecording(u.file, p, src, `upload ${n}`, true);
    }
    await page.close();
    await call(pipeline, 'release');
  } finally {
    client.close();
    await up.close();
    const r = await server.stop();
    assert.ok(r && r.code === 0, `server exited cleanly: ${JSON.stringify(r)}`);
  }
});

test('release of the recorder or its pipeline, and session garbage collection, finalize the file', async () => {
  const server = await startServer();
  const client = await h.connect(server.url);
  const gcClient = await h.connect(server.url);
  try {
    const a = await loopback(client);
    const b = await loopback(gcClient);
    const r1 = await recorder(a.pipeline, a.webrtc, `file://${dir}/b/released.webm`, 'WEBM');
    const r2 = await recorder(a.pipeline, a.webrtc, `file://${dir}/b/pipeline.mp4`, 'MP4');
    const r3 = await recorder(a.pipeline, a.webrtc, `file://${dir}/b/pipeline.mkv`, 'MKV');
    const g1 = await recorder(b.pipeline, b.webrtc, `file://${dir}/b/gc.webm`, 'WEBM');
    const g2 = await recorder(b.pipeline, b.webrtc, `file://${dir}/b/gc.mp4`, 'MP4');
    await Promise.all([r1, r2, r3, g1, g2].map((x) => call(x.r, 'record')));
    await sleep(RECORD_MS);
    await call(r1.r, 'release');
    await call(a.pipeline, 'release');
    // The GC session's client goes away: the server collects its objects.
    gcClient.close();
    for (const f of ['released.webm', 'pipeline.mp4', 'pipeline.mkv']) assertFinalized(`${dir}/b/${f}`, f);
    await waitFor('the collected session\'s recordings finalized', 15000, () => {
      try {
        assertFinalized(`${dir}/b/gc.webm`, 'gc.webm');
        assertFinalized(`${dir}/b/gc.mp4`, 'gc.mp4');
        return true;
      } catch (e) {
        return false;
      }
    }, 250);
    const src = { sentWidth: a.stats.sentWidth, sentHeight: a.stats.sentHeight, sentFps: 15 };
    assertRecording(`${dir}/b/released.webm`, 'WEBM', src);
    assertRecording(`${dir}/b/pipeline.mp4`, 'MP4', src);
    assertRecording(`${dir}/b/gc.mp4`, 'MP4', { sentWidth: b.stats.sentWidth, sentHeight: b.stats.sentHeight, sentFps: 15 });
    await a.page.close();
    await b.page.close();
  } finally {
    client.close();
    const r = await server.stop();
    assert.ok(r && r.code === 0, `server exited cleanly: ${JSON.stringify(r)}`);
  }
});

test('SIGTERM finalizes recordings; after SIGKILL a 5 s recording still decodes for 3 s', async () => {
  for (const signal of ['SIGTERM', 'SIGKILL']) {
    const server = await startServer();
    const client = await h.connect(server.url);
    const s = await loopback(client);
    const names = ['WEBM', 'MKV', 'MP4', 'FLV'].map((p) => [p, `${dir}/${signal}/${p}.${EXT(p)}`]);
    const recs = [];
    for (const [p, f] of names) recs.push(await recorder(s.pipeline, s.webrtc, `file://${f}`, p));
    await Promise.all(recs.map((x) => call(x.r, 'record')));
    await sleep(5000);
    // Closed first: a client left open reconnects to the stopped server
    // and throws ECONNREFUSED outside the test (seen in CI). The session
    // and its recordings live on until the server goes.
    client.close();
    if (signal === 'SIGTERM') {
      const r = await server.stop();
      assert.ok(r && r.code === 0, `server exited cleanly on SIGTERM: ${JSON.stringify(r)}`);
      for (const [p, f] of names) {
        assertFinalized(f, `SIGTERM ${p}`);
        assertRecording(f, p, { sentWidth: s.stats.sentWidth, sentHeight: s.stats.sentHeight, sentFps: 15 }, `SIGTERM ${p}`);
      }
    } else {
      server.child.kill('SIGKILL');
      await server.exited;
      await server.stop();
      for (const [p, f] of names) {
        const v = decode(f, 'v');
        const a = decode(f, 'a');
        assert.ok(v.seconds >= 3 && v.frames >= 3 * 15 * 0.6, `SIGKILL ${p}: video decodes ${v.frames} frames, ${v.seconds} s`);
        assert.ok(a.seconds >= 3, `SIGKILL ${p}: audio decodes ${a.seconds} s`);
      }
    }
    await s.page.close();
  }
});

test('stopOnEndOfStream stops and finalizes at the source\'s end; record after stop starts a new file; gapsFix', async () => {
  // A 3 s VP8/Opus clip played without decoding (useEncodedMedia).
  execFileSync('gst-launch-1.0', ['-q', '-e', ...(`videotestsrc num-buffers=90 pattern=ball ! video/x-raw,width=320,height=240,framerate=30/1 `
    + `! vp8enc deadline=1 keyframe-max-dist=15 ! queue ! webmmux name=m ! filesink location=${dir}/clip.webm `
    + 'audiotestsrc num-buffers=141 ! audio/x-raw,rate=48000,channels=2 ! opusenc ! queue ! m.').split(/\s+/)],
  { stdio: 'ignore', timeout: 60000 });
  const server = await startServer();
  const client = await h.connect(server.url);
  try {
    const pipeline = await call(client, 'create', 'MediaPipeline');
    const player = await call(pipeline, 'create', 'PlayerEndpoint',
      { uri: `file://${dir}/clip.webm`, useEncodedMedia: true });
    const stops = await recorder(pipeline, player, `file://${dir}/eos/stops.webm`, 'WEBM', { stopOnEndOfStream: true }, false);
    const keeps = await recorder(pipeline, player, `file://${dir}/eos/keeps.webm`, 'WEBM', {}, false);
    await call(stops.r, 'record');
    await call(keeps.r, 'record');
    await call(player, 'play');
    await waitFor('Stopped at the end of the stream', 15000, () => stops.events.includes('Stopped'));
    assert.equal(await call(stops.r, 'getState'), 'STOP');
    assert.equal(await call(keeps.r, 'getState'), 'START', 'without stopOnEndOfStream the recorder waits for more');
    const d = Number(probe(`${dir}/eos/stops.webm`).format.duration);
    assert.ok(d >= 2.5 && d < 4, `the clip's length (${d} s)`);
    assert.ok(fs.readFileSync(`${dir}/eos/stops.webm`).includes(EBML_CUES), 'cues written');
    const frames = decode(`${dir}/eos/stops.webm`, 'v').frames;
    assert.ok(frames >= 60, `the clip's frames recorded (${frames})`);

    // record() after a stop: a new recording replaces the file.
    await call(keeps.r, 'stopAndWait');
    const first = fs.statSync(`${dir}/eos/keeps.webm`).size;
    assert.ok(first > 10000);
    await call(player, 'play');
    await call(keeps.r, 'record');
    await sleep(1500);
    await call(keeps.r, 'stopAndWait');
    assert.deepEqual(keeps.events, ['UriEndpointStateChanged:START', 'Recording', 'UriEndpointStateChanged:STOP', 'Stopped',
      'UriEndpointStateChanged:START', 'Recording', 'UriEndpointStateChanged:STOP', 'Stopped']);
    const d2 = Number(probe(`${dir}/eos/keeps.webm`).format.duration);
    assert.ok(d2 > 0.5 && d2 < 2.5, `the second recording only (${d2} s)`);
    await call(pipeline, 'release');
  } finally {
    client.close();
    await server.stop();
  }
  // gapsFix from RecorderEndpoint.conf.ini: FILL_IF_TRANSCODING is not
  // implemented (the kmd says so): create answers 40006.
  const bad = await kms.startServer({
    bin: h.BIN,
    prefix: 'kms-rec-srv-',
    files: { 'modules/kurento/RecorderEndpoint.conf.ini': 'gapsFix=FILL_IF_TRANSCODING\n' },
    config: (port) => ({ mediaServer: { resources: { mediaRoots: [dir] },
      net: { websocket: { port, path: 'kurento', address: '127.0.0.1' } } } }),
  });
  const c2 = await h.connect(bad.url);
  try {
    const p = await call(c2, 'create', 'MediaPipeline');
    const e = await call(p, 'create', 'RecorderEndpoint', { uri: `file://${dir}/x.webm` }).catch((x) => x);
    assert.equal(e.code, 40006, `FILL_IF_TRANSCODING: ${e.message}`);
  } finally {
    c2.close();
    await bad.stop();
  }
});
