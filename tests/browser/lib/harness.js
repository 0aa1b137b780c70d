// Browser test harness: the real server binary on 127.0.0.1, headless Debian
// Chromium driven by playwright-core, the official kurento-utils in the page
// and the official kurento-client in Node (the tutorials' application
// server role).
'use strict';

const { spawn } = require('node:child_process');
const fs = require('node:fs');
const http = require('node:http');
const net = require('node:net');
const os = require('node:os');
const path = require('node:path');

// kurento-client 7.3.0 on Node 20: TransactionsManager calls
// `domain.Domain()` without `new`. Harness-side shim; the server is untouched.
const domain = require('node:domain');
const OrigDomain = domain.Domain;
function DomainShim() { return new OrigDomain(); }
DomainShim.prototype = OrigDomain.prototype;
domain.Domain = DomainShim;

const kurentoClient = require('kurento-client');
const { chromium } = require('playwright-core');

const ROOT = path.resolve(__dirname, '..', '..', '..');
const BIN = process.env.KMS_BIN || path.join(ROOT, 'target', 'debug', 'kurento-media-server');
const CHROMIUM = process.env.CHROMIUM_BIN || '/usr/bin/chromium';
const PAGE_DIR = path.join(__dirname, '..', 'page');
const BUNDLE = path.join(__dirname, '..', 'build', 'bundle.js');

function freePort() {
  return new Promise((resolve, reject) => {
    const s = net.createServer();
    s.listen(0, '127.0.0.1', () => {
      const { port } = s.address();
      s.close(() => resolve(port));
    });
    s.on('error', reject);
  });
}

function waitForPort(port, ms) {
  const deadline = Date.now() + ms;
  return new Promise((resolve, reject) => {
    const attempt = () => {
      const c = net.connect(port, '127.0.0.1');
      c.on('connect', () => { c.destroy(); resolve(); });
      c.on('error', () => {
        c.destroy();
        if (Date.now() > deadline) reject(new Error(`server did not listen on ${port}`));
        else setTimeout(attempt, 50);
      });
    };
    attempt();
  });
}

/** Starts a server; `opts.modules` = { 'WebRtcEndpoint.conf.ini': text, ... }. */
async function startServer(opts = {}) {
  const port = await freePort();
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'kms-browser-'));
  const conf = {
    mediaServer: {
      resources: { garbageCollectorPeriod: 240 },
      net: { websocket: { port, path: 'kurento', address: '127.0.0.1' } },
    },
  };
  fs.writeFileSync(path.join(dir, 'kurento.conf.json'), JSON.stringify(conf));
  const modDir = path.join(dir, 'modules', 'kurento');
  fs.mkdirSync(modDir, { recursive: true });
  for (const [name, text] of Object.entries(opts.modules || {})) fs.writeFileSync(path.join(modDir, name), text);
  const env = Object.assign({ KMS_LOG: 'info' }, process.env, opts.env || {});
  const child = spawn(BIN, ['--conf-file', path.join(dir, 'kurento.conf.json')], { env, stdio: ['ignore', 'pipe', 'pipe'] });
  let log = '';
  child.stdout.on('data', (d) => { log += d; });
  child.stderr.on('data', (d) => { log += d; });
  const exited = new Promise((resolve) => child.on('exit', (code, signal) => resolve({ code, signal })));
  await waitForPort(port, 20000);
  return {
    port,
    url: `ws://127.0.0.1:${port}/kurento`,
    child,
    log: () => log,
    alive: () => child.exitCode === null && child.signalCode === null,
    async stop() {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGTERM');
      const r = await Promise.race([exited, new Promise((res) => setTimeout(() => res(null), 10000))]);
      if (r === null) {
        if (process.env.KMS_HANG_DUMP) {
          // Diagnostics for a server that ignored SIGTERM: all thread stacks.
          try {
            require('node:child_process').execSync(
              `gdb -p ${child.pid} -batch -ex 'thread apply all bt' > ${process.env.KMS_HANG_DUMP}.${child.pid} 2>&1`);
          } catch (e) { /* best effort */ }
        }
        child.kill('SIGKILL');
        await exited;
      }
      fs.rmSync(dir, { recursive: true, force: true });
      return r;
    },
  };
}

/** Serves the test page and the kurento-utils bundle on 127.0.0.1. */
async function startPageServer() {
  const srv = http.createServer((req, res) => {
    const name = req.url.split('?')[0].replace(/^\/+/, '') || 'index.html';
    const file = name === 'bundle.js' ? BUNDLE : path.join(PAGE_DIR, path.basename(name));
    fs.readFile(file, (err, data) => {
      if (err) { res.writeHead(404); res.end(); return; }
      res.writeHead(200, { 'Content-Type': file.endsWith('.html') ? 'text/html' : 'application/javascript' });
      res.end(data);
    });
  });
  await new Promise((r) => srv.listen(0, '127.0.0.1', r));
  return { url: `http://127.0.0.1:${srv.address().port}/index.html`, close: () => new Promise((r) => srv.close(r)) };
}

/** Headless Debian Chromium with a fake camera and microphone. */
async function launchBrowser() {
  const userDataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'kms-chromium-'));
  const context = await chromium.launchPersistentContext(userDataDir, {
    executablePath: CHROMIUM,
    headless: true,
    args: [
      '--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
      '--disable-background-networking', '--disable-component-update', '--disable-sync',
      '--use-fake-ui-for-media-stream', '--use-fake-device-for-media-stream',
      '--disable-features=WebRtcHideLocalIpsWithMdns',
    ],
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

/** Promise wrapper of a callback-style kurento-client call (awaiting client
 * objects directly yields partial copies on Node 20). */
function call(obj, method, ...args) {
  return new Promise((resolve, reject) => {
    obj[method](...args, (err, value) => (err ? reject(err) : resolve(value)));
  });
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
  endpoint.on('IceCandidateFound', (e) => {
    events.candidates++;
    page.evaluate((c) => window.kms.addCandidate(c), e.candidate).catch(() => {});
  });
  endpoint.on('IceGatheringDone', () => { events.gatheringDone = true; });
  endpoint.on('MediaFlowInStateChanged', (e) => events.flowIn.push(e));
  endpoint.on('MediaFlowOutStateChanged', (e) => events.flowOut.push(e));
  await page.exposeFunction('onLocalCandidate', (c) => {
    const candidate = kurentoClient.getComplexType('IceCandidate')(c);
    endpoint.addIceCandidate(candidate, () => {});
  });
  const offer = await page.evaluate(([m, o]) => window.kms.start(m, o), [mode, opts]);
  const answer = await call(endpoint, 'processOffer', offer);
  await call(endpoint, 'gatherCandidates');
  await page.evaluate((a) => window.kms.processAnswer(a), answer);
  return { events, offer, answer };
}

function pageStats(page) {
  return page.evaluate(() => window.kms.stats());
}

module.exports = { startServer, startPageServer, launchBrowser, connect, call, waitFor, negotiate, pageStats, kurentoClient, BIN };
