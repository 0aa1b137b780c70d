// Three kurento-rs servers and a redis-server as one cluster, driven by the
// official kurento-client connected to node A only (docs/cluster.md).
'use strict';

const test = require('node:test');
const assert = require('node:assert/strict');
const {
  startRedis, startNode, directory, nodes, until, connect, once, call, rawPeer, HEARTBEAT_MS, EXPIRY_MS,
} = require('./lib/cluster');

let redis;
let A;
let B;
let C;
let client; // kurento-client on node A, used by every test
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

test.before(async () => {
  redis = await startRedis();
  [A, B, C] = await Promise.all([
    startNode('node-a', redis, 41000),
    startNode('node-b', redis, 42000),
    startNode('node-c', redis, 43000),
  ]);
  await until('three registered nodes', () => Object.keys(nodes(redis)).length === 3);
  client = await connect(A.url);
});

test.after(async () => {
  if (client) client.close();
  if (process.env.KMS_CLUSTER_LOGS) {
    for (const [n, node] of [['A', A], ['B', B], ['C', C]]) if (node) console.log(`==== node ${n}\n${node.log()}`);
  }
  await Promise.all([A, B, C].filter(Boolean).map((n) => n.stop()));
  if (redis) await redis.stop();
});

// State shared by the tests below, in order.
const S = {};

test('nodes register with load and epoch; placement spreads new pipelines over the least loaded nodes', async () => {
  const recs = nodes(redis);
  for (const id of ['node-a', 'node-b', 'node-c']) {
    assert.ok(recs[id], id);
    assert.match(recs[id].epoch, /^[0-9a-f-]{36}$/);
    assert.equal(recs[id].load.draining, false);
    assert.equal(typeof recs[id].load.cpuPercent, 'number');
  }
  assert.equal(Number(redis.cli('PTTL', 'kms:cluster:node:node-b')) <= EXPIRY_MS, true, 'node records expire');
  // Placement weighs CPU too: let the start-up burst pass first.
  await until('idle nodes', () => Object.values(nodes(redis)).every((r) => r.load.cpuPercent < 3), 15000);
  const ps = [];
  for (let i = 0; i < 3; i++) ps.push(await call(client, 'create', 'MediaPipeline'));
  const dir = directory(redis);
  const placed = ps.map((p) => dir[p.id] && dir[p.id].node);
  assert.deepEqual([...placed].sort(), ['node-a', 'node-b', 'node-c'], `three idle nodes get one each: ${placed}`);
  for (const p of ps) {
    assert.equal(dir[p.id].tenant, 'default');
    assert.equal(dir[p.id].epoch, recs[dir[p.id].node].epoch);
  }
  for (const p of ps) await call(p, 'release');
  await until('released pipelines leave the directory', () => ps.every((p) => !directory(redis)[p.id]), 3000);
});

test('a pipeline placed on node B: create, invoke, describe and events go through node A', async () => {
  const pB = await call(client, 'create', 'MediaPipeline', { clusterNode: 'node-b' });
  assert.equal(directory(redis)[pB.id].node, 'node-b', 'the directory shows the placement');
  const a = await call(pB, 'create', 'PassThrough');
  const b = await call(pB, 'create', 'PassThrough');
  assert.ok(a.id.startsWith(`${pB.id}/`));
  const connected = [];
  a.on('ElementConnected', (ev) => connected.push(ev));
  await sleep(200); // subscription round trip
  await call(a, 'connect', b, 'VIDEO');
  await until('ElementConnected relayed from node B', () => connected.length === 1, 3000);
  assert.equal(connected[0].mediaType, 'VIDEO');
  assert.equal(connected[0].type, 'ElementConnected');
  await call(a, 'setName', 'forwarded');
  assert.equal(await call(a, 'getName'), 'forwarded');
  assert.equal((await call(a, 'getSinkConnections')).length, 1);
  assert.equal((await call(a, 'getMediaPipeline')).id, pB.id);
  // Remote errors come back with their code.
  await assert.rejects(call(a, 'getTag', 'missing'), (e) => e.code === 40110);
  // describe of an id the client did not create here (getMediaobjectById).
  const again = await call(client, 'getMediaobjectById', b.id);
  assert.equal(again.id, b.id);
  // The node that really holds it: B's own record counts it.
  await until('node B reports the pipeline in its load', () => nodes(redis)['node-b'].load.pipelines >= 1, 3000);
  // ServerManager.getPipelines answers for the cluster (caller's tenant).
  const sm = await call(client, 'getServerManager');
  const listed = (await call(sm, 'getPipelines')).map((p) => p.id);
  assert.ok(listed.includes(pB.id), 'getPipelines on A lists the pipeline of B');
  Object.assign(S, { pB, a, b });
});

test('wire level: remote errors keep code, message and data; events carry the remote object id', async () => {
  const peer = await rawPeer(A.url);
  try {
    const r = await peer.send('invoke', { object: S.a.id, operation: 'nope' });
    assert.equal(r.error.code, 40008);
    assert.equal(r.error.message, "Method 'nope' with 0 parameters not found");
    assert.equal(r.error.data.type, 'MALFORMED_TRANSACTION');
    const sid = r.error.data.sessionId || (await peer.send('describe', { object: S.a.id })).result.sessionId;
    const sub = await peer.send('subscribe', { object: S.b.id, type: 'ElementConnected', sessionId: sid });
    assert.match(sub.result.value, /.+/);
    const c = await peer.send('create', { type: 'PassThrough', constructorParams: { mediaPipeline: S.pB.id }, sessionId: sid });
    await peer.send('invoke', { object: S.b.id, operation: 'connect', operationParams: { sink: c.result.value, mediaType: 'AUDIO' }, sessionId: sid });
    await until('raw ElementConnected', () => peer.events.some((e) => e.type === 'ElementConnected'), 3000);
    const ev = peer.events.find((e) => e.type === 'ElementConnected');
    assert.equal(ev.object, S.b.id);
    assert.equal(ev.data.sink, c.result.value);
  } finally {
    peer.close();
  }
});

test('transactions: one remote node works, two nodes are refused before anything runs', async () => {
  const pC = await call(client, 'create', 'MediaPipeline', { clusterNode: 'node-c' });
  assert.equal(directory(redis)[pC.id].node, 'node-c');
  const eC = await call(pC, 'create', 'PassThrough');
  const peer = await rawPeer(A.url);
  try {
    const d = await peer.send('describe', { object: S.a.id });
    const sid = d.result.sessionId;
    const ok = await peer.send('transaction', {
      sessionId: sid,
      operations: [
        { jsonrpc: '2.0', id: 0, method: 'create', params: { type: 'PassThrough', constructorParams: { mediaPipeline: S.pB.id } } },
        { jsonrpc: '2.0', id: 1, method: 'invoke', params: { object: 'newref:0', operation: 'getName' } },
      ],
    });
    assert.ok(ok.result, JSON.stringify(ok.error));
    assert.equal(ok.result.value.length, 2);
    assert.ok(ok.result.value[1].result.value.startsWith(S.pB.id));
    const span = await peer.send('transaction', {
      sessionId: sid,
      operations: [
        { jsonrpc: '2.0', id: 0, method: 'invoke', params: { object: S.a.id, operation: 'setName', operationParams: { name: 'tx' } } },
        { jsonrpc: '2.0', id: 1, method: 'invoke', params: { object: eC.id, operation: 'getName' } },
      ],
    });
    assert.equal(span.error.code, 40008);
    assert.match(span.error.message, /spans pipelines on cluster nodes 'node-b' and 'node-c'/);
    assert.equal(await call(S.a, 'getName'), 'forwarded', 'nothing of the refused transaction ran');
  } finally {
    peer.close();
  }
  Object.assign(S, { pC, eC });
});

test('SIGKILL of node C: ObjectDestroyed and errors at once, directory entries gone within the expiry, A and B go on', async () => {
  const sm = await call(client, 'getServerManager');
  const destroyed = [];
  sm.on('ObjectDestroyed', (ev) => destroyed.push(ev.objectId));
  await sleep(200);
  const pA = await call(client, 'create', 'MediaPipeline', { clusterNode: 'node-a' });
  assert.equal(directory(redis)[pA.id].node, 'node-a');
  const killedAt = Date.now();
  C.child.kill('SIGKILL');
  await C.exited;
  await until('ObjectDestroyed for the objects of node C', () => destroyed.includes(S.eC.id) && destroyed.includes(S.pC.id), 3000);
  const t0 = Date.now();
  await assert.rejects(call(S.eC, 'getName'), (e) => e.code === 40101 && /node-c' left the cluster/.test(e.message));
  assert.ok(Date.now() - t0 < 2000, 'the error is prompt');
  await until('node C entries vanish from the directory', () => !Object.values(directory(redis)).some((e) => e.node === 'node-c'), EXPIRY_MS + 4 * HEARTBEAT_MS + 1000);
  const gone = Date.now() - killedAt;
  assert.ok(gone <= EXPIRY_MS + 4 * HEARTBEAT_MS + 1000, `gone after ${gone} ms`);
  assert.equal(nodes(redis)['node-c'], undefined);
  // Releasing an object of the dead node succeeds, as for any gone object.
  await call(S.pC, 'release');
  // A and B keep working.
  assert.equal(await call(S.a, 'getName'), 'forwarded');
  const e = await call(pA, 'create', 'PassThrough');
  await call(e, 'setName', 'local');
  assert.equal(await call(e, 'getName'), 'local');
  Object.assign(S, { pA, eA: e });
});

test('drain (SIGUSR1) on node B: no new placement on B, its pipelines go on', async () => {
  B.child.kill('SIGUSR1');
  await until('node B draining in the directory', () => nodes(redis)['node-b'].load.draining === true, 3000);
  const ps = [];
  for (let i = 0; i < 4; i++) ps.push(await call(client, 'create', 'MediaPipeline'));
  const dir = directory(redis);
  assert.deepEqual(ps.map((p) => dir[p.id].node), ['node-a', 'node-a', 'node-a', 'node-a']);
  await assert.rejects(call(client, 'create', 'MediaPipeline', { clusterNode: 'node-b' }), (e) => e.code === 40009 && /draining/.test(e.message));
  assert.equal(await call(S.a, 'getName'), 'forwarded');
  for (const p of ps) await call(p, 'release');
  B.child.kill('SIGUSR2');
  await until('node B takes pipelines again', () => nodes(redis)['node-b'].load.draining === false, 3000);
});

test('Redis down: local pipelines go on, remote objects are refused clearly; Redis back: everything recovers', async () => {
  await redis.kill();
  assert.equal(await call(S.eA, 'getName'), 'local', 'a local pipeline needs no Redis');
  const t0 = Date.now();
  await assert.rejects(call(S.a, 'getName'), (e) => e.code === 40003 && /Redis/.test(e.message));
  assert.ok(Date.now() - t0 < 3000, 'refused promptly');
  const p = await call(client, 'create', 'MediaPipeline');
  const el = await call(p, 'create', 'PassThrough');
  assert.match(await call(el, 'getName'), /PassThrough/);
  await redis.restart();
  await until('nodes re-registered', () => nodes(redis)['node-a'] && nodes(redis)['node-b'], 5000);
  await until('pipelines re-registered', () => {
    const d = directory(redis);
    return d[S.pB.id] && d[S.pB.id].node === 'node-b' && d[p.id] && d[p.id].node === 'node-a' && d[S.pA.id];
  }, 5000);
  assert.equal(await call(S.a, 'getName'), 'forwarded', 'remote objects reachable again');
  await call(p, 'release');
  await call(S.pB, 'release');
  await until('released', () => !directory(redis)[S.pB.id], 3000);
});

test('a node restarted under the same id does not resurrect its previous life', async () => {
  const C2 = await startNode('node-c', redis, 43000);
  C = C2;
  await until('node C back', () => nodes(redis)['node-c'], 5000);
  const first = nodes(redis)['node-c'].epoch;
  const sm = await call(client, 'getServerManager');
  const destroyed = [];
  sm.on('ObjectDestroyed', (ev) => destroyed.push(ev.objectId));
  const p = await call(client, 'create', 'MediaPipeline', { clusterNode: 'node-c' });
  const e = await call(p, 'create', 'PassThrough');
  assert.equal(directory(redis)[p.id].epoch, first);
  // Killed and started again at once: its record has not expired yet.
  C2.child.kill('SIGKILL');
  await C2.exited;
  C = await startNode('node-c', redis, 43000);
  await until('new life registered', () => nodes(redis)['node-c'] && nodes(redis)['node-c'].epoch !== first, 5000);
  await until('the old pipeline leaves the directory', () => !directory(redis)[p.id], 3000);
  await assert.rejects(call(e, 'getName'), (err) => err.code === 40101);
  await until('ObjectDestroyed for the old life', () => destroyed.includes(e.id) && destroyed.includes(p.id), 3000);
  // The new life takes pipelines.
  const q = await call(client, 'create', 'MediaPipeline', { clusterNode: 'node-c' });
  const f = await call(q, 'create', 'PassThrough');
  assert.match(await call(f, 'getName'), /PassThrough/);
  await call(q, 'release');
});

/** A TCP proxy whose target can be switched; `cut()` drops every
 * connection, as a load balancer moving a client would. */
async function switchableProxy(targetPort) {
  const net = require('node:net');
  let target = targetPort;
  const sockets = new Set();
  const server = net.createServer((c) => {
    const up = net.connect(target, '127.0.0.1');
    for (const s of [c, up]) { sockets.add(s); s.on('close', () => sockets.delete(s)); s.on('error', () => {}); }
    c.pipe(up);
    up.pipe(c);
  });
  await new Promise((r) => server.listen(0, '127.0.0.1', r));
  return {
    url: `ws://127.0.0.1:${server.address().port}/kurento`,
    retarget(port) { target = port; },
    cut() { for (const s of sockets) s.destroy(); },
    close() { this.cut(); server.close(); },
  };
}

test('reconnection to node B with the old sessionId resumes the session, its objects and subscriptions', async () => {
  const proxy = await switchableProxy(A.port);
  const c = await connect(proxy.url, { failAfter: 10 });
  const sessionKeys = () => new Set(redis.cli('KEYS', 'kms:cluster:session:*').split('\n').filter(Boolean));
  const before = sessionKeys();
  try {
    const pH = await call(c, 'create', 'MediaPipeline', { clusterNode: 'node-a' });
    const [h1, h2] = [await call(pH, 'create', 'PassThrough'), await call(pH, 'create', 'PassThrough')];
    const pC = await call(c, 'create', 'MediaPipeline', { clusterNode: 'node-c' });
    const [c1, c2] = [await call(pC, 'create', 'PassThrough'), await call(pC, 'create', 'PassThrough')];
    const seen = [];
    h1.on('ElementConnected', () => seen.push('home'));
    c1.on('ElementConnected', () => seen.push('other'));
    await sleep(300);
    // kurento-client keeps its sessionId private: the new record homed on
    // A is ours (node C also records the session of A's link).
    const fresh = [...sessionKeys()].filter((k) => !before.has(k) && redis.cli('HGET', k, 'home') === 'node-a');
    assert.equal(fresh.length, 1, `one new session record on node A: ${fresh}`);
    const key = fresh[0];
    assert.equal(redis.cli('HGET', key, 'tenant'), 'default');
    assert.match(redis.cli('HGET', key, 'link:node-c'), /^[0-9a-f-]{36}$/, 'the link to node C is recorded');
    const reconnected = once(c, 'reconnected', 15000);
    proxy.retarget(B.port);
    proxy.cut();
    assert.equal(await reconnected, true, 'node B resumed the session (reconnected(true))');
    assert.equal(redis.cli('HGET', key, 'home'), 'node-b');
    // Objects on the old home (A) and on a third node (C), and the
    // subscriptions made before the move, all through B now.
    await call(h1, 'connect', h2, 'VIDEO');
    await call(c1, 'connect', c2, 'VIDEO');
    await until('events of both pipelines relayed through B', () => seen.includes('home') && seen.includes('other'), 5000).catch((e) => { throw new Error(`${e.message}: seen ${seen}`); });
    assert.match(await call(h2, 'getName'), /PassThrough/);
    assert.match(await call(c2, 'getName'), /PassThrough/);
    await call(pH, 'release');
    await call(pC, 'release');
  } finally {
    c.close();
    proxy.close();
  }
});
