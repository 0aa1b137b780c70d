// ZBarFilter and FaceOverlayFilter proven in headless Chromium with the
// official kurento-client: a synthetic camera sends a QR code made by
// qrencode, or a real face (tests/browser/fixtures/astronaut.jpg), through
// the filter and back (loopback), and the page decodes the filter's output.
'use strict';

const test = require('node:test');
const assert = require('node:assert/strict');
const fs = require('node:fs');
const http = require('node:http');
const os = require('node:os');
const path = require('node:path');
const { execFileSync } = require('node:child_process');
const h = require('./lib/harness');
const { call, waitFor, negotiate, pageStats } = h;

// A media root for file:// overlay images (the server refuses files
// outside its roots).
const MEDIA_ROOT = fs.mkdtempSync(path.join(os.tmpdir(), 'kms-detect-media-'));
const env = h.suite({ server: { resources: { mediaRoots: [MEDIA_ROOT] } } });
test.after(() => fs.rmSync(MEDIA_ROOT, { recursive: true, force: true }));

const ASTRONAUT = `data:image/jpeg;base64,${fs.readFileSync(path.join(__dirname, 'fixtures', 'astronaut.jpg')).toString('base64')}`;
// Where the face is in astronaut.jpg (fractions of the picture; facedetect
// finds it at x 0.34–0.53, y 0.13–0.32): a patch well inside it, and
// patches far from it.
const FACE = [0.39, 0.17, 0.09, 0.09];
const AWAY = [[0.05, 0.75, 0.1, 0.1], [0.8, 0.8, 0.1, 0.1], [0.8, 0.05, 0.1, 0.1]];

const isGreen = ([r, g, b]) => g > 170 && r < 110 && b < 110;
const near = (a, b, tol) => a.every((v, i) => Math.abs(v - b[i]) <= tol);

/** A QR code of `text` as a PNG data URL (Debian qrencode). */
function qrDataUrl(text) {
  const png = execFileSync('qrencode', ['-o', '-', '-t', 'PNG', '-s', '8', '-m', '4', text]);
  return `data:image/png;base64,${png.toString('base64')}`;
}

/** An HTTP server for overlay pictures: `/green.png` (64×64 solid green,
 * drawn by the page's canvas). */
async function pictureServer(page) {
  const dataUrl = await page.evaluate(() => {
    const c = document.createElement('canvas');
    c.width = 64;
    c.height = 64;
    const ctx = c.getContext('2d');
    ctx.fillStyle = '#00ff00';
    ctx.fillRect(0, 0, 64, 64);
    return c.toDataURL('image/png');
  });
  const png = Buffer.from(dataUrl.split(',')[1], 'base64');
  fs.writeFileSync(path.join(MEDIA_ROOT, 'green.png'), png);
  const requests = [];
  const srv = http.createServer((req, res) => {
    requests.push(req.url);
    if (req.url === '/green.png') {
      res.writeHead(200, { 'Content-Type': 'image/png', 'Content-Length': png.length });
      res.end(png);
    } else {
      res.writeHead(404);
      res.end();
    }
  });
  await new Promise((r) => srv.listen(0, '127.0.0.1', r));
  return { base: `http://127.0.0.1:${srv.address().port}`, requests, close: () => new Promise((r) => srv.close(r)) };
}

/** A port nothing listens on. */
async function closedPort() {
  const srv = http.createServer();
  await new Promise((r) => srv.listen(0, '127.0.0.1', r));
  const { port } = srv.address();
  await new Promise((r) => srv.close(r));
  return port;
}

/** WebRtcEndpoint → filter → the same WebRtcEndpoint, a page sending
 * `picture` and decoding what comes back. */
async function loopback(filterType, picture) {
  const pipeline = await call(env.client, 'create', 'MediaPipeline');
  const ep = await call(pipeline, 'create', 'WebRtcEndpoint');
  const filter = await call(pipeline, 'create', filterType);
  await call(ep, 'connect', filter);
  await call(filter, 'connect', ep);
  const page = await env.browser.newPage(env.pages.url);
  return { pipeline, ep, filter, page, start: () => negotiate(page, ep, 'sendrecv', { picture }) };
}

async function framesAfter(page, n, ms = 40000) {
  const before = (await pageStats(page)).framesDecoded;
  await waitFor(`${n} more decoded frames`, ms, async () => (await pageStats(page)).framesDecoded >= before + n);
}

test('ZBarFilter: one CodeFound per appearance with the exact value: in view for seconds → one; taken away and shown again → one more', async () => {
  const tag = `${process.pid}-${Date.now()}`;
  const [a, b] = [`kurento-rs ZBar A ${tag}`, `kurento-rs ZBar B ${tag}`];
  const { pipeline, filter, page, start } = await loopback('ZBarFilter', {
    color: '#ffffff', image: qrDataUrl(a), width: 480, height: 480,
  });
  const found = [];
  filter.on('CodeFound', (e) => found.push(e));
  const values = () => JSON.stringify(found.map((e) => e.value.split(' ')[2]));
  // Requests on one connection are answered in order: the subscription is
  // in place once this answers.
  await call(filter, 'getName');
  await start();
  await h.decodes(page);
  await waitFor('CodeFound', 15000, async () => found.length > 0);
  // The code stays in view: ~6 s more of video through the filter.
  await framesAfter(page, 90);
  assert.equal(found.length, 1, `one event while in view, got ${values()}`);
  assert.equal(found[0].value, a);
  assert.equal(found[0].codeType, 'QR-Code');

  // Taken away for ~3.5 s (more than the 2 s absence), no event.
  await page.evaluate(() => window.kms.setPicture(null));
  await framesAfter(page, 50);
  assert.equal(found.length, 1, `no event without a code, got ${values()}`);
  // Another code, then the first one again: one event each.
  await page.evaluate((u) => window.kms.setPicture(u), qrDataUrl(b));
  await waitFor('CodeFound B', 15000, async () => found.length > 1);
  await page.evaluate((u) => window.kms.setPicture(u), qrDataUrl(a));
  await waitFor('CodeFound A again', 15000, async () => found.length > 2);
  await framesAfter(page, 30);
  assert.deepEqual(found.map((e) => e.value), [a, b, a], values());
  await call(pipeline, 'release');
  await page.close();
});

test('FaceOverlayFilter: the image (http, file) covers the detected face; unset removes it; an unreachable image is an Error event and video goes on', async () => {
  const { pipeline, filter, page, start } = await loopback('FaceOverlayFilter', {
    color: '#000000', image: ASTRONAUT, width: 480, height: 480,
  });
  const pics = await pictureServer(page);
  const errors = [];
  filter.on('Error', (e) => errors.push(e));
  await call(filter, 'getName');
  try {
    await start();
    await h.decodes(page);
    await framesAfter(page, 15);
    const [face0, ...away0] = await h.regionColors(page, [FACE, ...AWAY]);
    assert.ok(!isGreen(face0), `the face as sent: ${face0}`);

    // Bad parameters and URIs are refused by the call itself.
    await assert.rejects(call(filter, 'setOverlayedImage', `${pics.base}/green.png`, 0, 0, -1, 1), /widthPercent/);
    await assert.rejects(call(filter, 'setOverlayedImage', 'file:///etc/passwd', 0, 0, 1, 1), /media roots/);

    await call(filter, 'setOverlayedImage', `${pics.base}/green.png`, 0, 0, 1, 1);
    const face = await waitFor('green over the face', 15000, async () => {
      const [c] = await h.regionColors(page, [FACE]);
      return isGreen(c) ? c : null;
    });
    const away = (await h.regionColors(page, AWAY));
    away.forEach((c, i) => assert.ok(near(c, away0[i], 40), `away from the face unchanged: ${away0[i]} → ${c}`));
    assert.ok(pics.requests.includes('/green.png'), 'the image was fetched over HTTP');
    console.log(`# face patch ${face0} → ${face}`);

    await call(filter, 'unsetOverlayedImage');
    await waitFor('the face again', 10000, async () => {
      const [c] = await h.regionColors(page, [FACE]);
      return !isGreen(c) && near(c, face0, 50);
    });

    // The same picture as a file inside the media roots.
    await call(filter, 'setOverlayedImage', `file://${MEDIA_ROOT}/green.png`, 0, 0, 1, 1);
    await waitFor('green again (file://)', 15000, async () => isGreen((await h.regionColors(page, [FACE]))[0]));
    // An image nobody serves: an Error event, no overlay, video goes on.
    const missing = `http://127.0.0.1:${await closedPort()}/missing.png`;
    await call(filter, 'setOverlayedImage', missing, 0, 0, 1, 1);
    await waitFor('Error event', 15000, async () => errors.length > 0);
    assert.equal(errors.length, 1);
    assert.match(errors[0].description, /missing\.png/);
    assert.match(errors[0].type, /^RESOURCE_ERROR/);
    await framesAfter(page, 30);
    const [after] = await h.regionColors(page, [FACE]);
    assert.ok(!isGreen(after) && near(after, face0, 50), `the face shows again, uncovered: ${after}`);
  } finally {
    await pics.close();
    await call(pipeline, 'release');
    await page.close();
  }
});

test('FaceOverlayFilter: a picture without a face comes out unchanged', async () => {
  const color = [48, 96, 192];
  const { pipeline, filter, page, start } = await loopback('FaceOverlayFilter', {
    color: '#3060c0', width: 320, height: 240,
  });
  const pics = await pictureServer(page);
  try {
    await start();
    await h.decodes(page);
    await call(filter, 'setOverlayedImage', `${pics.base}/green.png`, 0, 0, 1, 1);
    await waitFor('the image fetched', 10000, async () => pics.requests.includes('/green.png'));
    await framesAfter(page, 45);
    const grid = [];
    for (let y = 0; y < 4; y++) for (let x = 0; x < 4; x++) grid.push([x / 4 + 0.02, y / 4 + 0.02, 0.2, 0.2]);
    const colors = await h.regionColors(page, grid);
    colors.forEach((c, i) => assert.ok(near(c, color, 30), `region ${grid[i]}: ${c}, sent ${color}`));
  } finally {
    await pics.close();
    await call(pipeline, 'release');
    await page.close();
  }
});
