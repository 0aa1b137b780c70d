// PlayerEndpoint through the real server, the official kurento-client and
// headless Chromium: clips made here with gst-launch (VP8/Opus WebM,
// H.264/AAC MP4) played from a media root, from a local HTTP server and
// from a local RTSP server into a WebRtcEndpoint reach the browser, which
// decodes their frames; EndOfStream, pause, play and seeks do what they
// say; bad URIs of every kind give their error and the server keeps
// serving; the file access policy refuses everything outside the roots
// with one answer, whether the file exists or not.
'use strict';

const test = require('node:test');
const assert = require('node:assert/strict');
const { execFileSync, spawn } = require('node:child_process');
const fs = require('node:fs');
const http = require('node:http');
const os = require('node:os');
const path = require('node:path');
const h = require('./lib/harness');
const kms = require('../shared/kms-process');
const { call, waitFor, negotiate, pageStats } = h;

let root; // the server's one media root
let outside; // a directory outside it
let server;
let pages;
let browser;
let client;
let httpSrv;
let httpBase;

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

function gst(pipeline) {
  execFileSync('gst-launch-1.0', ['-q', '-e', ...pipeline.split(/\s+/)], { stdio: 'ignore', timeout: 60000 });
}

/** Test clips: `secs` seconds of a moving ball and a tone. */
function makeClips() {
  const v = (secs) => `videotestsrc num-buffers=${secs * 30} pattern=ball ! video/x-raw,width=320,height=240,framerate=30/1`;
  const a = (secs) => `audiotestsrc num-buffers=${Math.ceil((secs * 48000) / 1024)} ! audio/x-raw,rate=48000,channels=2`;
  gst(`${v(3)} ! vp8enc deadline=1 keyframe-max-dist=15 ! queue ! webmmux name=m ! filesink location=${root}/short.webm `
    + `${a(3)} ! opusenc ! queue ! m.`);
  gst(`${v(10)} ! vp8enc deadline=1 keyframe-max-dist=15 ! queue ! webmmux name=m ! filesink location=${root}/long.webm `
    + `${a(10)} ! opusenc ! queue ! m.`);
  gst(`${v(3)} ! x264enc tune=zerolatency key-int-max=15 ! video/x-h264,profile=constrained-baseline ! h264parse `
    + `! queue ! mp4mux name=m ! filesink location=${root}/short.mp4 `
    + `${a(3)} ! avenc_aac ! aacparse ! queue ! m.`);
}

test.before(async () => {
  root = fs.mkdtempSync(path.join(os.tmpdir(), 'kms-player-root-'));
  outside = fs.mkdtempSync(path.join(os.tmpdir(), 'kms-player-outside-'));
  makeClips();
  fs.writeFileSync(path.join(root, 'not-media.webm'), 'this is text, not a video\n'.repeat(200));
  fs.mkdirSync(path.join(root, 'a-directory.webm'));
  fs.writeFileSync(path.join(outside, 'secret.webm'), fs.readFileSync(path.join(root, 'short.webm')));
  fs.symlinkSync(path.join(outside, 'secret.webm'), path.join(root, 'link-out.webm'));
  fs.symlinkSync(outside, path.join(root, 'dir-out'));
  fs.mkdirSync(path.join(root, 'sub'));
  server = await kms.startServer({
    bin: h.BIN,
    prefix: 'kms-player-',
    env: { KMS_LOG: 'info' },
    files: {
      'modules/kurento/UriEndpoint.conf.ini': `defaultPath=file://${root}/sub/\n`,
      'modules/kurento/PlayerEndpoint.conf.ini': 'rtspClientPortRange=47000-47999\n',
    },
    config: (port) => ({
      mediaServer: {
        resources: { garbageCollectorPeriod: 240, mediaRoots: [root] },
        net: { websocket: { port, path: 'kurento', address: '127.0.0.1' } },
      },
    }),
  });
  pages = await h.startPageServer();
  browser = await h.launchBrowser();
  client = await h.connect(server.url);
  httpSrv = http.createServer((req, res) => {
    if (req.url.startsWith('/private/')
      && req.headers.authorization !== `Basic ${Buffer.from('user:p@ss').toString('base64')}`) {
      res.writeHead(401, { 'WWW-Authenticate': 'Basic realm="media"' });
      res.end();
      return;
    }
    const file = path.join(root, path.basename(req.url));
    if (!/^\/(media|private)\//.test(req.url) || !fs.existsSync(file)) {
      res.writeHead(404);
      res.end('not found');
      return;
    }
    res.writeHead(200, { 'Content-Type': 'video/webm', 'Content-Length': fs.statSync(file).size });
    fs.createReadStream(file).pipe(res);
  });
  await new Promise((r) => httpSrv.listen(0, '127.0.0.1', r));
  httpBase = `http://127.0.0.1:${httpSrv.address().port}`;
});

test.after(async () => {
  // Every step runs even if one fails, so nothing keeps the process alive.
  let r;
  try {
    if (client) client.close();
    if (browser) await browser.close();
  } finally {
    if (httpSrv) { httpSrv.closeAllConnections(); httpSrv.close(); }
    if (pages) await pages.close();
    if (server) r = await server.stop();
    for (const d of [root, outside]) if (d) fs.rmSync(d, { recursive: true, force: true });
  }
  if (server) assert.ok(r && r.code === 0, `server exited cleanly: ${JSON.stringify(r)}`);
});

/** A player of `uri` connected to a WebRtcEndpoint that a recvonly page
 * receives; the player's events are collected. */
async function playerToBrowser(uri, params = {}, pageOpts = {}) {
  const pipeline = await call(client, 'create', 'MediaPipeline');
  const player = await call(pipeline, 'create', 'PlayerEndpoint', Object.assign({ uri }, params));
  const events = { eos: 0, states: [], errors: [], flowOut: [] };
  player.on('EndOfStream', () => { events.eos++; });
  player.on('UriEndpointStateChanged', (e) => events.states.push(e.state));
  player.on('Error', (e) => events.errors.push(e));
  player.on('MediaFlowOutStateChanged', (e) => events.flowOut.push(`${e.mediaType}:${e.state}`));
  const webrtc = await call(pipeline, 'create', 'WebRtcEndpoint');
  await call(player, 'connect', webrtc);
  const page = await browser.newPage(pages.url);
  await negotiate(page, webrtc, 'recvonly', pageOpts);
  return { pipeline, player, webrtc, page, events };
}

async function decodedAtLeast(page, n, ms = 20000) {
  return waitFor(`${n} decoded frames`, ms, async () => {
    const s = await pageStats(page);
    return s.framesDecoded >= n ? s : null;
  });
}

async function done(p) {
  await p.page.close();
  await call(p.pipeline, 'release');
}

test('a VP8/Opus WebM with useEncodedMedia reaches the browser undecoded, then EndOfStream', async () => {
  const p = await playerToBrowser('file://' + path.join(root, 'short.webm'), { useEncodedMedia: true });
  assert.equal(await call(p.player, 'getState'), 'STOP');
  await call(p.player, 'play');
  const s = await decodedAtLeast(p.page, 30);
  assert.equal(s.videoCodec, 'video/VP8');
  assert.equal(await call(p.player, 'isMediaTranscoding', 'VIDEO'), false, 'no decode, no encode');
  await waitFor('EndOfStream', 15000, () => p.events.eos === 1);
  const end = await pageStats(p.page);
  assert.ok(end.framesDecoded >= 75, `most of the 90 frames decoded (${end.framesDecoded})`);
  assert.ok(end.audioPacketsReceived > 50, `audio arrived (${end.audioPacketsReceived} packets)`);
  await waitFor('STOP after the end', 5000, () => p.events.states.at(-1) === 'STOP');
  assert.deepEqual(p.events.states, ['START', 'STOP']);
  assert.ok(p.events.flowOut.includes('VIDEO:FLOWING'), JSON.stringify(p.events.flowOut));
  // Played again from the start after the end.
  await call(p.player, 'play');
  await decodedAtLeast(p.page, end.framesDecoded + 30);
  await done(p);
});

test('an H.264/AAC MP4 is decoded and re-encoded for the browser, then EndOfStream', async () => {
  const p = await playerToBrowser('file://' + path.join(root, 'short.mp4'));
  await call(p.player, 'play');
  await decodedAtLeast(p.page, 30);
  assert.equal(await call(p.player, 'isMediaTranscoding', 'VIDEO'), true);
  await waitFor('EndOfStream', 15000, () => p.events.eos === 1);
  assert.equal(p.events.errors.length, 0, JSON.stringify(p.events.errors));
  await done(p);
});

test('an H.264 MP4 with useEncodedMedia reaches an H.264 browser without transcoding', async () => {
  const p = await playerToBrowser('file://' + path.join(root, 'short.mp4'), { useEncodedMedia: true }, { videoCodec: 'H264' });
  await call(p.player, 'play');
  const s = await decodedAtLeast(p.page, 30);
  assert.equal(s.videoCodec, 'video/H264');
  assert.equal(await call(p.player, 'isMediaTranscoding', 'VIDEO'), false, 'no decode, no encode');
  await waitFor('EndOfStream', 15000, () => p.events.eos === 1);
  assert.equal(p.events.errors.length, 0, JSON.stringify(p.events.errors));
  await done(p);
});

test('pause holds the picture, play resumes, setPosition moves getPosition and playback goes on', async () => {
  // A relative URI resolves against UriEndpoint defaultPath (<root>/sub/).
  const p = await playerToBrowser('../long.webm');
  assert.equal(await call(p.player, 'getUri'), '../long.webm');
  await call(p.player, 'play');
  await decodedAtLeast(p.page, 30);
  const info = await call(p.player, 'getVideoInfo');
  assert.equal(info.isSeekable, true);
  assert.ok(Math.abs(info.duration - 10000) < 300, `duration ${info.duration}`);
  assert.ok(info.seekableEnd >= 9000, JSON.stringify(info));

  await call(p.player, 'pause');
  assert.equal(await call(p.player, 'getState'), 'PAUSE');
  // What the encoder and the network still hold drains first (up to the
  // agnosticbin queue's second on a loaded machine).
  await sleep(2000);
  const held0 = (await pageStats(p.page)).framesDecoded;
  const pos0 = await call(p.player, 'getPosition');
  await sleep(1500);
  const held1 = (await pageStats(p.page)).framesDecoded;
  assert.ok(held1 - held0 <= 2, `paused: ${held1 - held0} frames decoded in 1.5 s`);
  assert.ok(Math.abs((await call(p.player, 'getPosition')) - pos0) < 100, 'position holds while paused');

  await call(p.player, 'play');
  await decodedAtLeast(p.page, held1 + 30, 10000);

  await call(p.player, 'setPosition', 7000);
  const after = await call(p.player, 'getPosition');
  assert.ok(after >= 6900 && after < 8000, `position after seek: ${after}`);
  const f0 = (await pageStats(p.page)).framesDecoded;
  await decodedAtLeast(p.page, f0 + 30, 10000);
  assert.ok((await call(p.player, 'getPosition')) > after, 'position advances after the seek');

  // Seek while paused, then resume.
  await call(p.player, 'pause');
  await call(p.player, 'setPosition', 1000);
  const pp = await call(p.player, 'getPosition');
  assert.ok(pp >= 900 && pp < 1500, `paused seek position ${pp}`);
  const f1 = (await pageStats(p.page)).framesDecoded;
  await call(p.player, 'play');
  await decodedAtLeast(p.page, f1 + 30, 10000);
  assert.equal(p.events.eos, 0);
  assert.deepEqual(p.events.states, ['START', 'PAUSE', 'START', 'PAUSE', 'START']);

  await call(p.player, 'stop');
  assert.equal(await call(p.player, 'getPosition'), 0);
  await assert.rejects(call(p.player, 'setPosition', 1000), (e) => e.code === 40700);
  await done(p);
});

test('an HTTP source plays, with credentials from the URI', async () => {
  const p = await playerToBrowser(`${httpBase.replace('//', '//user:p%40ss@')}/private/short.webm`, { useEncodedMedia: true });
  await call(p.player, 'play');
  await decodedAtLeast(p.page, 30);
  await waitFor('EndOfStream', 15000, () => p.events.eos === 1);
  assert.equal(p.events.errors.length, 0, JSON.stringify(p.events.errors));
  await done(p);
});

function startRtspServer() {
  return new Promise((resolve, reject) => {
    const child = spawn('/usr/bin/python3', [path.join(__dirname, 'lib', 'rtsp-server.py'), '0'], {
      stdio: ['ignore', 'pipe', 'inherit'],
    });
    let out = '';
    child.stdout.on('data', (d) => {
      out += d;
      const m = /READY (\d+)/.exec(out);
      if (m) resolve({ child, url: `rtsp://127.0.0.1:${m[1]}/test` });
    });
    child.on('exit', (code) => reject(new Error(`rtsp server exited ${code}`)));
  });
}

test('an RTSP source plays; a dropped stream is an Error and the player can play again', async () => {
  const rtsp = await startRtspServer();
  try {
    const p = await playerToBrowser(rtsp.url, { useEncodedMedia: true, networkCache: 200 });
    await call(p.player, 'play');
    const s = await decodedAtLeast(p.page, 60, 30000);
    assert.equal(s.videoCodec, 'video/VP8');
    // networkCache is rtspsrc's latency; the client ports come from the
    // configured range.
    const dot = await call(p.player, 'getElementGstreamerDot');
    assert.match(dot, /GstRTSPSrc/);
    assert.match(dot, /latency=200/);
    assert.match(dot, /port-range=\\?"47000-47999/);
    rtsp.child.kill('SIGKILL');
    await waitFor('an Error for the dropped stream', 20000, () => p.events.errors.length > 0);
    assert.equal(p.events.errors[0].type, 'INVALID_URI');
    await waitFor('STOP', 5000, () => p.events.states.at(-1) === 'STOP');
    await call(p.player, 'play');
    await waitFor('an Error for the refused connection', 20000, () => p.events.errors.length > 1);
    await done(p);
  } finally {
    rtsp.child.kill('SIGKILL');
  }
});

/** Plays `uri` (no browser) and resolves with the Error event. */
async function playError(uri, params = {}) {
  const pipeline = await call(client, 'create', 'MediaPipeline');
  try {
    const player = await call(pipeline, 'create', 'PlayerEndpoint', Object.assign({ uri }, params));
    const errors = [];
    player.on('Error', (e) => errors.push(e));
    const states = [];
    player.on('UriEndpointStateChanged', (e) => states.push(e.state));
    await call(player, 'play');
    await waitFor(`an Error for ${uri}`, 20000, () => errors.length > 0);
    await waitFor('STOP', 5000, () => states.at(-1) === 'STOP');
    // The endpoint can be told to play again: the same error again.
    await call(player, 'play');
    await waitFor(`a second Error for ${uri}`, 20000, () => errors.length > 1);
    await call(player, 'release');
    return errors[0];
  } finally {
    await call(pipeline, 'release');
  }
}

test('bad URIs give an Error event with a type, and the endpoint plays again or is released', async () => {
  const closed = await kms.freePort();
  const cases = [
    ['file://' + path.join(root, 'missing.webm'), 'INVALID_URI', /not found|No such file/i],
    ['file://' + path.join(root, 'a-directory.webm'), 'INVALID_URI', /directory|read/i],
    ['file://' + path.join(root, 'not-media.webm'), 'INVALID_MEDIA', /text file|type|demux/i],
    [`${httpBase}/media/missing.webm`, 'INVALID_URI', /not found|404/i],
    [`rtsp://127.0.0.1:${closed}/nothing`, 'INVALID_URI', /open|connect/i],
  ];
  for (const [uri, type, text] of cases) {
    const e = await playError(uri);
    assert.equal(e.type, type, `${uri}: ${JSON.stringify(e)}`);
    assert.match(e.description, text, uri);
  }
});

test('unknown or local-resource schemes are refused at create', async () => {
  const pipeline = await call(client, 'create', 'MediaPipeline');
  for (const uri of ['foo://host/x.webm', 'fd://0', 'http:/no-host']) {
    await assert.rejects(call(pipeline, 'create', 'PlayerEndpoint', { uri }), (e) => {
      assert.equal(e.code, 40107, `${uri}: ${e.message}`);
      return true;
    });
  }
  await call(pipeline, 'release');
});

test('file policy: anything outside the media roots is refused with one answer, existing or not', async () => {
  const pipeline = await call(client, 'create', 'MediaPipeline');
  const refusals = [
    'file:///etc/passwd',
    'file:///etc/shadow',
    'file:///etc/no-such-file',
    '../../../../../../etc/passwd',
    '../../../../../../etc/no-such-file',
    `file://${root}/../${path.basename(outside)}/secret.webm`,
    `file://${root}/%2e%2e/${path.basename(outside)}/secret.webm`,
    `file://${root}/%2E%2E/%2e%2e/etc/passwd`,
    `file://${root}/link-out.webm`,
    `file://${root}/dir-out/secret.webm`,
    `file://${root}/dir-out/no-such-file.webm`,
    `file://${outside}/secret.webm`,
  ];
  const answers = new Set();
  for (const uri of refusals) {
    const err = await call(pipeline, 'create', 'PlayerEndpoint', { uri }).then(() => null, (e) => e);
    assert.ok(err, `${uri} was accepted`);
    assert.equal(err.code, 40107, `${uri}: ${err.message}`);
    assert.match(err.message, /must be inside the server's media roots/);
    answers.add(err.message.split(uri).join('<uri>'));
  }
  assert.equal(answers.size, 1, [...answers].join('\n'));
  // Inside the root (also through a symlink that stays inside) is fine.
  fs.symlinkSync(path.join(root, 'short.webm'), path.join(root, 'alias.webm'));
  await call(pipeline, 'create', 'PlayerEndpoint', { uri: `file://${root}/alias.webm` });
  await call(pipeline, 'release');
  // The server keeps serving.
  const again = await call(client, 'create', 'MediaPipeline');
  await call(again, 'release');
  assert.ok(server.alive());
});
