// Test harness: starts the real server binary on a free port with a
// temporary configuration, and wraps the official kurento-client.
'use strict';

const { spawn } = require('node:child_process');
const fs = require('node:fs');
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

const ROOT = path.resolve(__dirname, '..', '..', '..');
const BIN = process.env.KMS_BIN || path.join(ROOT, 'target', 'debug', 'kurento-media-server');

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

/** Starts a server; `opts.resources` merges into mediaServer.resources. */
async function startServer(opts = {}) {
  const port = await freePort();
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'kms-conf-'));
  const conf = {
    metadata: opts.metadata || {},
    mediaServer: {
      resources: Object.assign({ garbageCollectorPeriod: 240 }, opts.resources || {}),
      net: { websocket: Object.assign({ port, path: 'kurento', address: '127.0.0.1' }, opts.websocket || {}) },
    },
  };
  fs.writeFileSync(path.join(dir, 'kurento.conf.json'), JSON.stringify(conf));
  fs.mkdirSync(path.join(dir, 'modules'));
  const env = Object.assign({}, process.env, opts.env || {});
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
    exited,
    log: () => log,
    async stop() {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGTERM');
      const r = await Promise.race([exited, new Promise((res) => setTimeout(() => res(null), 10000))]);
      if (r === null) { child.kill('SIGKILL'); await exited; }
      fs.rmSync(dir, { recursive: true, force: true });
      return r;
    },
  };
}

/** Calls a callback-style API as a promise (awaiting kurento-client objects
 * directly yields partial copies on Node 20). */
function call(obj, method, ...args) {
  return new Promise((resolve, reject) => {
    obj[method](...args, (err, value) => (err ? reject(err) : resolve(value)));
  });
}

function connect(url, options = {}) {
  return new Promise((resolve, reject) => {
    kurentoClient(url, Object.assign({ failAfter: 1, strict: true }, options), (err, client) => (err ? reject(err) : resolve(client)));
  });
}

function once(obj, event, ms = 5000) {
  return new Promise((resolve, reject) => {
    const t = setTimeout(() => reject(new Error(`timeout waiting for ${event}`)), ms);
    obj.once(event, (ev) => { clearTimeout(t); resolve(ev); });
  });
}

// Request ids are unique across raw peers: a resumed session would otherwise
// hit the server's 20 s duplicate-request cache (spec §3.4) on purpose.
let nextId = 1000;

/** A raw WebSocket JSON-RPC peer for wire-level checks. */
async function rawPeer(url) {
  const WebSocket = require('ws');
  const ws = new WebSocket(url);
  await new Promise((res, rej) => { ws.on('open', res); ws.on('error', rej); });
  const pending = new Map();
  const events = [];
  ws.on('message', (data) => {
    const text = data.toString();
    let msg;
    try { msg = JSON.parse(text); } catch { return; }
    if (msg.method === 'onEvent') { events.push(msg); return; }
    const key = JSON.stringify(msg.id);
    const p = pending.get(key);
    if (p) { pending.delete(key); p(msg); } else if (pending.has('null') && msg.id === null) { const q = pending.get('null'); pending.delete('null'); q(msg); }
  });
  return {
    ws,
    events,
    send(method, params, id) {
      const rid = id === undefined ? nextId++ : id;
      const msg = { jsonrpc: '2.0', id: rid, method };
      if (params !== undefined) msg.params = params;
      return this.sendRaw(JSON.stringify(msg), rid);
    },
    sendRaw(text, expectId) {
      return new Promise((resolve, reject) => {
        const key = JSON.stringify(expectId === undefined ? null : expectId);
        const t = setTimeout(() => { pending.delete(key); reject(new Error(`no answer for ${key}`)); }, 10000);
        pending.set(key, (m) => { clearTimeout(t); resolve(m); });
        ws.send(text);
      });
    },
    close() { ws.close(); },
  };
}

module.exports = { startServer, connect, call, once, rawPeer, kurentoClient, BIN };
