// The chroma module's ChromaFilter (crates/kms-chroma) through the real
// server and the official kurento-client with the module's generated JS
// client registered, as an application would: a green-screen picture from
// Chromium's synthetic camera gets its green replaced by the background
// image (pixel check on the decoded picture), unsetBackground/setBackground
// switch it live, bad constructor parameters get 40001 / 40600 and the
// server keeps serving.
'use strict';

const test = require('node:test');
const assert = require('node:assert/strict');
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');
const http = require('node:http');
const zlib = require('node:zlib');
const h = require('./lib/harness');
const { call, waitFor, negotiate, pageStats, kurentoClient } = h;

// The generated JS module (crates/kms-chroma/js) require()s kurento-client
// as an application's node_modules would provide it: copied next to a link
// to ours, so it registers into the very instance the harness uses.
const jsDir = fs.mkdtempSync(path.join(os.tmpdir(), 'kms-chroma-js-'));
fs.cpSync(path.join(__dirname, '..', '..', 'crates', 'kms-chroma', 'js'), path.join(jsDir, 'chroma'), { recursive: true });
fs.symlinkSync(path.join(__dirname, 'node_modules'), path.join(jsDir, 'node_modules'), 'dir');
kurentoClient.register(require(path.join(jsDir, 'chroma')));

/** A w×h PNG of one RGBA colour. */
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
  const row = Buffer.concat([Buffer.from([0]), Buffer.from(Array(w).fill(rgba).flat())]);
  const raw = Buffer.concat(Array(hgt).fill(row));
  return Buffer.concat([
    Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]),
    chunk('IHDR', ihdr), chunk('IDAT', zlib.deflateSync(raw)), chunk('IEND', Buffer.alloc(0)),
  ]);
}

// Background images live in the server's media root.
const root = fs.mkdtempSync(path.join(os.tmpdir(), 'kms-chroma-root-'));
const bluePng = png(16, 16, [0, 0, 255, 255]);
const yellowPng = png(16, 16, [255, 255, 0, 255]);
fs.writeFileSync(path.join(root, 'blue.png'), bluePng);

const env = h.suite({ server: { resources: { mediaRoots: [root] } } });
test.after(() => {
  fs.rmSync(root, { recursive: true, force: true });
  fs.rmSync(jsDir, { recursive: true, force: true });
});

const isGreen = ([r, g, b]) => g > 150 && r < 100 && b < 100;
const isRed = ([r, g, b]) => r > 150 && g < 100 && b < 100;
const isBlue = ([r, g, b]) => b > 150 && r < 100 && g < 100;
const isYellow = ([r, g, b]) => r > 150 && g > 150 && b < 100;
// The 320×240 picture: green screen on the left, a red "actor" on the right.
const LEFT = [0.05, 0.1, 0.3, 0.3];
const RIGHT = [0.65, 0.2, 0.3, 0.6];
// The calibration window, in pixels, inside the green half.
const WINDOW = { topRightCornerX: 20, topRightCornerY: 140, width: 100, height: 80 };

/** A create over a raw JSON-RPC WebSocket, for parameters kurento-client
 * itself refuses before sending (a missing required `window`). */
async function rawCreate(type, constructorParams) {
  const WebSocket = require('ws');
  const ws = new WebSocket(env.server.url);
  await new Promise((res, rej) => { ws.on('open', res); ws.on('error', rej); });
  try {
    const answer = await new Promise((resolve, reject) => {
      const t = setTimeout(() => reject(new Error(`no answer to create ${type}`)), 20000);
      ws.on('message', (d) => { clearTimeout(t); resolve(JSON.parse(d.toString())); });
      ws.send(JSON.stringify({ jsonrpc: '2.0', id: 1, method: 'create', params: { type, constructorParams } }));
    });
    return answer;
  } finally {
    ws.close();
  }
}

test('ChromaFilter replaces the calibrated green with the background image; set/unsetBackground switch it live', async () => {
  const pipeline = await call(env.client, 'create', 'MediaPipeline');
  const ep = await call(pipeline, 'create', 'WebRtcEndpoint');
  // The generated module's class, with its complex type, through the client.
  const window = kurentoClient.getComplexType('chroma.WindowParam')(WINDOW);
  const filter = await call(pipeline, 'create', 'chroma.ChromaFilter', { window, backgroundImage: `file://${root}/blue.png` });
  assert.match(filter.id, /_chroma\.ChromaFilter$/);
  assert.equal(filter.constructor.name, 'ChromaFilter');
  const errors = [];
  filter.on('Error', (e) => errors.push(e));
  await call(ep, 'connect', filter);
  await call(filter, 'connect', ep);
  const page = await env.browser.newPage(env.pages.url);
  await negotiate(page, ep, 'sendrecv', { picture: { split: ['#00ff00', '#ff0000'] } });
  await h.decodes(page, 10);

  const colors = () => h.regionColors(page, [LEFT, RIGHT]);
  const show = async (what, pred) => waitFor(what, 15000, async () => {
    const c = await colors();
    return c && pred(c) ? c : null;
  }).catch(async (e) => { throw new Error(`${e.message}: ${JSON.stringify(await colors())}`); });

  // Calibration takes the first 60 frames (4 s at the page's 15 fps).
  await show('the green screen replaced by blue, the red kept', (c) => isBlue(c[0]) && isRed(c[1]));
  await call(filter, 'unsetBackground');
  await show('the green screen back', (c) => isGreen(c[0]) && isRed(c[1]));

  // Over HTTP, from a server the test runs.
  const srv = http.createServer((req, res) => {
    if (req.url === '/yellow.png') { res.writeHead(200, { 'Content-Type': 'image/png' }); res.end(yellowPng); return; }
    res.writeHead(404); res.end();
  });
  await new Promise((r) => srv.listen(0, '127.0.0.1', r));
  try {
    const base = `http://127.0.0.1:${srv.address().port}`;
    await call(filter, 'setBackground', `${base}/yellow.png`);
    await show('the green screen replaced by yellow', (c) => isYellow(c[0]) && isRed(c[1]));
    // Unreachable or refused images: an error, the filter keeps its image.
    const rejects = (uri, code) => assert.rejects(call(filter, 'setBackground', uri),
      (e) => { assert.equal(e.code, code, `${uri}: ${e.code} ${e.message}`); return true; });
    await rejects(`${base}/missing.png`, 40600);
    await rejects('http://127.0.0.1:1/x.png', 40600);
    await rejects('file:///etc/passwd', 40107);
    const before = (await pageStats(page)).framesDecoded;
    await waitFor('frames after the errors', 10000, async () => (await pageStats(page)).framesDecoded > before + 15);
    await show('the yellow background still there', (c) => isYellow(c[0]) && isRed(c[1]));
  } finally {
    srv.closeAllConnections();
    srv.close();
  }
  assert.deepEqual(errors, [], 'no Error events');
  await page.close();
  await call(pipeline, 'release');
});

test('ChromaFilter: bad constructor parameters get 40001/40600, the server keeps serving', async () => {
  const pipeline = await call(env.client, 'create', 'MediaPipeline');
  const bad = async (params, code, re) => assert.rejects(call(pipeline, 'create', 'ChromaFilter', params),
    (e) => { assert.equal(e.code, code, `${JSON.stringify(params)}: ${e.code} ${e.message}`); assert.match(e.message, re); return true; });
  const win = (o) => kurentoClient.getComplexType('chroma.WindowParam')(Object.assign({}, WINDOW, o));
  await bad({ window: win({ width: -4 }) }, 40001, /width/);
  await bad({ window: win({ height: 0 }) }, 40001, /height/);
  await bad({ window: win({ topRightCornerX: -1 }) }, 40001, /topRightCornerX/);
  await bad({ window: win({}), backgroundImage: `file://${root}/missing.png` }, 40600, /image/i);
  await bad({ window: win({}), backgroundImage: 'file:///etc/passwd' }, 40107, /./);
  const missing = await rawCreate('ChromaFilter', { mediaPipeline: pipeline.id });
  assert.equal(missing.error && missing.error.code, 40001, JSON.stringify(missing));
  assert.match(missing.error.message, /window/);
  // Still serving: a good filter in the same pipeline, and the server answers.
  const ok = await call(pipeline, 'create', 'ChromaFilter', { window: win({}) });
  assert.match(ok.id, /_chroma\.ChromaFilter$/);
  const sm = await call(env.client, 'getServerManager');
  const info = await call(sm, 'getInfo');
  assert.ok(info.modules.some((m) => m.name === 'chroma' && m.factories.includes('ChromaFilter')), JSON.stringify(info.modules));
  // getKmd: the fused upstream descriptor.
  const kmd = JSON.parse(await call(sm, 'getKmd', 'chroma'));
  assert.deepEqual([kmd.name, kmd.remoteClasses[0].name, kmd.complexTypes[0].name], ['chroma', 'ChromaFilter', 'WindowParam']);
  await call(pipeline, 'release');
});
