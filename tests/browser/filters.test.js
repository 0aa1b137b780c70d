// Filters in headless Chromium through the real server and the official
// kurento-client: GStreamerFilter (video and audio processing, the element
// policy, bad commands) and ImageOverlayFilter.
'use strict';

const test = require('node:test');
const assert = require('node:assert/strict');
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');
const h = require('./lib/harness');
const { call, waitFor, negotiate, pageStats } = h;

const env = h.suite();

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
