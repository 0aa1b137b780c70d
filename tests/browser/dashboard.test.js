// The dashboard (issue 11, beyond KMS): the page the server serves at
// /dashboard/ draws a running loopback's pipeline graph (getGstreamerDot laid
// out by Graphviz in the page) and plots the endpoint's bitrate, loss and
// RTT — checked in the same headless Chromium that runs the WebRTC peer.
// Behind the access token (401 without it); 404 while disabled. A
// screenshot is kept at tests/browser/artifacts/dashboard.png.
'use strict';

const test = require('node:test');
const assert = require('node:assert/strict');
const fs = require('node:fs');
const path = require('node:path');
const h = require('./lib/harness');

const TOKEN = 'dash-secret';
const ARTIFACTS = path.join(__dirname, 'artifacts');

let server;
let pages;
let browser;
let client;

test.before(async () => {
  server = await h.startServer({ websocket: { accessToken: TOKEN, dashboard: { enabled: true } } });
  pages = await h.startPageServer();
  browser = await h.launchBrowser();
  client = await h.connect(`${server.url}?access_token=${TOKEN}`);
});

test.after(async () => {
  if (client) client.close();
  if (browser) await browser.close();
  if (pages) await pages.close();
  if (server) {
    const r = await server.stop();
    if (process.env.KMS_TEST_VERBOSE) console.log(server.log());
    assert.ok(r && r.code === 0, `server exited cleanly: ${JSON.stringify(r)}`);
  }
});

const httpBase = (s) => s.url.replace(/^ws:/, 'http:').replace(/\/kurento$/, '');

test('the page and its data need the access token', async () => {
  const base = httpBase(server);
  for (const p of ['/dashboard/', '/dashboard/api/overview', '/dashboard/api/stats', '/dashboard/dashboard.js']) {
    assert.equal((await fetch(base + p)).status, 401, `${p} without a token`);
    assert.equal((await fetch(`${base}${p}?access_token=wrong`)).status, 401, `${p} with a wrong token`);
  }
  const ok = await fetch(`${base}/dashboard/api/overview`, { headers: { Authorization: `Bearer ${TOKEN}` } });
  assert.equal(ok.status, 200);
  const page = await (await fetch(`${base}/dashboard/?access_token=${TOKEN}`)).text();
  assert.match(page, /dashboard\.js\?access_token=dash-secret/, 'the page passes the token to its script');
});

test('disabled (the default): every dashboard path is 404', async () => {
  const off = await h.startServer();
  try {
    const base = httpBase(off);
    for (const p of ['/dashboard', '/dashboard/', '/dashboard/api/overview', '/dashboard/dashboard.js']) {
      assert.equal((await fetch(base + p)).status, 404, p);
    }
  } finally {
    const r = await off.stop();
    assert.ok(r && r.code === 0, `server exited cleanly: ${JSON.stringify(r)}`);
  }
});

test('a running loopback: the graph shows the pipeline\'s elements, the plots have points', async () => {
  const pipeline = await h.call(client, 'create', 'MediaPipeline');
  const ep = await h.call(pipeline, 'create', 'WebRtcEndpoint');
  await h.call(ep, 'connect', ep);
  const peer = await browser.newPage(pages.url);
  await h.negotiate(peer, ep, 'sendrecv', { videoCodec: 'VP8' });
  await h.decodes(peer);

  const dash = await browser.newPage(`${httpBase(server)}/dashboard/?access_token=${TOKEN}`);
  await dash.setViewportSize({ width: 1400, height: 1100 });
  // The endpoint's GStreamer bin is named after the last part of its id;
  // inside it, the transport: webrtcbin, or the native transport's sender.
  const transportElement = (process.env.KMS_WEBRTC_TRANSPORT || 'native') === 'native' ? 'native_send_video' : 'webrtcbin';
  const bin = ep.id.split('/').pop();
  const graph = `.graph[data-pipeline="${pipeline.id}"]`;
  const drawn = await h.waitFor('the pipeline graph', 20000, () => dash.evaluate(([sel, names]) => {
    const svg = document.querySelector(`${sel} svg`);
    if (!svg) return null;
    const text = svg.textContent;
    return names.every((n) => text.includes(n)) ? { nodes: svg.querySelectorAll('g.node').length, text } : null;
  }, [graph, [bin, transportElement]]), 250);
  assert.ok(drawn.nodes >= 10, `a real graph, not a placeholder: ${drawn.nodes} nodes`);

  const endpoint = `.endpoint[data-endpoint="${ep.id}"]`;
  // The bitrate plotted is the media flowing, not zeros: the last of the
  // page's samples is above 50 kbit/s both ways.
  const plotted = await h.waitFor('plotted samples', 20000, () => dash.evaluate((sel) => {
    const box = document.querySelector(sel);
    if (!box || Number(box.dataset.points) < 4) return null;
    const kbps = { in: Number(box.dataset.kbpsIn), out: Number(box.dataset.kbpsOut) };
    return kbps.in > 50 && kbps.out > 50 ? { points: Number(box.dataset.points), kbps } : null;
  }, endpoint), 250);
  assert.ok(plotted.points >= 4, JSON.stringify(plotted));
  const page = await dash.evaluate((sel) => {
    const box = document.querySelector(sel);
    const text = document.body.innerText;
    return { canvases: box.querySelectorAll('canvas').length, text };
  }, endpoint);
  assert.equal(page.canvases, 3, 'bitrate, loss and RTT plots');
  assert.ok(page.text.includes(ep.id) && page.text.includes('WebRtcEndpoint'), 'the element is listed');
  assert.ok(page.text.includes(pipeline.id), 'the pipeline is listed');

  // What the page plots comes from the server's counters: they move.
  const api = async () => (await (await fetch(`${httpBase(server)}/dashboard/api/stats`, {
    headers: { Authorization: `Bearer ${TOKEN}` } })).json()).endpoints.find((e) => e.id === ep.id);
  const a = await api();
  await new Promise((r) => setTimeout(r, 1200));
  const b = await api();
  const kbps = ((b.bytesIn - a.bytesIn) * 8) / 1200;
  assert.ok(kbps > 50, `inbound bitrate ${kbps.toFixed(0)} kbit/s`);
  assert.ok(b.bytesOut > a.bytesOut, 'outbound bytes move');

  fs.mkdirSync(ARTIFACTS, { recursive: true });
  await dash.screenshot({ path: path.join(ARTIFACTS, 'dashboard.png'), fullPage: true });
  await dash.click(`.pipeline[data-pipeline="${pipeline.id}"] .zoom button:text-is("4×")`);
  await dash.locator(graph).screenshot({ path: path.join(ARTIFACTS, 'dashboard-graph-4x.png') });
  await dash.close();
  await peer.close();
  await h.call(pipeline, 'release');
});
