// A minimal stand-in for Kurento Media Server's JSON-RPC endpoint: enough
// of the protocol (ping, create, invoke, subscribe, release) for
// kurento-client to create objects of registered modules and call them.
// Every request is recorded so tests can check what went on the wire.
'use strict';

const WebSocket = require('ws');

const SESSION = 'fake-session';

// `modules`: what ServerManager.getInfo reports as installed; a strict
// kurento-client refuses registered modules missing from it.
function startFakeKms({ modules = ['core', 'elements', 'filters'] } = {}) {
  const requests = [];
  const results = {};
  const waiters = [];
  const sockets = new Set();
  // object id -> type, for 'describe'
  const types = { manager_ServerManager: 'kurento.ServerManager' };
  let next = 0;

  const server = new WebSocket.Server({ host: '127.0.0.1', port: 0 });

  function reply(ws, id, result) {
    ws.send(JSON.stringify({ jsonrpc: '2.0', id, result: Object.assign({ sessionId: SESSION }, result) }));
  }

  function handle(ws, msg) {
    requests.push(msg);
    for (const w of waiters.splice(0)) if (w.method === msg.method) w.resolve(msg); else waiters.push(w);
    const p = msg.params || {};
    switch (msg.method) {
      case 'ping':
        return reply(ws, msg.id, { value: 'pong' });
      case 'create': {
        const n = next++;
        const value = p.type === 'MediaPipeline'
          ? `pipeline-${n}_kurento.MediaPipeline`
          : `${p.constructorParams && p.constructorParams.mediaPipeline}/obj-${n}_${p.type}`;
        types[value] = p.type.includes('.') ? p.type : `kurento.${p.type}`;
        return reply(ws, msg.id, { value });
      }
      case 'describe': {
        // kurento-client describes the ServerManager right after connecting
        const qualifiedType = types[p.object];
        if (!qualifiedType) return ws.send(JSON.stringify({ jsonrpc: '2.0', id: msg.id, error: { code: 40101, message: `Object '${p.object}' not found` } }));
        return reply(ws, msg.id, { type: qualifiedType.split('.')[1], qualifiedType, hierarchy: ['kurento.MediaObject'] });
      }
      case 'invoke':
        if (p.object === 'manager_ServerManager' && p.operation === 'getInfo' && !('getInfo' in results)) {
          const info = { version: '7.3.0', type: 'KMS', capabilities: [], modules: modules.map((name) => ({ name, version: '7.3.0', generationTime: '', factories: [] })) };
          return reply(ws, msg.id, { value: info });
        }
        return reply(ws, msg.id, p.operation in results ? { value: results[p.operation] } : {});
      case 'subscribe':
        return reply(ws, msg.id, { value: `subscription-${next++}` });
      default:
        return reply(ws, msg.id, {});
    }
  }

  server.on('connection', (ws) => {
    sockets.add(ws);
    ws.on('close', () => sockets.delete(ws));
    ws.on('message', (data) => handle(ws, JSON.parse(data)));
  });

  return new Promise((resolve) =>
    server.on('listening', () =>
      resolve({
        url: `ws://127.0.0.1:${server.address().port}/kurento`,
        requests,
        // operation name -> value returned by 'invoke'
        results,
        last(method) {
          for (let i = requests.length - 1; i >= 0; i--) if (requests[i].method === method) return requests[i];
          return undefined;
        },
        // The next request of this method, or the latest one already seen.
        waitFor(method) {
          const seen = this.last(method);
          if (seen) return Promise.resolve(seen);
          return new Promise((r) => waiters.push({ method, resolve: r }));
        },
        sendEvent(object, type, data) {
          const value = { object, type, data: Object.assign({ source: object, type, timestampMillis: String(Date.now()), tags: [] }, data) };
          const msg = JSON.stringify({ jsonrpc: '2.0', method: 'onEvent', params: { value } });
          for (const ws of sockets) ws.send(msg);
        },
        // Waits for the clients to hang up first (a server-side close would
        // make kurento-client reconnect), then stops listening.
        async close() {
          const deadline = Date.now() + 2000;
          while (sockets.size && Date.now() < deadline) await new Promise((r) => setTimeout(r, 10));
          for (const ws of sockets) ws.terminate();
          await new Promise((r) => server.close(() => r()));
        },
      })
    )
  );
}

module.exports = { startFakeKms };
