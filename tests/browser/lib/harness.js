// Browser test harness: the real server binary on 127.0.0.1, headless Debian
// Chromium driven by playwright-core, the official kurento-utils in the page
// and the official kurento-client in Node (the tutorials' application
// server role).
'use strict';

const fs = require('node:fs');
const http = require('node:http');
const os = require('node:os');
const path = require('node:path');
const kms = require('../../shared/kms-process');

kms.installClientShims();
const kurentoClient = require('kurento-client');
const { chromium } = require('playwright-core');

const ROOT = path.resolve(__dirname, '..', '..', '..');
const BIN = process.env.KMS_BIN || path.join(ROOT, 'target', 'debug', 'kurento-media-server');
const CHROMIUM = process.env.CHROMIUM_BIN || '/usr/bin/chromium';
const PAGE_DIR = path.join(__dirname, '..', 'page');
const BUNDLE = path.join(__dirname, '..', 'build', 'bundle.js');
const { call } = kms;

/** Starts a server; `opts.modules` = { 'WebRtcEndpoint.conf.ini': text, ... }
 * (files of modules/kurento/), `opts.env` adds to the environment,
 * `opts.resources` to `mediaServer.resources` (e.g. `mediaRoots`),
 * `opts.websocket` to `mediaServer.net.websocket` (e.g. `dashboard`). */
function startServer(opts = {}) {
  const files = {};
  for (const [name, text] of Object.entries(opts.modules || {})) files[`modules/kurento/${name}`] = text;
  return kms.startServer({
    bin: BIN,
    prefix: 'kms-browser-',
    files,
    env: Object.assign({ KMS_LOG: 'info' }, opts.env || {}),
    config: (port) => ({
      mediaServer: {
        resources: Object.assign({ garbageCollectorPeriod: 240 }, opts.resources || {}),
        net: { websocket: Object.assign({ port, path: 'kurento', address: '127.0.0.1' }, opts.websocket || {}) },
      },
    }),
  });
}

/** Serves the test page and the kurento-utils bundle on 127.0.0.1 (or
 * `host`, e.g. an address a browser in a network namespace reaches). */
async function startPageServer(host = '127.0.0.1') {
  const srv = http.createServer((req, res) => {
    const name = req.url.split('?')[0].replace(/^\/+/, '') || 'index.html';
    const file = name === 'bundle.js' ? BUNDLE : path.join(PAGE_DIR, path.basename(name));
    fs.readFile(file, (err, data) => {
      if (err) { res.writeHead(404); res.end(); return; }
      res.writeHead(200, { 'Content-Type': file.endsWith('.html') ? 'text/html' : 'application/javascript' });
      res.end(data);
    });
  });
  await new Promise((r) => srv.listen(0, host, r));
  return { url: `http://${host}:${srv.address().port}/index.html`, close: () => new Promise((r) => srv.close(r)) };
}

/** Headless Debian Chromium with a fake camera and microphone;
 * `opts.executablePath` replaces the binary (e.g. a wrapper that starts it
 * in a network namespace), `opts.args` adds command line switches. */
async function launchBrowser(opts = {}) {
  const userDataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'kms-chromium-'));
  const context = await chromium.launchPersistentContext(userDataDir, {
    executablePath: opts.executablePath || CHROMIUM,
    headless: true,
    args: [
      '--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
      '--disable-background-networking', '--disable-component-update', '--disable-sync',
      '--use-fake-ui-for-media-stream', '--use-fake-device-for-media-stream',
      '--disable-features=WebRtcHideLocalIpsWithMdns',
    ].concat(opts.args || []),
  });
  return {
    context,
    async newPage(pageUrl) {
      const page = await context.newPage();
      page.on('console', (m) => { if (process.env.KMS_TEST_VERBOSE) console.log('[page]', m.text()); });
      page.on('pageerror', (e) => console.log('[page error]', e.message));
      await page.goto(pageUrl);
      return page;
    },
    async close() {
      await context.close();
      fs.rmSync(userDataDir, { recursive: true, force: true });
    },
  };
}

function connect(url) {
  return new Promise((resolve, reject) => {
    kurentoClient(url, { failAfter: 1, strict: true }, (err, client) => (err ? reject(err) : resolve(client)));
  });
}

async function waitFor(what, ms, fn, every = 100) {
  const deadline = Date.now() + ms;
  let last;
  for (;;) {
    last = await fn();
    if (last) return last;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, every));
  }
}

/**
 * The tutorials' signalling between a page's WebRtcPeer and a
 * WebRtcEndpoint: offer → processOffer → answer, trickle ICE both ways,
 * gatherCandidates. Returns the endpoint's events seen.
 */
async function negotiate(page, endpoint, mode, opts = {}) {
  const events = { candidates: 0, gatheringDone: false, flowIn: [], flowOut: [], all: [] };
  for (const ev of ['IceComponentStateChanged', 'NewCandidatePairSelected', 'DtlsConnectionStateChange',
    'MediaStateChanged', 'ConnectionStateChanged', 'MediaSessionStarted', 'DataChannelOpened', 'DataChannelClosed',
    'MediaTranscodingStateChanged']) {
    endpoint.on(ev, (e) => events.all.push(e));
  }
  // opts.candidateTypes (e.g. ['relay']): only the server's candidates of
  // those types reach the page (trickled or in the answer), to force a path.
  // opts.keep (a predicate on the candidate line) filters the same way.
  const types = opts.candidateTypes;
  const keep = opts.keep || ((c) => !types || types.some((t) => c.includes(` typ ${t}`)));
  endpoint.on('IceCandidateFound', (e) => {
    events.candidates++;
    events.found = (events.found || []).concat([e.candidate.candidate]);
    if (!keep(e.candidate.candidate)) return;
    page.evaluate((c) => window.kms.addCandidate(c), e.candidate).catch(() => {});
  });
  endpoint.on('IceGatheringDone', () => {
    events.gatheringDone = true;
    // How many candidates came before it (none may come after).
    events.foundAtDone = (events.found || []).length;
  });
  endpoint.on('MediaFlowInStateChanged', (e) => events.flowIn.push(e));
  endpoint.on('MediaFlowOutStateChanged', (e) => events.flowOut.push(e));
  await page.exposeFunction('onLocalCandidate', (c) => {
    events.pageCandidates = (events.pageCandidates || []).concat([c.candidate]);
    // opts.keepPage: only the page's candidates it passes reach the endpoint.
    if (opts.keepPage && !opts.keepPage(c.candidate)) return;
    const candidate = kurentoClient.getComplexType('IceCandidate')(c);
    endpoint.addIceCandidate(candidate, () => {});
  });
  const t = [performance.now()];
  const { keep: _keep, keepPage: _keepPage, ...pageOpts } = opts; // functions stay in Node
  const offer = await page.evaluate(([m, o]) => window.kms.start(m, o), [mode, pageOpts]);
  t.push(performance.now());
  const answer = await call(endpoint, 'processOffer', offer);
  t.push(performance.now());
  await call(endpoint, 'gatherCandidates');
  t.push(performance.now());
  const given = types || opts.keep ? answer.split('\r\n').filter((l) => !l.startsWith('a=candidate:') || keep(l)).join('\r\n') : answer;
  await page.evaluate((a) => window.kms.processAnswer(a), given);
  t.push(performance.now());
  // Milliseconds spent in: the page's offer, processOffer, gatherCandidates,
  // the page's processAnswer.
  const timing = t.slice(1).map((x, i) => Math.round(x - t[i]));
  return { events, offer, answer, timing };
}

function pageStats(page) {
  return page.evaluate(() => window.kms.stats());
}

/**
 * The usual fixtures of a test file, set up before its first test and torn
 * down after its last: one server (`opts.server`: startServer's options),
 * the page server, Chromium and a connected kurento-client. The server must
 * exit cleanly. Tests read them from the returned object once they run.
 */
function suite(opts = {}) {
  const test = require('node:test');
  const assert = require('node:assert/strict');
  const env = {};
  test.before(async () => {
    env.server = await startServer(opts.server || {});
    env.pages = await startPageServer();
    env.browser = await launchBrowser();
    env.client = await connect(env.server.url);
  });
  test.after(async () => {
    if (env.client) env.client.close();
    if (env.browser) await env.browser.close();
    if (env.pages) await env.pages.close();
    if (env.server) {
      const r = await env.server.stop();
      if (process.env.KMS_TEST_VERBOSE) console.log(env.server.log());
      assert.ok(r && r.code === 0, `server exited cleanly: ${JSON.stringify(r)}`);
    }
  });
  return env;
}

/** Waits until `page` decoded more than `frames` frames of a sized picture;
 * returns its stats. */
async function decodes(page, frames = 30, ms = 30000) {
  let last = null;
  try {
    return await waitFor(`${frames} decoded frames`, ms, async () => {
      const s = await pageStats(page);
      last = s;
      return s.framesDecoded > frames && s.width > 0 && s.height > 0 ? s : null;
    });
  } catch (e) {
    // What the page had when it gave up: tells a stuck keyframe (packets,
    // no frames) from a dead transport (no packets).
    if (last) delete last.remoteCertificate;
    e.message += `; last stats ${JSON.stringify(last)}`;
    throw e;
  }
}

/** The average colours of `rects` in the picture `page` is showing (see
 * peer.js regionColors). */
function regionColors(page, rects) {
  return page.evaluate((r) => window.kms.regionColors(r), rects);
}

module.exports = {
  suite, decodes, regionColors,
  startServer, startPageServer, launchBrowser, connect, call, waitFor, negotiate, pageStats, kurentoClient, BIN, CHROMIUM,
};
