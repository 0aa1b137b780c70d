// Bad and hostile input: every frame gets the spec's error (or nothing, for
// notifications), the connection stays usable, the server stays up, other
// sessions are untouched, memory stays flat and slow calls block nobody else.
'use strict';

const test = require('node:test');
const assert = require('node:assert/strict');
const { startServer, rawPeer } = require('./lib/harness');

let server;
test.before(async () => { server = await startServer(); });
test.after(async () => { await server.stop(); });

async function victim() {
  const b = await rawPeer(server.url);
  const p = await b.send('create', { type: 'MediaPipeline' });
  const sid = p.result.sessionId;
  const pt = await b.send('create', { type: 'PassThrough', constructorParams: { mediaPipeline: p.result.value }, sessionId: sid });
  await b.send('addTag', {}); // unknown method, harmless
  await b.send('invoke', { object: pt.result.value, operation: 'addTag', operationParams: { key: 'k', value: 'v' }, sessionId: sid });
  return { b, sid, pipeline: p.result.value, pt: pt.result.value };
}

async function intact(v) {
  const r = await v.b.send('invoke', { object: v.pt, operation: 'getTag', operationParams: { key: 'k' }, sessionId: v.sid });
  assert.equal(r.result && r.result.value, 'v', 'the other session\'s objects are intact');
}

function hostileFrames() {
  const frames = [];
  const big = 'x'.repeat(100000);
  const shapes = [
    () => ['{', true],
    () => ['not json at all', true],
    () => ['{"jsonrpc":"2.0","id":1,"method":"ping"', true],
    () => ['\u0000\u0001\u0002', true],
    () => ['[' .repeat(100000), true],
    () => [JSON.stringify([{ jsonrpc: '2.0', id: 1, method: 'ping' }]), true], // batch → -32600
    () => [JSON.stringify({ jsonrpc: '1.0', id: 2, method: 'ping' }), true],
    () => [JSON.stringify({ jsonrpc: '2.0', id: { a: 1 }, method: 'ping' }), true],
    () => [JSON.stringify({ jsonrpc: '2.0', id: 3, method: 5 }), true],
    () => [JSON.stringify({ jsonrpc: '2.0', id: 1e308, method: 'ping' }), true],
    () => [JSON.stringify({ jsonrpc: '2.0', id: big, method: 'ping' }), true],
    () => [JSON.stringify({ jsonrpc: '2.0', id: 4, method: 'create', params: 'str' }), true],
    () => [JSON.stringify({ jsonrpc: '2.0', id: 5, method: 'create', params: { type: 7 } }), true],
    () => [JSON.stringify({ jsonrpc: '2.0', id: 6, method: 'invoke', params: { object: 123, operation: [] } }), true],
    () => [JSON.stringify({ jsonrpc: '2.0', id: 7, method: 'invoke', params: { object: big, operation: 'getName' } }), true],
    () => [JSON.stringify({ jsonrpc: '2.0', id: 8, method: 'describe', params: { object: 'newref:99' } }), true],
    () => [JSON.stringify({ jsonrpc: '2.0', id: 9, method: 'transaction', params: { operations: 'no' } }), true],
    () => [JSON.stringify({ jsonrpc: '2.0', id: 10, method: 'subscribe', params: { object: 'manager_ServerManager', type: big } }), true],
    () => [JSON.stringify({ jsonrpc: '2.0', id: 11, method: 'connect', params: { sessionId: big } }), true],
    () => [JSON.stringify({ jsonrpc: '2.0', method: 'ping' }), false], // notification: no answer
    () => [JSON.stringify({ jsonrpc: '2.0', id: 12, method: 'release', params: { object: null } }), true],
    () => [JSON.stringify({ jsonrpc: '2.0', id: 13, method: 'create', params: { type: 'PassThrough', constructorParams: { mediaPipeline: ['a'] } } }), true],
  ];
  for (let i = 0; i < 1000; i++) frames.push(shapes[i % shapes.length]());
  return frames;
}

test('1000 malformed or hostile frames and a 10 MB message: answered, socket usable, others intact', async () => {
  const v = await victim();
  const a = await rawPeer(server.url);
  let answers = 0;
  a.ws.on('message', () => { answers++; });
  const frames = hostileFrames();
  const expected = frames.filter(([, answered]) => answered).length;
  for (const [text] of frames) a.ws.send(text);
  a.ws.send('y'.repeat(10 * 1024 * 1024));
  const deadline = Date.now() + 30000;
  while (answers < expected + 1 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
  assert.equal(answers, expected + 1, 'one answer per non-notification frame, and one for the 10 MB message');
  const pong = await a.send('ping', {});
  assert.equal(pong.result.value, 'pong', 'same socket still answers');
  await intact(v);
  assert.equal(server.child.exitCode, null, 'server still running');
  a.close();
  await v.b.send('release', { object: v.pipeline, sessionId: v.sid });
  v.b.close();
});

test('invalid JSON gets -32700 with id null and the socket stays open', async () => {
  const a = await rawPeer(server.url);
  const r = await a.sendRaw('{"jsonrpc": "2.0", "id": ', undefined);
  assert.equal(r.error.code, -32700);
  assert.equal(r.id, null);
  const big = await a.sendRaw('z'.repeat(10 * 1024 * 1024), undefined);
  assert.equal(big.error.code, -32600);
  assert.match(big.error.message, /limit/i);
  assert.equal((await a.send('ping')).result.value, 'pong');
  a.close();
});

test('a 1.3 MB transaction of 10,000 describes with a 64 KiB sessionId: clear error, flat memory', async () => {
  const a = await rawPeer(server.url);
  const mem = async () => (await a.send('invoke', { object: 'manager_ServerManager', operation: 'getUsedMemory' })).result.value;
  const before = await mem();
  const sid = 's'.repeat(64 * 1024);
  const ops = [];
  for (let i = 0; i < 10000; i++) ops.push({ jsonrpc: '2.0', id: i, method: 'describe', params: { object: 'manager_ServerManager', properties: { note: 'padding-to-reach-upstream-size-of-the-attack' } } });
  const msg = { jsonrpc: '2.0', id: 424242, method: 'transaction', params: { operations: ops, sessionId: sid } };
  const text = JSON.stringify(msg);
  assert.ok(text.length > 1000000, 'over 1 MB on the wire');
  const t0 = Date.now();
  const r = await a.sendRaw(text, 424242);
  assert.ok(r.error, 'refused');
  assert.ok([40007, 40008].includes(r.error.code), `clear error, got ${JSON.stringify(r.error)}`);
  assert.ok(Date.now() - t0 < 5000, 'answered quickly');
  // Same bomb with a normal sessionId: refused by the operations limit.
  msg.params.sessionId = undefined;
  msg.id = 424243;
  const r2 = await a.sendRaw(JSON.stringify(msg), 424243);
  assert.equal(r2.error.code, 40008);
  const after = await mem();
  assert.ok(after - before < 100 * 1024, `RSS grew ${(after - before) / 1024} MiB`);
  a.close();
});

test('a dozen getUsedCpu(4000) calls block neither other clients nor new connections', async () => {
  const slow = await rawPeer(server.url);
  const calls = [];
  for (let i = 0; i < 12; i++) calls.push(slow.send('invoke', { object: 'manager_ServerManager', operation: 'getUsedCpu', operationParams: { interval: 4000 } }).catch(() => null));
  await new Promise((r) => setTimeout(r, 300));
  const t0 = Date.now();
  const other = await rawPeer(server.url);
  const p = await other.send('ping');
  const d = await other.send('describe', { object: 'manager_ServerManager' });
  const created = await other.send('create', { type: 'MediaPipeline', sessionId: d.result.sessionId });
  const elapsed = Date.now() - t0;
  assert.equal(p.result.value, 'pong');
  assert.ok(created.result.value);
  assert.ok(elapsed < 2000, `other client served in ${elapsed} ms`);
  await other.send('release', { object: created.result.value, sessionId: d.result.sessionId });
  other.close();
  const first = await calls[0];
  assert.equal(typeof first.result.value, 'number', 'a bounded, real answer');
  slow.close();
});
