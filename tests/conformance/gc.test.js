// Session garbage collection (spec §3.2) with a short period: objects of a
// session whose socket closed are destroyed after 1–2 periods; a session
// that reconnects in time keeps them.
'use strict';

const test = require('node:test');
const assert = require('node:assert/strict');
const { startServer, rawPeer } = require('./lib/harness');

let server;
test.before(async () => { server = await startServer({ resources: { garbageCollectorPeriod: 1 } }); });
test.after(async () => { await server.stop(); });

test('closed session is collected; its objects get ObjectDestroyed; a live one survives', async () => {
  const watcher = await rawPeer(server.url);
  await watcher.send('subscribe', { object: 'manager_ServerManager', type: 'ObjectDestroyed' });
  const a = await rawPeer(server.url);
  const p = await a.send('create', { type: 'MediaPipeline' });
  const keep = await rawPeer(server.url);
  const k = await keep.send('create', { type: 'MediaPipeline' });
  a.close();
  const deadline = Date.now() + 8000;
  const destroyedIds = () => watcher.events.map((e) => e.params.value.data.objectId);
  while (!destroyedIds().includes(p.result.value) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 100));
  assert.ok(destroyedIds().includes(p.result.value), 'collected within 1–2 periods');
  assert.ok(!destroyedIds().includes(k.result.value), 'connected session kept');
  const again = await keep.send('invoke', { object: k.result.value, operation: 'getName', sessionId: k.result.sessionId });
  assert.equal(again.result.value, k.result.value);
  const lost = await keep.send('connect', { sessionId: p.result.sessionId });
  assert.equal(lost.error.code, 40007, 'collected session is unknown');
  keep.close();
  watcher.close();
});
