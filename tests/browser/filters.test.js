// Filters in headless Chromium through the real server and the official
// kurento-client: GStreamerFilter (video and audio processing, the element
// policy, bad commands) and ImageOverlayFilter.
'use strict';

const test = require('node:test');
const assert = require('node:assert/strict');
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');
const http = require('node:http');
const zlib = require('node:zlib');
const h = require('./lib/harness');
const { call, waitFor, negotiate, pageStats } = h;

/** A w×h PNG of one RGBA colour. */
function png(w, h, rgba) {
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
  ihdr.writeUInt32BE(h, 4);
  ihdr.set([8, 6, 0, 0, 0], 8); // 8 bits, RGBA
  const row = Buffer.concat([Buffer.from([0]), Buffer.from(Array(w).fill(rgba).flat())]);
  const raw = Buffer.concat(Array(h).fill(row));
  return Buffer.concat([
    Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]),
    chunk('IHDR', ihdr), chunk('IDAT', zlib.deflateSync(raw)), chunk('IEND', Buffer.alloc(0)),
  ]);
}

// Overlay images live in the server's media root.
const root = fs.mkdtempSync(path.join(os.tmpdir(), 'kms-filters-root-'));
const greenPng = png(16, 16, [0, 255, 0, 255]);
fs.writeFileSync(path.join(root, 'green.png'), greenPng);

const env = h.suite({ server: { resources: { mediaRoots: [root] } } });
test.after(() => fs.rmSync(root, { recursive: true, force: true }));

/** A page sending `opts` into endpoint E and showing what comes back,
 * with E → filter → E (or E → E without a filter). */
async function loop(filterParams, opts) {
  const pipeline = await call(env.client, 'create', 'MediaPipeline');
  const ep = await call(pipeline, 'create', 'WebRtcEndpoint');
  let filter = null;
  if (filterParams) {
    filter = await call(pipeline, 'create', filterParams.type, filterParams.params);
    await call(ep, 'connect', filter);
    await call(filter, 'connect', ep);
  } else {
    await call(ep, 'connect', ep);
  }
  const page = await env.browser.newPage(env.pages.url);
  await negotiate(page, ep, 'sendrecv', opts);
  await h.decodes(page, 10);
  return { pipeline, ep, filter, page };
}

const isRed = ([r, g, b]) => r > 150 && g < 100 && b < 100;
const isBlue = ([r, g, b]) => b > 150 && r < 100 && g < 100;
const LEFT = [0.05, 0.2, 0.3, 0.6];
const RIGHT = [0.65, 0.2, 0.3, 0.6];

test('GStreamerFilter videoflip mirrors the picture', async () => {
  const { pipeline, filter, page } = await loop(
    { type: 'GStreamerFilter', params: { command: 'videoflip video-direction=horiz' } },
    { picture: { split: ['#ff0000', '#0000ff'] } },
  );
  assert.equal(await call(filter, 'getCommand'), 'videoflip video-direction=horiz');
  // Sent: red left, blue right. Received: blue left, red right.
  const colors = await waitFor('a mirrored picture', 15000, async () => {
    const c = await h.regionColors(page, [LEFT, RIGHT]);
    return c && isBlue(c[0]) && isRed(c[1]) ? c : null;
  }).catch(async (e) => { throw new Error(`${e.message}: ${JSON.stringify(await h.regionColors(page, [LEFT, RIGHT]))}`); });
  assert.ok(colors);
  // setElementProperty changes the running element: back to identity.
  await call(filter, 'setElementProperty', 'video-direction', 'identity');
  await waitFor('the unmirrored picture', 15000, async () => {
    const c = await h.regionColors(page, [LEFT, RIGHT]);
    return c && isRed(c[0]) && isBlue(c[1]);
  });
  await page.close();
  await call(pipeline, 'release');
});

test('GStreamerFilter capsfilter scales the picture (raw caps negotiated through the filter)', async () => {
  const { pipeline, page } = await loop(
    { type: 'GStreamerFilter', params: { command: 'capsfilter caps=video/x-raw,width=160,height=120' } },
    { picture: { color: '#00ff00' } },
  );
  const s = await waitFor('a 160x120 picture', 15000, async () => {
    const st = await pageStats(page);
    return st.width === 160 && st.height === 120 ? st : null;
  }).catch(async (e) => { const st = await pageStats(page); throw new Error(`${e.message}: ${st.width}x${st.height}`); });
  assert.equal(s.width, 160);
  await page.close();
  await call(pipeline, 'release');
});

/** Largest audioLevel the page reports over `ms`. */
async function peakLevel(page, ms) {
  let peak = 0;
  const end = Date.now() + ms;
  while (Date.now() < end) {
    peak = Math.max(peak, (await pageStats(page)).audioLevel || 0);
    await new Promise((r) => setTimeout(r, 100));
  }
  return peak;
}

test('GStreamerFilter volume=0 silences the audio, setElementProperty brings it back', async () => {
  const { pipeline, filter, page } = await loop(
    { type: 'GStreamerFilter', params: { command: 'volume volume=0', filterType: 'AUDIO' } },
    { picture: { color: '#00ff00' }, tone: 440 },
  );
  await waitFor('audio packets', 15000, async () => (await pageStats(page)).audioPacketsReceived > 50);
  const silent = await peakLevel(page, 1500);
  assert.ok(silent < 0.01, `silenced: audioLevel ${silent}`);
  await call(filter, 'setElementProperty', 'volume', '1.0');
  const loud = await waitFor('audible tone', 10000, async () => {
    const l = (await pageStats(page)).audioLevel || 0;
    return l > 0.05 ? l : null;
  });
  assert.ok(loud > 0.05, `audible after volume=1: ${loud}`);
  // Bad values: unknown property, not a number, a type it cannot set.
  await assert.rejects(call(filter, 'setElementProperty', 'nope', '1'),
    (e) => e.code === 40001 && /No property named 'nope'/.test(e.message));
  await assert.rejects(call(filter, 'setElementProperty', 'volume', 'loud'),
    (e) => e.code === 40001 && /Cannot convert/.test(e.message));
  await page.close();
  await call(pipeline, 'release');
});

test('GStreamerFilter refuses file, network and path-setting commands, and bad commands, without effect', async () => {
  const pipeline = await call(env.client, 'create', 'MediaPipeline');
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'kms-filter-policy-'));
  const x = path.join(dir, 'x');
  const y = path.join(dir, 'y');
  const refused = [
    [`filesink location=${x}`, /filesink/],
    [`queue2 temp-template=${y}-XXXXXX`, /temp-template/],
    [`filesrc location=/etc/passwd`, /filesrc/],
    ['udpsink host=127.0.0.1 port=9', /udpsink/],
    ['nosuchelement', /no element "nosuchelement"/],
    ['videoflip video-direction=', /GStreamer element cannot be created/],
    ['videoflip ! videobalance', /only one element/],
    ['fakesrc', /pad templates don't match|not allowed/],
    ['capsfilter caps=video/x-raw,width=20000,height=20000', /Given command is not valid/],
  ];
  for (const [command, re] of refused) {
    await assert.rejects(call(pipeline, 'create', 'GStreamerFilter', { command }), (e) => {
      assert.equal(e.code, 40001, `${command}: ${e.code} ${e.message}`);
      assert.match(e.message, re, command);
      return true;
    }, command);
  }
  await assert.rejects(call(pipeline, 'create', 'GStreamerFilter', { command: 'videoflip', filterType: 'AUDIO' }),
    (e) => e.code === 40001 && /pad templates don't match/.test(e.message));
  assert.deepEqual(fs.readdirSync(dir), [], 'no file was created');
  // A path property cannot be set later either.
  const q = await call(pipeline, 'create', 'GStreamerFilter', { command: 'queue2' });
  await assert.rejects(call(q, 'setElementProperty', 'temp-template', `${y}-XXXXXX`),
    (e) => e.code === 40001 && /temp-template/.test(e.message));
  // The server keeps serving this connection.
  const ok = await call(pipeline, 'create', 'GStreamerFilter', { command: 'videobalance saturation=0.0' });
  assert.equal(await call(ok, 'getCommand'), 'videobalance saturation=0.0');
  await call(pipeline, 'release');
  fs.rmSync(dir, { recursive: true, force: true });
});

/**
 * kurento-client 7.3.0 cannot call addImage/removeImage: its
 * serializeParams (KurentoClient.js) replaces an `operationParams` object
 * that has an `id` key by that id, so the server gets
 * `"operationParams": "logo"`. These two go over a raw JSON-RPC WebSocket
 * (objects are reachable from any session).
 */
async function rawInvoke(object, operation, operationParams) {
  const WebSocket = require('ws');
  const ws = new WebSocket(env.server.url);
  await new Promise((res, rej) => { ws.on('open', res); ws.on('error', rej); });
  try {
    const answer = await new Promise((resolve, reject) => {
      const t = setTimeout(() => reject(new Error(`no answer to ${operation}`)), 20000);
      ws.on('message', (d) => { clearTimeout(t); resolve(JSON.parse(d.toString())); });
      ws.send(JSON.stringify({ jsonrpc: '2.0', id: 1, method: 'invoke', params: { object: object.id, operation, operationParams } }));
    });
    if (answer.error) throw Object.assign(new Error(answer.error.message), answer.error);
    return answer.result && answer.result.value;
  } finally {
    ws.close();
  }
}

const addImage = (filter, id, uri, x, y, w, hh, keepAspectRatio, center) => rawInvoke(filter, 'addImage', {
  id, uri, offsetXPercent: x, offsetYPercent: y, widthPercent: w, heightPercent: hh, keepAspectRatio, center,
});

const isGreen = ([r, g, b]) => g > 150 && r < 100 && b < 100;
const TOP_RIGHT = [0.6, 0.1, 0.3, 0.3];
const BOTTOM_LEFT = [0.1, 0.6, 0.3, 0.3];

test('ImageOverlayFilter draws an added image over its region and removes it again', async () => {
  const { pipeline, filter, page } = await loop({ type: 'ImageOverlayFilter', params: {} }, { picture: { color: '#0000ff' } });
  const colors = () => h.regionColors(page, [TOP_RIGHT, BOTTOM_LEFT]);
  const show = async (what, pred) => waitFor(what, 15000, async () => {
    const c = await colors();
    return c && pred(c) ? c : null;
  }).catch(async (e) => { throw new Error(`${e.message}: ${JSON.stringify(await colors())}`); });
  await show('the plain picture', (c) => isBlue(c[0]) && isBlue(c[1]));
  // Top-right quarter of the frame, stretched.
  await addImage(filter, 'logo', `file://${root}/green.png`, 0.5, 0, 0.5, 0.5, false, false);
  await show('the overlay in the top-right quarter', (c) => isGreen(c[0]) && isBlue(c[1]));
  await rawInvoke(filter, 'removeImage', { id: 'logo' });
  await show('the picture restored', (c) => isBlue(c[0]) && isBlue(c[1]));

  // Over HTTP too, from a server the test runs.
  const srv = http.createServer((req, res) => {
    if (req.url === '/green.png') { res.writeHead(200, { 'Content-Type': 'image/png' }); res.end(greenPng); return; }
    res.writeHead(404); res.end();
  });
  await new Promise((r) => srv.listen(0, '127.0.0.1', r));
  try {
    const base = `http://127.0.0.1:${srv.address().port}`;
    await addImage(filter, 'web', `${base}/green.png`, 0, 0.5, 0.5, 0.5, false, false);
    await show('the HTTP overlay in the bottom-left quarter', (c) => isBlue(c[0]) && isGreen(c[1]));

    // Unreachable or refused images: an error, and the filter keeps working.
    const rejects = (uri, code) => assert.rejects(addImage(filter, 'bad', uri, 0, 0, 1, 1, false, false),
      (e) => { assert.equal(e.code, code, `${uri}: ${e.code} ${e.message}`); assert.match(e.message, /image|Access denied/i); return true; });
    await rejects(`file://${root}/missing.png`, 40600);
    await rejects(`${base}/missing.png`, 40600);
    await rejects('http://127.0.0.1:1/x.png', 40600);
    await rejects('file:///etc/passwd', 40107);
    await assert.rejects(addImage(filter, 'bad', `file://${root}/green.png`, 0, 0, 0, 1, false, false),
      (e) => e.code === 40107 && /widthPercent/.test(e.message));
    const before = (await pageStats(page)).framesDecoded;
    await waitFor('frames after the errors', 10000, async () => (await pageStats(page)).framesDecoded > before + 15);
    await show('the HTTP overlay still there', (c) => isBlue(c[0]) && isGreen(c[1]));
  } finally {
    srv.closeAllConnections();
    srv.close();
  }
  await page.close();
  await call(pipeline, 'release');
});
