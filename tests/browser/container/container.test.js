// The container image driven from outside, as an application server would:
// run by ci/test-docker.sh against a running container (KMS_URL,
// KMS_CONTAINER), not by tests/browser/run.sh. Proves the image's variables
// reach the objects (STUN/TURN on a WebRtcEndpoint, OUTPUT_BITRATE on every
// element and on the H.264 encoder of a transcoding recorder), media through
// the container (a Chromium loopback), the media volume (a recording owned
// by the unprivileged user), the slimmed plugin set (an H.264/AAC file
// played without gst-libav) and the tools the image carries besides
// GStreamer (a plate read by PlateDetectorFilter with the image's
// tesseract).
'use strict';

const test = require('node:test');
const assert = require('node:assert/strict');
const { execFileSync } = require('node:child_process');
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');
const h = require('../lib/harness');
const { call, waitFor, negotiate, pageStats, decodes } = h;
const modules = require('../lib/crowd-module');

// PlateDetectorFilter's JS client, registered as an application would.
const JS_OUT = modules.register(h, 'platedetector');
test.after(() => fs.rmSync(JS_OUT, { recursive: true, force: true }));

const URL = process.env.KMS_URL;
const CONTAINER = process.env.KMS_CONTAINER;
const STUN_IP = process.env.DOCKER_TEST_STUN_IP;
const STUN_PORT = Number(process.env.DOCKER_TEST_STUN_PORT);
const TURN_URL = process.env.DOCKER_TEST_TURN_URL;
const BITRATE = Number(process.env.DOCKER_TEST_BITRATE);

const inContainer = (...args) =>
  execFileSync('podman', ['--runtime', 'runc', '--cgroup-manager', 'cgroupfs', 'exec', CONTAINER, ...args]).toString();

let pages;
let browser;
let client;

test.before(async () => {
  assert.ok(URL && CONTAINER && STUN_IP && TURN_URL && BITRATE, 'run by ci/test-docker.sh');
  pages = await h.startPageServer();
  browser = await h.launchBrowser();
  client = await h.connect(URL);
});

test.after(async () => {
  if (client) client.close();
  if (browser) await browser.close();
  if (pages) await pages.close();
});

test('KMS_STUN_IP/PORT, KMS_TURN_URL and OUTPUT_BITRATE reach the objects', async () => {
  const pipeline = await call(client, 'create', 'MediaPipeline');
  const ep = await call(pipeline, 'create', 'WebRtcEndpoint');
  assert.equal(await call(ep, 'getStunServerAddress'), STUN_IP);
  assert.equal(await call(ep, 'getStunServerPort'), STUN_PORT);
  assert.equal(await call(ep, 'getTurnUrl'), TURN_URL);
  assert.equal(await call(ep, 'getEncoderBitrate'), BITRATE);
  const rec = await call(pipeline, 'create', 'RecorderEndpoint', { uri: 'file:///var/lib/kurento/x.webm' });
  assert.equal(await call(rec, 'getEncoderBitrate'), BITRATE, 'every element, not only WebRTC');
  await call(pipeline, 'release');
});

test('browser loopback through the container; H.264 recording in the volume at OUTPUT_BITRATE', async () => {
  const pipeline = await call(client, 'create', 'MediaPipeline');
  const ep = await call(pipeline, 'create', 'WebRtcEndpoint');
  await call(ep, 'connect', ep);
  const uri = 'file:///var/lib/kurento/docker-test.mp4';
  const rec = await call(pipeline, 'create', 'RecorderEndpoint', { uri, mediaProfile: 'MP4_VIDEO_ONLY' });
  await call(ep, 'connect', rec);
  const page = await browser.newPage(pages.url);
  const { events } = await negotiate(page, ep, 'sendrecv');
  const s = await decodes(page);
  assert.ok(s.width > 0 && s.height > 0, 'the container sent the video back');
  await waitFor('audio back', 10000, async () => (await pageStats(page)).audioPacketsReceived > 10);
  await waitFor('flowing in', 10000, () => events.flowIn.some((e) => e.state === 'FLOWING'));

  await waitFor('recorder flowing in', 20000, () => call(rec, 'isMediaFlowingIn', 'VIDEO'));
  await call(rec, 'record');
  // The VP8 → H.264 encoder the recorder needs is created with the
  // element's encoder bitrate (no REMB on a recorder to move it).
  const enc = await waitFor('an H.264 encoder in the pipeline', 15000, async () => {
    const dot = await call(pipeline, 'getGstreamerDot');
    const m = /Gst(X264Enc|OpenH264Enc)[^"]*?\\nbitrate=(\d+)/.exec(dot);
    return m ? { factory: m[1], bitrate: Number(m[2]) } : null;
  });
  const expected = enc.factory === 'X264Enc' ? BITRATE / 1000 : BITRATE; // x264enc counts kbit/s
  assert.equal(enc.bitrate, expected, `${enc.factory} bitrate`);
  await new Promise((r) => setTimeout(r, 2000));
  await call(rec, 'stopAndWait');
  const [size, owner] = inContainer('stat', '-c', '%s %U', '/var/lib/kurento/docker-test.mp4').trim().split(' ');
  assert.ok(Number(size) > 10000, `recorded ${size} bytes`);
  assert.equal(owner, 'kurento', 'written by the unprivileged user');
  await page.close();
  await call(pipeline, 'release');
});

test('PlayerEndpoint plays an H.264/AAC MP4 from the volume into Chromium (the image has no gst-libav)', async () => {
  // 4 s of a moving ball and a tone, made on the host and copied into the
  // container's media volume: in the container H.264 is decoded by
  // openh264dec and AAC by faad, then re-encoded to VP8/Opus for the page.
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'kms-docker-clip-'));
  const clip = path.join(dir, 'clip.mp4');
  execFileSync('gst-launch-1.0', ['-q', '-e',
    ...(`videotestsrc num-buffers=120 pattern=ball ! video/x-raw,width=320,height=240,framerate=30/1 `
      + `! x264enc tune=zerolatency key-int-max=15 ! video/x-h264,profile=constrained-baseline ! h264parse `
      + `! queue ! mp4mux name=m ! filesink location=${clip} `
      + `audiotestsrc num-buffers=188 ! audio/x-raw,rate=48000,channels=2 ! avenc_aac ! aacparse ! queue ! m.`).split(/\s+/)],
  { stdio: 'ignore', timeout: 60000 });
  execFileSync('podman', ['--runtime', 'runc', '--cgroup-manager', 'cgroupfs', 'cp', clip, `${CONTAINER}:/var/lib/kurento/clip.mp4`]);
  fs.rmSync(dir, { recursive: true, force: true });

  const pipeline = await call(client, 'create', 'MediaPipeline');
  const player = await call(pipeline, 'create', 'PlayerEndpoint', { uri: 'file:///var/lib/kurento/clip.mp4' });
  const errors = [];
  player.on('Error', (e) => errors.push(e));
  const ep = await call(pipeline, 'create', 'WebRtcEndpoint');
  await call(player, 'connect', ep);
  const page = await browser.newPage(pages.url);
  await negotiate(page, ep, 'recvonly', { videoCodec: 'VP8' });
  await call(player, 'play');
  const s = await decodes(page, 30, 20000);
  assert.equal(s.videoCodec, 'video/VP8', 'transcoded from H.264 in the container');
  await waitFor('audio from the AAC track', 10000, async () => (await pageStats(page)).audioPacketsReceived > 10);
  assert.deepEqual(errors, [], 'no Error events');
  await page.close();
  await call(pipeline, 'release');
});

test('PlateDetectorFilter reads a plate in the container (tesseract and its English data are in the image)', async () => {
  // Without them the create answers 40108 (NOT_AVAILABLE) naming the
  // missing tesseract.
  const pipeline = await call(client, 'create', 'MediaPipeline');
  const ep = await call(pipeline, 'create', 'WebRtcEndpoint');
  const filter = await call(pipeline, 'create', 'PlateDetectorFilter');
  await call(filter, 'setPlateWidthPercentage', 0.4);
  await call(ep, 'connect', filter);
  await call(filter, 'connect', ep);
  const found = [];
  const errors = [];
  filter.on('PlateDetected', (e) => found.push(e));
  filter.on('Error', (e) => errors.push(e));
  await call(filter, 'getName'); // subscriptions are in place once this answers
  const page = await browser.newPage(pages.url);
  await negotiate(page, ep, 'sendrecv', { picture: { color: '#3a3a3a', width: 640, height: 480 } });
  await decodes(page, 30);
  // A plate-like box (black text in a white bordered box, ~40 % wide), as
  // tests/browser/platedetector.test.js draws it.
  const picture = await page.evaluate((t) => {
    const c = document.createElement('canvas');
    c.width = 640;
    c.height = 480;
    const ctx = c.getContext('2d');
    ctx.fillStyle = '#3a3a3a';
    ctx.fillRect(0, 0, 640, 480);
    ctx.fillStyle = '#202020';
    ctx.fillRect(150, 200, 340, 110);
    ctx.fillStyle = '#ffffff';
    ctx.fillRect(190, 230, 260, 60);
    ctx.fillStyle = '#000000';
    ctx.font = 'bold 44px "DejaVu Sans Mono", monospace';
    ctx.textAlign = 'center';
    ctx.textBaseline = 'middle';
    ctx.fillText(t, 320, 262);
    return c.toDataURL('image/png');
  }, 'KRS4521');
  await page.evaluate((u) => window.kms.setPicture(u), picture);
  await waitFor('PlateDetected', 20000, async () => found.length > 0).catch((e) => {
    e.message += `; errors ${JSON.stringify(errors)}`;
    throw e;
  });
  assert.equal(found[0].plate, 'KRS4521', 'read by the tesseract in the image');
  assert.deepEqual(errors, []);
  await page.close();
  await call(pipeline, 'release');
});
