// The pointerdetector module's PointerDetectorFilter
// (crates/kms-pointerdetector) through the real server and the official
// kurento-client with the module's generated JS client registered: a blue
// square in Chromium's synthetic camera, calibrated from the calibration
// region, moving into a window fires WindowIn, moving out WindowOut (none
// before calibration); a window's image is drawn; bad parameters get
// 40001 / 40600 and the server keeps serving.
'use strict';

const test = require('node:test');
const assert = require('node:assert/strict');
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');
const zlib = require('node:zlib');
const h = require('./lib/harness');
const { call, waitFor, negotiate, kurentoClient } = h;

// The generated JS module (crates/kms-pointerdetector/js), registered into
// the kurento-client instance the harness uses (see chroma.test.js).
const jsDir = fs.mkdtempSync(path.join(os.tmpdir(), 'kms-pointerdetector-js-'));
fs.cpSync(path.join(__dirname, '..', '..', 'crates', 'kms-pointerdetector', 'js'), path.join(jsDir, 'pointerdetector'),
  { recursive: true });
fs.symlinkSync(path.join(__dirname, 'node_modules'), path.join(jsDir, 'node_modules'), 'dir');
kurentoClient.register(require(path.join(jsDir, 'pointerdetector')));

/** A w×h RGBA PNG, `rgba(x, y)` giving each pixel. */
function png(w, hgt, rgba) {
  const crcTable = Array.from({ length: 256 }, (_, n) => {
    let c = n;
    for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
    return c >>> 0;
  });
  const crc = (buf) => {
    let c = 0xffffffff;
    for (const b of buf) c = crcTable[(c ^ b) & 0xff] ^ (c >>> 8);
    return (c ^ 0xffffffff) >>> 0;
  };
  const chunk = (type, data) => {
    const len = Buffer.alloc(4);
    len.writeUInt32BE(data.length);
    const body = Buffer.concat([Buffer.from(type), data]);
    const sum = Buffer.alloc(4);
    sum.writeUInt32BE(crc(body));
    return Buffer.concat([len, body, sum]);
  };
  const ihdr = Buffer.alloc(13);
  ihdr.writeUInt32BE(w, 0);
  ihdr.writeUInt32BE(hgt, 4);
  ihdr.set([8, 6, 0, 0, 0], 8); // 8 bits, RGBA
  const rows = [];
  for (let y = 0; y < hgt; y++) {
    rows.push(Buffer.from([0]), Buffer.from(Array.from({ length: w }, (_, x) => rgba(x, y)).flat()));
  }
  const raw = Buffer.concat(rows);
  return Buffer.concat([
    Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]),
    chunk('IHDR', ihdr), chunk('IDAT', zlib.deflateSync(raw)), chunk('IEND', Buffer.alloc(0)),
  ]);
}

const root = fs.mkdtempSync(path.join(os.tmpdir(), 'kms-pointerdetector-root-'));
fs.writeFileSync(path.join(root, 'yellow.png'), png(8, 8, () => [255, 255, 0, 255]));
const env = h.suite({ server: { resources: { mediaRoots: [root] } } });
test.after(() => {
  fs.rmSync(root, { recursive: true, force: true });
  fs.rmSync(jsDir, { recursive: true, force: true });
});

// The 320×240 picture is a 32×24 PNG scaled ×10: grey, with a blue 6×6
// (60×60 px) square whose top-left cell is (cx, cy).
const square = (cx, cy) => `data:image/png;base64,${png(32, 24, (x, y) => (
  x >= cx && x < cx + 6 && y >= cy && y < cy + 6 ? [0, 0, 255, 255] : [128, 128, 128, 255])).toString('base64')}`;
const AT_CALIBRATION = square(2, 9); // 20..80 × 90..150
const IN_WINDOW = square(23, 10); // 230..290 × 100..160
const CALIBRATION = { topRightCornerX: 20, topRightCornerY: 90, width: 60, height: 60 };
const WindowParam = (o) => kurentoClient.getComplexType('pointerdetector.WindowParam')(o);
const WindowMedia = (o) => kurentoClient.getComplexType('pointerdetector.PointerDetectorWindowMediaParam')(o);

test('PointerDetectorFilter: a calibrated blue square entering and leaving a window fires WindowIn, WindowOut', async () => {
  const pipeline = await call(env.client, 'create', 'MediaPipeline');
  const ep = await call(pipeline, 'create', 'WebRtcEndpoint');
  const filter = await call(pipeline, 'create', 'pointerdetector.PointerDetectorFilter', {
    calibrationRegion: WindowParam(CALIBRATION),
    windows: [WindowMedia({ id: 'goal', upperRightX: 220, upperRightY: 90, width: 80, height: 80 })],
  });
  assert.equal(filter.constructor.name, 'PointerDetectorFilter');
  const seen = [];
  filter.on('WindowIn', (e) => seen.push(['in', e.windowId]));
  filter.on('WindowOut', (e) => seen.push(['out', e.windowId]));
  const errors = [];
  filter.on('Error', (e) => errors.push(e));
  await call(ep, 'connect', filter);
  await call(filter, 'connect', ep);
  const page = await env.browser.newPage(env.pages.url);
  await negotiate(page, ep, 'sendrecv', { picture: { color: '#808080', image: AT_CALIBRATION } });
  await h.decodes(page, 10);
  const move = (url) => page.evaluate((u) => window.kms.setPicture(u), url);

  // Not calibrated yet: no colour is tracked, so no event.
  await move(IN_WINDOW);
  await new Promise((r) => setTimeout(r, 1500));
  assert.deepEqual(seen, [], 'no events before calibration');
  await move(AT_CALIBRATION);
  await new Promise((r) => setTimeout(r, 500));
  await call(filter, 'trackColorFromCalibrationRegion');
  await new Promise((r) => setTimeout(r, 500));
  assert.deepEqual(seen, [], 'no events while outside');

  await move(IN_WINDOW);
  await waitFor('WindowIn', 10000, async () => seen.length >= 1);
  await move(AT_CALIBRATION);
  await waitFor('WindowOut', 10000, async () => seen.length >= 2);
  assert.deepEqual(seen.slice(0, 2), [['in', 'goal'], ['out', 'goal']]);

  // A window with an image: drawn over its region (bottom-left, no pointer).
  await call(filter, 'addWindow', WindowMedia({ id: 'logo', upperRightX: 0, upperRightY: 180, width: 100, height: 60,
    image: `file://${root}/yellow.png`, imageTransparency: 0 }));
  const REGION = [0.05, 0.8, 0.2, 0.15];
  await waitFor('the yellow window image', 10000, async () => {
    const [[r, g, b]] = await h.regionColors(page, [REGION]);
    return r > 150 && g > 150 && b < 100;
  }).catch(async (e) => { throw new Error(`${e.message}: ${JSON.stringify(await h.regionColors(page, [REGION]))}`); });
  await call(filter, 'removeWindow', 'logo');
  await call(filter, 'clearWindows');
  await move(IN_WINDOW);
  await new Promise((r) => setTimeout(r, 1000));
  assert.equal(seen.length, 2, `no events after clearWindows: ${JSON.stringify(seen)}`);
  assert.deepEqual(errors, [], 'no Error events');
  await page.close();
  await call(pipeline, 'release');
});

test('PointerDetectorFilter: bad parameters get 40001/40600, the server keeps serving', async () => {
  const pipeline = await call(env.client, 'create', 'MediaPipeline');
  const code = async (p, c, re) => assert.rejects(p, (e) => {
    assert.equal(e.code, c, `${e.code} ${e.message}`); assert.match(e.message, re); return true;
  });
  await code(call(pipeline, 'create', 'PointerDetectorFilter', { calibrationRegion: WindowParam({ ...CALIBRATION, width: -1 }) }),
    40001, /width/);
  await code(call(pipeline, 'create', 'PointerDetectorFilter', {
    calibrationRegion: WindowParam(CALIBRATION),
    windows: [WindowMedia({ id: 'x', upperRightX: -5, upperRightY: 0, width: 10, height: 10 })],
  }), 40001, /upperRightX/);
  const f = await call(pipeline, 'create', 'PointerDetectorFilter', { calibrationRegion: WindowParam(CALIBRATION) });
  await code(call(f, 'addWindow', WindowMedia({ id: 'y', upperRightX: 0, upperRightY: 0, width: 0, height: 10 })), 40001, /width/);
  await code(call(f, 'addWindow', WindowMedia({ id: 'z', upperRightX: 0, upperRightY: 0, width: 10, height: 10,
    image: `file://${root}/missing.png` })), 40600, /image/i);
  // Still serving.
  await call(f, 'addWindow', WindowMedia({ id: 'ok', upperRightX: 0, upperRightY: 0, width: 10, height: 10 }));
  const info = await call(await call(env.client, 'getServerManager'), 'getInfo');
  assert.ok(info.modules.some((m) => m.name === 'pointerdetector' && m.factories.includes('PointerDetectorFilter')));
  await call(pipeline, 'release');
});
