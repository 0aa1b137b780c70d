// Bounded by construction (issue 8 §3), tried as an abusive client would:
// a client that stops reading, 600 clients parked in getUsedCpu(4000), and
// per-object growth keyed by client input. Each limit answers a clear
// error or closes the offender; the server stays small and responsive.
'use strict';

const fs = require('node:fs');
const test = require('node:test');
const assert = require('node:assert/strict');
const { startServer, connect, call, rawPeer } = require('./lib/harness');

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/** A field of /proc/<pid>/status as a number (VmRSS in KiB, Threads). */
function procStatus(pid, field) {
  const line = fs.readFileSync(`/proc/${pid}/status`, 'utf8').split('\n').find((l) => l.startsWith(`${field}:`));
  return Number(line.split(/\s+/)[1]);
}

function openFilesLimit() {
  const line = fs.readFileSync('/proc/self/limits', 'utf8').split('\n').find((l) => l.startsWith('Max open files'));
  return Number(line.split(/\s+/)[3]);
}

test('a client that stops reading is closed with 1008, memory stays bounded, its session resumes', async () => {
  const server = await startServer();
  try {
    // The slow reader makes every ServerManager event heavy: 100 tags of
    // ~4 KB travel in each ObjectCreated/ObjectDestroyed (sendTagsInEvents).
    const slow = await rawPeer(server.url);
    const d = await slow.send('describe', { object: 'manager_ServerManager' });
    const sid = d.result.sessionId;
    const sm = 'manager_ServerManager';
    const st = await slow.send('invoke', { object: sm, operation: 'setSendTagsInEvents', operationParams: { sendTagsInEvents: true }, sessionId: sid });
    assert.ok(st.result, JSON.stringify(st.error));
    for (let i = 0; i < 100; i++) {
      const r = await slow.send('invoke', { object: sm, operation: 'addTag', operationParams: { key: `k${i}`, value: 'v'.repeat(4000) }, sessionId: sid });
      assert.ok(r.result, JSON.stringify(r.error));
    }
    for (const type of ['ObjectCreated', 'ObjectDestroyed']) {
      assert.ok((await slow.send('subscribe', { object: sm, type, sessionId: sid })).result);
    }
    let closeCode = null;
    const closed = new Promise((resolve) => slow.ws.on('close', (code) => { closeCode = code; resolve(); }));
    slow.ws._socket.pause(); // stops reading; the kernel buffers fill, then the server's outbox

    const rss0 = procStatus(server.child.pid, 'VmRSS');
    let maxRss = rss0;
    const load = await rawPeer(server.url);
    const deadline = Date.now() + 10000;
    let pairs = 0;
    let paused = true;
    while (Date.now() < deadline) {
      const p = await load.send('create', { type: 'MediaPipeline' });
      await load.send('release', { object: p.result.value, sessionId: p.result.sessionId });
      pairs++;
      if (pairs % 5 === 0) maxRss = Math.max(maxRss, procStatus(server.child.pid, 'VmRSS'));
      // Once disconnected, read again: what the socket held, then the
      // close frame (the server waits a bounded time for us to read it).
      if (paused && /outbox limit exceeded/.test(server.log())) {
        slow.ws._socket.resume();
        paused = false;
      }
    }
    maxRss = Math.max(maxRss, procStatus(server.child.pid, 'VmRSS'));
    const growthMiB = (maxRss - rss0) / 1024;
    assert.ok(pairs > 20, `the load ran (${pairs} create/release pairs, ${pairs * 2 * 0.4} MB of events)`);
    assert.ok(growthMiB < 64, `server RSS grew ${growthMiB.toFixed(1)} MiB while a client did not read`);
    assert.match(server.log(), /outbox limit exceeded/, 'the disconnection is logged');
    assert.doesNotMatch(server.log(), /v{200}/, 'the log line carries no message contents');

    await Promise.race([closed, sleep(15000)]);
    assert.equal(closeCode, 1008, 'closed with policy violation');

    // The session survives: a new socket resumes it and events flow again.
    const again = await rawPeer(server.url);
    const r = await again.send('connect', { sessionId: sid });
    assert.equal(r.result && r.result.sessionId, sid, JSON.stringify(r));
    // Lighter events from now on.
    assert.ok((await again.send('invoke', { object: sm, operation: 'setSendTagsInEvents', operationParams: { sendTagsInEvents: false }, sessionId: sid })).result);
    const p = await load.send('create', { type: 'MediaPipeline' });
    const until = Date.now() + 5000;
    while (!again.events.some((e) => e.params.value.type === 'ObjectCreated' && e.params.value.data.object === p.result.value) && Date.now() < until) await sleep(20);
    assert.ok(again.events.some((e) => e.params.value.data.object === p.result.value), 'ObjectCreated reaches the resumed session');
    load.close();
    again.close();
  } finally {
    await server.stop();
  }
});

test('600 clients in getUsedCpu(4000): an unrelated create answers in < 2 s, threads stay bounded, all get answers', async () => {
  const N = 600;
  assert.ok(openFilesLimit() > N + 200, `this test needs ${N + 200} open files; raise ulimit -n (is ${openFilesLimit()})`);
  const server = await startServer();
  try {
    const peers = [];
    for (let i = 0; i < N; i += 50) {
      const batch = [];
      for (let j = i; j < Math.min(N, i + 50); j++) batch.push(rawPeer(server.url));
      peers.push(...(await Promise.all(batch)));
    }
    const threads0 = procStatus(server.child.pid, 'Threads');
    const t0 = Date.now();
    const answers = peers.map((p) => p.send('invoke', { object: 'manager_ServerManager', operation: 'getUsedCpu', operationParams: { interval: 4000 } }, undefined, 30000));
    await sleep(500);
    const other = await rawPeer(server.url);
    const t1 = Date.now();
    const created = await other.send('create', { type: 'MediaPipeline' });
    const elapsed = Date.now() - t1;
    const threads = procStatus(server.child.pid, 'Threads');
    assert.ok(created.result && created.result.value, JSON.stringify(created));
    assert.ok(elapsed < 2000, `unrelated create answered in ${elapsed} ms`);
    assert.ok(threads < 100, `server threads: ${threads} (${threads0} before the calls)`);
    const results = await Promise.all(answers);
    const numbers = results.filter((r) => r.result && typeof r.result.value === 'number');
    assert.equal(numbers.length, N, `every call answered with a number: ${JSON.stringify(results.find((r) => !r.result))}`);
    assert.ok(Date.now() - t0 < 20000, `all answered in ${Date.now() - t0} ms`);
    assert.ok(procStatus(server.child.pid, 'Threads') < 100);
    other.close();
    for (const p of peers) p.close();
  } finally {
    await server.stop();
  }
});

test('per-object caps from mediaServer.resources.limits answer 40009, then the object still works', async () => {
  const server = await startServer({
    resources: { limits: { maxSubscriptionsPerObject: 5, maxTagsPerObject: 3, maxTagBytes: 100, maxSlowCallsPerSession: 2 } },
  });
  try {
    const client = await connect(server.url);
    const pipeline = await call(client, 'create', 'MediaPipeline');
    // Tags: size and count, through the official client.
    await assert.rejects(call(pipeline, 'addTag', 'big', 'x'.repeat(98)), (e) => e.code === 40009 && /maxTagBytes/.test(e.message));
    for (let i = 0; i < 3; i++) await call(pipeline, 'addTag', `k${i}`, 'v');
    await assert.rejects(call(pipeline, 'addTag', 'k3', 'v'), (e) => e.code === 40009 && /maxTagsPerObject/.test(e.message));
    await call(pipeline, 'addTag', 'k0', 'replaced'); // replacing a key is not growth
    assert.equal(await call(pipeline, 'getTag', 'k0'), 'replaced');
    await call(pipeline, 'removeTag', 'k1');
    await call(pipeline, 'addTag', 'k4', 'x'.repeat(90));

    // Subscriptions: all sessions together on one object.
    const a = await rawPeer(server.url);
    const b = await rawPeer(server.url);
    const sub = (peer) => peer.send('subscribe', { object: pipeline.id, type: 'Error' });
    const aSubs = [];
    for (let i = 0; i < 3; i++) aSubs.push((await sub(a)).result.value);
    for (let i = 0; i < 2; i++) assert.ok((await sub(b)).result);
    for (const peer of [a, b]) {
      const over = await sub(peer);
      assert.equal(over.error && over.error.code, 40009, JSON.stringify(over));
      assert.match(over.error.message, /maxSubscriptionsPerObject/);
    }
    // Unsubscribing frees room.
    const aSid = (await a.send('ping')).result.sessionId;
    assert.ok((await a.send('unsubscribe', { object: pipeline.id, subscription: aSubs[0], sessionId: aSid })).result);
    const again = await sub(b);
    assert.ok(again.result, JSON.stringify(again));
    // The shared ServerManager counts per session: one client cannot use up
    // everyone's share.
    const smSub = (peer) => peer.send('subscribe', { object: 'manager_ServerManager', type: 'ObjectCreated' });
    for (let i = 0; i < 5; i++) assert.ok((await smSub(a)).result);
    assert.equal((await smSub(a)).error.code, 40009);
    for (let i = 0; i < 5; i++) assert.ok((await smSub(b)).result, 'another session still may');

    // Slow calls per session: connections sharing one session.
    const s = await rawPeer(server.url);
    const sid = (await s.send('describe', { object: 'manager_ServerManager' })).result.sessionId;
    const peers = [s, await rawPeer(server.url), await rawPeer(server.url)];
    const calls = peers.map((p) => p.send('invoke', { object: 'manager_ServerManager', operation: 'getUsedCpu', operationParams: { interval: 1500 }, sessionId: sid }));
    const results = await Promise.all(calls);
    const refused = results.filter((r) => r.error);
    assert.equal(refused.length, 1, JSON.stringify(results));
    assert.equal(refused[0].error.code, 40009);
    assert.match(refused[0].error.message, /maxSlowCallsPerSession/);
    // Once they are done, the session may call again.
    const later = await s.send('invoke', { object: 'manager_ServerManager', operation: 'getUsedCpu', operationParams: { interval: 10 }, sessionId: sid });
    assert.equal(typeof later.result.value, 'number');

    for (const p of [a, b, ...peers]) p.close();
    await call(pipeline, 'release');
    client.close();
  } finally {
    await server.stop();
  }
});
