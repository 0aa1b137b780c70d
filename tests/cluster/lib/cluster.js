// Cluster test harness: a real redis-server on a free 127.0.0.1 port and
// real server processes in cluster mode (tests/shared/kms-process.js starts
// them), plus helpers to read the directory with redis-cli.
'use strict';

const { spawn, execFileSync } = require('node:child_process');
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');
const kms = require('../../shared/kms-process');

kms.installClientShims();
const kurentoClient = require('kurento-client');

const ROOT = path.resolve(__dirname, '..', '..', '..');
const BIN = process.env.KMS_BIN || path.join(ROOT, 'target', 'debug', 'kurento-media-server');
const { call, freePort, waitForPort } = kms;

/** Heartbeat and expiry used by the tests (docs/cluster.md: defaults are
 * 1000 and 5000 ms; shorter here so node death is seen quickly). */
const HEARTBEAT_MS = 500;
const EXPIRY_MS = 2500;

/** Starts redis-server without persistence; `restart()` starts a fresh one
 * (empty: as after a crash without persistence) on the same port. */
async function startRedis() {
  const port = await freePort();
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'kms-redis-'));
  let child;
  let exited;
  const launch = async () => {
    child = spawn('redis-server', ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no', '--dir', dir], {
      stdio: ['ignore', 'ignore', 'pipe'],
    });
    exited = new Promise((resolve) => child.on('exit', resolve));
    await waitForPort(port, 10000, exited);
  };
  await launch();
  return {
    port,
    url: `redis://127.0.0.1:${port}`,
    cli(...args) {
      return execFileSync('redis-cli', ['-p', String(port), '--raw', ...args], { encoding: 'utf8' }).trim();
    },
    async kill() {
      child.kill('SIGKILL');
      await exited;
    },
    restart: launch,
    async stop() {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
      await exited;
      fs.rmSync(dir, { recursive: true, force: true });
    },
  };
}

/** Starts one cluster node `name` with RTP ports [minPort, minPort + 999];
 * `extra.websocket` merges into mediaServer.net.websocket, `extra.env` into
 * the environment. */
function startNode(name, redis, minPort, extra = {}) {
  return kms.startServer({
    bin: BIN,
    prefix: `kms-cluster-${name}-`,
    env: extra.env,
    files: {
      'modules/kurento/BaseRtpEndpoint.conf.ini': `minPort=${minPort}\nmaxPort=${minPort + 999}\n`,
    },
    config: (port) => ({
      mediaServer: {
        resources: { garbageCollectorPeriod: 240 },
        net: { websocket: Object.assign({ port, path: 'kurento', address: '127.0.0.1' }, extra.websocket || {}) },
        cluster: {
          redisUrl: redis.url,
          nodeId: name,
          advertisedAddress: `127.0.0.1:${port}`,
          heartbeatMs: HEARTBEAT_MS,
          expiryMs: EXPIRY_MS,
          forwardTimeoutMs: 10000,
        },
      },
    }),
  });
}

/** pipeline id → directory entry ({node, epoch, tenant}). */
function directory(redis) {
  const out = redis.cli('HGETALL', 'kms:cluster:pipelines');
  const lines = out ? out.split('\n') : [];
  const d = {};
  for (let i = 0; i + 1 < lines.length; i += 2) d[lines[i]] = JSON.parse(lines[i + 1]);
  return d;
}

/** The live node records, by id. */
function nodes(redis) {
  const ids = redis.cli('SMEMBERS', 'kms:cluster:nodes').split('\n').filter(Boolean);
  const r = {};
  for (const id of ids) {
    const v = redis.cli('GET', `kms:cluster:node:${id}`);
    if (v) r[id] = JSON.parse(v);
  }
  return r;
}

async function until(what, fn, ms = 10000, step = 100) {
  const deadline = Date.now() + ms;
  for (;;) {
    let v;
    try { v = await fn(); } catch (e) { v = undefined; }
    if (v) return v;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, step));
  }
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

let nextId = 5000;

/** A raw WebSocket JSON-RPC peer for wire-level checks. */
async function rawPeer(url) {
  const WebSocket = require('ws');
  const ws = new WebSocket(url);
  await new Promise((res, rej) => { ws.on('open', res); ws.on('error', rej); });
  const pending = new Map();
  const events = [];
  ws.on('message', (data) => {
    let msg;
    try { msg = JSON.parse(data.toString()); } catch { return; }
    if (msg.method === 'onEvent') { events.push(msg.params.value); return; }
    const p = pending.get(msg.id);
    if (p) { pending.delete(msg.id); p(msg); }
  });
  return {
    events,
    send(method, params, timeoutMs = 15000) {
      const id = nextId++;
      return new Promise((resolve, reject) => {
        const t = setTimeout(() => { pending.delete(id); reject(new Error(`no answer to ${method}`)); }, timeoutMs);
        pending.set(id, (m) => { clearTimeout(t); resolve(m); });
        ws.send(JSON.stringify({ jsonrpc: '2.0', id, method, params }));
      });
    },
    close() { ws.close(); },
  };
}

module.exports = { startRedis, startNode, directory, nodes, until, connect, once, call, rawPeer, BIN, HEARTBEAT_MS, EXPIRY_MS };
