// Mixing hubs (spec §10.10) proven in headless Chromium: Composite (grid
// video, N−1 audio) and AlphaBlending (pictures over a master), through the
// official kurento-client against the real server.
'use strict';

const test = require('node:test');
const assert = require('node:assert/strict');
const h = require('./lib/harness');
const { call, waitFor, negotiate, pageStats } = h;

// Composite.conf.ini: the output size used below (the official client only
// sends `mediaPipeline` to Composite's constructor) and the ports' encoder
// bitrate.
const env = h.suite({
  server: { modules: { 'Composite.conf.ini': 'width=640\nheight=240\nframerate=15\nbitrate=450000\n' } },
});

const RED = { color: '#ff0000', width: 320, height: 240 };
const BLUE = { color: '#0000ff', width: 320, height: 240 };
const isRed = ([r, g, b]) => r > 150 && g < 100 && b < 100;
const isBlue = ([r, g, b]) => b > 150 && r < 100 && g < 100;
const isBlack = ([r, g, b]) => r < 50 && g < 50 && b < 50;
// kurento-client 7.3.0 turns a MediaObject parameter into its id only for
// some parameter names (`sink`, `hub`, `object`); objects handed out on
// Node 20 are not `instanceof MediaObject`, so setMaster/setPortProperties
// get the port's id, as the wire format has it.
const ref = (o) => o.id;

/** A page whose WebRtcEndpoint sends into and/or receives from `port`. */
async function peer(pipeline, port, mode, opts = {}) {
  const ep = await call(pipeline, 'create', 'WebRtcEndpoint');
  if (mode !== 'recvonly') await call(ep, 'connect', port);
  if (mode !== 'sendonly') await call(port, 'connect', ep);
  const page = await env.browser.newPage(env.pages.url);
  await negotiate(page, ep, mode, opts);
  return { ep, page };
}

/** Waits until the page's picture satisfies `pred` for its regions. */
function shows(page, what, rects, pred, ms = 15000) {
  let last;
  return waitFor(what, ms, async () => {
    last = await h.regionColors(page, rects);
    if (process.env.KMS_TEST_VERBOSE) console.log(what, JSON.stringify(last));
    return last && pred(last) ? last : null;
  }).catch((e) => { throw new Error(`${e.message}; last colours ${JSON.stringify(last)}`); });
}

/** Audio energy the page played out over `ms`. */
async function energyOver(pages, ms) {
  const before = await Promise.all(pages.map((p) => pageStats(p)));
  await new Promise((r) => setTimeout(r, ms));
  const after = await Promise.all(pages.map((p) => pageStats(p)));
  return after.map((a, i) => a.totalAudioEnergy - before[i].totalAudioEnergy);
}

test('Composite: two pictures side by side, N−1 audio, one tile again when a port is released', async () => {
  const pipeline = await call(env.client, 'create', 'MediaPipeline');
  const composite = await call(pipeline, 'create', 'Composite');
  const portA = await call(composite, 'createHubPort');
  const portB = await call(composite, 'createHubPort');
  const portC = await call(composite, 'createHubPort');
  assert.equal(await call(portC, 'getEncoderBitrate'), 450000, 'Composite.conf.ini bitrate');
  // A: red picture and a tone; B: blue picture, silent microphone; both hear
  // the hub. C only watches and listens.
  const a = await peer(pipeline, portA, 'sendrecv', { picture: RED, tone: 440 });
  const b = await peer(pipeline, portB, 'sendrecv', { picture: BLUE, tone: 'silence' });
  const c = await peer(pipeline, portC, 'recvonly');

  const s = await h.decodes(c.page, 20);
  assert.equal(s.width, 640, 'output wider than either 320×240 input');
  assert.equal(s.height, 240);
  // Grid of 2: A's tile left, B's right (port order).
  await shows(c.page, 'red tile left, blue tile right', [[0.1, 0.2, 0.3, 0.6], [0.6, 0.2, 0.3, 0.6]],
    ([l, r]) => isRed(l) && isBlue(r));

  // N−1: B and C hear A's tone; A hears only B (silent) and C (no audio),
  // never itself: one shared mix would play A's tone back to A.
  await waitFor('audio at every page', 15000, async () =>
    (await Promise.all([a, b, c].map((p) => pageStats(p.page)))).every((x) => x.audioPacketsReceived > 20));
  const [ea, eb, ec] = await energyOver([a.page, b.page, c.page], 3000);
  if (process.env.KMS_TEST_VERBOSE) console.log('audio energy over 3 s: A', ea, 'B', eb, 'C', ec);
  assert.ok(eb > 0.05, `B hears A's tone (energy ${eb})`);
  assert.ok(ec > 0.05, `C hears A's tone (energy ${ec})`);
  assert.ok(ea < eb / 20, `A does not hear itself (energy ${ea} vs B's ${eb})`);

  const dot = () => call(composite, 'getGstreamerDot');
  assert.match(await dot(), /p2_aconv/, "B's branch in the hub");
  // Releasing B's port re-lays out: one tile, A's picture kept at its
  // aspect in the middle of the 640×240 output, black at the sides.
  await call(portB, 'release');
  await shows(c.page, 'one red tile in the middle', [[0.35, 0.2, 0.3, 0.6], [0.02, 0.2, 0.15, 0.6], [0.83, 0.2, 0.15, 0.6]],
    ([m, l, r]) => isRed(m) && isBlack(l) && isBlack(r));
  // B's branches leave the hub's bin (no leak).
  await waitFor("B's branches removed", 5000, async () => !/p2_/.test(await dot()));
  const after = await pageStats(c.page);
  await waitFor('C still decodes', 10000, async () => (await pageStats(c.page)).framesDecoded > after.framesDecoded + 10);

  // Ports coming and going quickly while media flows (A's media in, the
  // mix out to a PassThrough): nothing stays behind, the mix keeps going.
  const sink = await call(pipeline, 'create', 'PassThrough');
  for (let i = 0; i < 8; i++) {
    const p = await call(composite, 'createHubPort');
    await call(a.ep, 'connect', p);
    await call(p, 'connect', sink);
    await new Promise((r) => setTimeout(r, 150 * (i % 3)));
    await call(p, 'release');
  }
  const tags = async () => new Set((await dot()).match(/\bp[0-9]+_[a-z]/g).map((t) => t.replace(/_.*/, '')));
  await waitFor('only A and C left in the hub', 5000, async () => [...await tags()].sort().join() === 'p1,p3');
  const before = (await pageStats(c.page)).framesDecoded;
  await waitFor('C decodes after the churn', 10000, async () => (await pageStats(c.page)).framesDecoded > before + 10);

  // A port whose source is disconnected loses its tile (no frozen
  // picture); reconnected, it gets it back.
  const middle = [[0.35, 0.2, 0.3, 0.6]];
  await call(a.ep, 'disconnect', portA);
  await shows(c.page, 'no tile once A is disconnected', middle, ([m]) => isBlack(m));
  await call(a.ep, 'connect', portA);
  await shows(c.page, "A's tile back", middle, ([m]) => isRed(m));

  // A port joining while media flows gets a tile.
  const portD = await call(composite, 'createHubPort');
  const d = await peer(pipeline, portD, 'sendonly', { picture: BLUE, tone: 'silence' });
  await shows(c.page, 'red and blue tiles again', [[0.1, 0.2, 0.3, 0.6], [0.6, 0.2, 0.3, 0.6]],
    ([l, r]) => isRed(l) && isBlue(r));
  for (const p of [a, b, c, d]) await p.page.close();
  await call(pipeline, 'release');
});

test('AlphaBlending: master size, a port drawn where setPortProperties puts it, moved by a second call', async () => {
  const pipeline = await call(env.client, 'create', 'MediaPipeline');
  const hub = await call(pipeline, 'create', 'AlphaBlending');
  const master = await call(hub, 'createHubPort');
  const over = await call(hub, 'createHubPort');
  const out = await call(hub, 'createHubPort');
  const m = await peer(pipeline, master, 'sendonly', { picture: { color: '#ff0000', width: 480, height: 360 } });
  const o = await peer(pipeline, over, 'sendonly', { picture: BLUE });
  const v = await peer(pipeline, out, 'recvonly');
  await call(hub, 'setMaster', ref(master), 0);
  await call(hub, 'setPortProperties', 0.5, 0.5, 1, 0.4, 0.4, ref(over));
  await waitFor('master-sized output', 20000, async () => {
    const s = await pageStats(v.page);
    return s.width === 480 && s.height === 360;
  });
  // Blue in the lower right (x, y 0.5..0.9), red elsewhere.
  await shows(v.page, 'blue lower right over red', [[0.55, 0.55, 0.3, 0.3], [0.05, 0.05, 0.35, 0.35]],
    ([br, tl]) => isBlue(br) && isRed(tl));
  await call(hub, 'setPortProperties', 0, 0, 1, 0.4, 0.4, ref(over));
  await shows(v.page, 'blue moved to the upper left', [[0.05, 0.05, 0.3, 0.3], [0.55, 0.55, 0.35, 0.35]],
    ([tl, br]) => isBlue(tl) && isRed(br));
  // The master above the port (zOrder 5 > 1) hides it.
  await call(hub, 'setMaster', ref(master), 5);
  await shows(v.page, 'master drawn over the port', [[0.05, 0.05, 0.3, 0.3]], ([tl]) => isRed(tl));
  for (const p of [m, o, v]) await p.page.close();
  await call(pipeline, 'release');
});

test('hubs: foreign ports and bad values are refused, the server keeps serving', async () => {
  const pipeline = await call(env.client, 'create', 'MediaPipeline');
  const other = await call(env.client, 'create', 'MediaPipeline');
  const composite = await call(pipeline, 'create', 'Composite');
  const blend = await call(pipeline, 'create', 'AlphaBlending');
  const port = await call(composite, 'createHubPort');
  const blendPort = await call(blend, 'createHubPort');
  const foreign = await call(await call(other, 'create', 'Composite'), 'createHubPort');
  const code = (p) => p.then(() => null, (e) => e);

  // A HubPort of another pipeline connected in either way.
  let e = await code(call(foreign, 'connect', port));
  assert.equal(e && e.code, 40004, `cross-pipeline connect: ${e && e.message}`);
  e = await code(call(port, 'connect', foreign));
  assert.equal(e && e.code, 40004);
  // A port of another hub (same pipeline) given to AlphaBlending.
  e = await code(call(blend, 'setMaster', ref(port), 0));
  assert.equal(e && e.code, 40107, `setMaster with a Composite's port: ${e && e.message}`);
  assert.match(e.message, /does not belong to hub/);
  e = await code(call(blend, 'setPortProperties', 0, 0, 1, 0.5, 0.5, ref(port)));
  assert.equal(e && e.code, 40107);
  e = await code(call(blend, 'setPortProperties', 1.5, 0, 1, 0.5, 0.5, ref(blendPort)));
  assert.equal(e && e.code, 40001, `relativeX out of range: ${e && e.message}`);
  assert.match(e.message, /relativeX/);
  e = await code(call(blend, 'setPortProperties', 0, 0, 1, 0, 0.5, ref(blendPort)));
  assert.equal(e && e.code, 40001);
  // Still serving: a valid call on the same hub, a port released twice over.
  await call(blend, 'setPortProperties', 0.1, 0.1, 2, 0.5, 0.5, ref(blendPort));
  await call(blend, 'setMaster', ref(blendPort), 0);
  assert.match(await call(composite, 'getGstreamerDot'), /compositor/);
  await call(port, 'release');
  // Releasing a hub takes its bin (compositor, mixers) out of the pipeline.
  assert.match(await call(pipeline, 'getGstreamerDot'), /compositor/);
  await call(composite, 'release');
  await call(blend, 'release');
  assert.doesNotMatch(await call(pipeline, 'getGstreamerDot'), /compositor|audiotestsrc/);
  await call(pipeline, 'release');
  await call(other, 'release');
});

test('Composite constructor values on the wire: out of range → 40001', async () => {
  // The official client drops Composite's width/height/framerate (its kmd
  // lacks them), so this goes over a raw WebSocket.
  const WebSocket = require('ws');
  const ws = new WebSocket(env.server.url);
  await new Promise((res, rej) => { ws.on('open', res); ws.on('error', rej); });
  let id = 1;
  const send = (method, params) => new Promise((resolve) => {
    const rid = id++;
    const onMsg = (d) => {
      const m = JSON.parse(d.toString());
      if (m.id === rid) { ws.off('message', onMsg); resolve(m); }
    };
    ws.on('message', onMsg);
    ws.send(JSON.stringify({ jsonrpc: '2.0', id: rid, method, params }));
  });
  const p = await send('create', { type: 'MediaPipeline' });
  const sessionId = p.result.sessionId;
  const mk = (ctor) => send('create', { type: 'Composite', constructorParams: { mediaPipeline: p.result.value, ...ctor }, sessionId });
  for (const bad of [{ width: 0 }, { height: 100000 }, { framerate: 0 }]) {
    const r = await mk(bad);
    assert.equal(r.error && r.error.code, 40001, `${JSON.stringify(bad)}: ${JSON.stringify(r.error)}`);
  }
  const ok = await mk({ width: 320, height: 240, framerate: 10 });
  assert.match(ok.result.value, /_kurento\.Composite$/);
  await send('release', { object: p.result.value, sessionId });
  ws.close();
});
