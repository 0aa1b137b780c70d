// Test harness: starts the real server binary on a free port with a
// temporary configuration, and wraps the official kurento-client.
'use strict';

const path = require('node:path');
const kms = require('../../shared/kms-process');

kms.installClientShims();
const kurentoClient = require('kurento-client');

const ROOT = path.resolve(__dirname, '..', '..', '..');
const BIN = process.env.KMS_BIN || path.join(ROOT, 'target', 'debug', 'kurento-media-server');
const { call } = kms;

/** Starts a server; `opts.resources` merges into mediaServer.resources,
 * `opts.websocket` into mediaServer.net.websocket. */
function startServer(opts = {}) {
  return kms.startServer({
    bin: BIN,
    prefix: 'kms-conf-',
    env: opts.env,
    config: (port) => ({
      metadata: opts.metadata || {},
      mediaServer: {
        resources: Object.assign({ garbageCollectorPeriod: 240 }, opts.resources || {}),
        net: { websocket: Object.assign({ port, path: 'kurento', address: '127.0.0.1' }, opts.websocket || {}) },
      },
    }),
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
    send(method, params, id, timeoutMs) {
      const rid = id === undefined ? nextId++ : id;
      const msg = { jsonrpc: '2.0', id: rid, method };
      if (params !== undefined) msg.params = params;
      return this.sendRaw(JSON.stringify(msg), rid, timeoutMs);
    },
    sendRaw(text, expectId, timeoutMs = 10000) {
      return new Promise((resolve, reject) => {
        const key = JSON.stringify(expectId === undefined ? null : expectId);
        const t = setTimeout(() => { pending.delete(key); reject(new Error(`no answer for ${key}`)); }, timeoutMs);
        pending.set(key, (m) => { clearTimeout(t); resolve(m); });
        ws.send(text);
      });
    },
    close() { ws.close(); },
  };
}

module.exports = { startServer, connect, call, once, rawPeer, kurentoClient, BIN };
