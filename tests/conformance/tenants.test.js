// Access control with tenants (issue 8 §4, beyond KMS): access tokens map
// to tenants; objects, sessions, listings and ServerManager events are per
// tenant; sharing by id still works inside a tenant (KMS behaviour);
// allowedOrigins refuses foreign browser origins; refusals are logged
// without the token and rate-limited. Driven by the official kurento-client
// where it can express the case, by raw WebSockets where it cannot (HTTP
// status of a refused upgrade, Origin header, foreign session ids).
'use strict';

const net = require('node:net');
const test = require('node:test');
const assert = require('node:assert/strict');
const WebSocket = require('ws');
const { startServer, connect, call, rawPeer } = require('./lib/harness');

const TOKENS = { 'tok-alpha-5e1f': 'alpha', 'tok-beta-77c2': 'beta', 'tok-ops-0a9d': 'ops' };
const ACCESS = {
  accessTokens: TOKENS,
  adminTenants: ['ops'],
  allowedOrigins: ['https://app.example.com'],
};

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const withToken = (server, token) => `${server.url}?access_token=${token}`;

/** The HTTP status of an upgrade attempt (101 when it succeeds). */
function upgradeStatus(url, options = {}) {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(url, options);
    ws.on('open', () => { ws.close(); resolve(101); });
    ws.on('unexpected-response', (req, res) => { resolve(res.statusCode); req.destroy(); });
    ws.on('error', (e) => { if (!/Unexpected server response/.test(e.message)) reject(e); });
  });
}

function rawHttp(port, text) {
  return new Promise((resolve, reject) => {
    const s = net.connect(port, '127.0.0.1', () => s.write(text));
    let data = '';
    s.on('data', (d) => { data += d; s.destroy(); resolve(data); });
    s.on('error', reject);
  });
}

test('two tenants: neither lists, describes, uses as parameter, subscribes to or releases the other\'s objects; sharing inside a tenant works', async () => {
  const server = await startServer({ websocket: ACCESS });
  try {
    const a = await connect(withToken(server, 'tok-alpha-5e1f'));
    const b = await connect(withToken(server, 'tok-beta-77c2'));
    const smA = await call(a, 'getServerManager');
    const smB = await call(b, 'getServerManager');
    const createdA = [];
    smA.on('ObjectCreated', (ev) => createdA.push(ev.object.id || ev.object));
    await sleep(100); // subscription round trip

    const pa = await call(a, 'create', 'MediaPipeline');
    const ea = await call(pa, 'create', 'PassThrough');
    const pb = await call(b, 'create', 'MediaPipeline');
    const eb = await call(pb, 'create', 'PassThrough');

    // Listings: own pipelines and sessions only.
    const listA = (await call(smA, 'getPipelines')).map((p) => p.id);
    const listB = (await call(smB, 'getPipelines')).map((p) => p.id);
    assert.deepEqual(listA, [pa.id]);
    assert.deepEqual(listB, [pb.id]);
    const sessA = await call(smA, 'getSessions');
    const sessB = await call(smB, 'getSessions');
    assert.ok(sessA.length >= 1 && sessB.length >= 1);
    assert.ok(sessA.every((s) => !sessB.includes(s)), 'no session listed to both tenants');

    // ServerManager events: only about the subscriber's tenant.
    await sleep(300);
    assert.ok(createdA.includes(pa.id) && createdA.includes(ea.id), `alpha sees its objects: ${createdA}`);
    assert.ok(!createdA.includes(pb.id) && !createdA.includes(eb.id), 'alpha sees nothing of beta');

    // Describe through the official client: not found.
    await assert.rejects(call(b, 'getMediaobjectById', pa.id), (e) => e.code === 40101);
    await assert.rejects(call(b, 'getMediaobjectById', ea.id), (e) => e.code === 40101);

    // Invoke, operation parameters, subscribe, ref, release: raw beta peer.
    const rb = await rawPeer(withToken(server, 'tok-beta-77c2'));
    const sidB = (await rb.send('describe', { object: eb.id })).result.sessionId;
    const as = (params) => Object.assign({ sessionId: sidB }, params);
    const expect40101 = (r, what) => assert.equal(r.error && r.error.code, 40101, `${what}: ${JSON.stringify(r)}`);
    expect40101(await rb.send('describe', as({ object: pa.id })), 'describe');
    expect40101(await rb.send('create', as({ type: 'PassThrough', constructorParams: { mediaPipeline: pa.id } })), 'create in the other tenant\'s pipeline');
    expect40101(await rb.send('invoke', as({ object: ea.id, operation: 'getName' })), 'invoke');
    expect40101(await rb.send('invoke', as({ object: eb.id, operation: 'connect', operationParams: { sink: ea.id } })), 'connect(sink) of the other tenant');
    expect40101(await rb.send('invoke', as({ object: pa.id, operation: 'addTag', operationParams: { key: 'k', value: 'v' } })), 'addTag');
    expect40101(await rb.send('subscribe', as({ object: ea.id, type: 'ElementConnected' })), 'subscribe');
    expect40101(await rb.send('ref', as({ object: pa.id })), 'ref');
    expect40101(await rb.send('release', as({ object: pa.id })), 'release');
    expect40101(await rb.send('unref', as({ object: ea.id })), 'unref');
    const tx = await rb.send('transaction', as({ operations: [{ jsonrpc: '2.0', id: 0, method: 'release', params: { object: pa.id } }] }));
    assert.equal(tx.result.value[0].error.code, 40101, 'release inside a transaction');
    // ... and alpha's objects are untouched.
    assert.equal(await call(ea, 'getMediaPipeline').then((p) => p.id), pa.id);
    assert.deepEqual((await call(smA, 'getPipelines')).map((p) => p.id), [pa.id]);

    // A session id of alpha gives beta nothing.
    const ra = await rawPeer(withToken(server, 'tok-alpha-5e1f'));
    const sidA = (await ra.send('describe', { object: ea.id })).result.sessionId;
    for (const [method, params] of [['create', { type: 'MediaPipeline' }], ['describe', { object: ea.id }], ['connect', {}]]) {
      const r = await rb.send(method, Object.assign({ sessionId: sidA }, params));
      assert.equal(r.error && r.error.code, 40007, `${method} with alpha's session: ${JSON.stringify(r)}`);
    }
    const pong = await rb.send('ping', { sessionId: sidA });
    assert.deepEqual(pong.result, { value: 'pong' }, 'ping never fails, but does not bind beta to it');

    // Same tenant: sharing by id works as in KMS (official client).
    const a2 = await connect(withToken(server, 'tok-alpha-5e1f'));
    const pa2 = await call(a2, 'getMediaobjectById', pa.id);
    const ea2 = await call(a2, 'getMediaobjectById', ea.id);
    const other = await call(pa2, 'create', 'PassThrough');
    await call(ea2, 'connect', other);
    assert.equal((await call(other, 'getSourceConnections')).length, 3);
    assert.deepEqual((await call(await call(a2, 'getServerManager'), 'getPipelines')).map((p) => p.id), [pa.id]);

    // Process-wide figures and ServerManager setters: admin tenants only.
    await assert.rejects(call(smA, 'getUsedMemory'), (e) => e.code === 40006 && /admin/.test(e.message));
    await assert.rejects(call(smB, 'getUsedCpu', 10), (e) => e.code === 40006);
    await assert.rejects(call(smA, 'addTag', 'k', 'v'), (e) => e.code === 40006);
    const ops = await connect(withToken(server, 'tok-ops-0a9d'));
    const smOps = await call(ops, 'getServerManager');
    assert.ok((await call(smOps, 'getUsedMemory')) > 1000);
    assert.equal(typeof (await call(smOps, 'getUsedCpu', 10)), 'number');
    assert.deepEqual(await call(smOps, 'getPipelines'), [], 'admin grants no view of other tenants\' objects');
    await assert.rejects(call(ops, 'getMediaobjectById', pa.id), (e) => e.code === 40101);

    // Beta releases its own pipeline normally.
    await call(pb, 'release');
    await call(pa, 'release');
    for (const c of [a, a2, b, ops]) c.close();
    ra.close();
    rb.close();
  } finally {
    await server.stop();
  }
});

test('wrong or missing token → 401, foreign Origin → 403, healthcheck → 500; refusals logged without the token, rate-limited', async () => {
  const server = await startServer({ websocket: ACCESS });
  try {
    const secret = 'wrong-secret-3d9b71';
    assert.equal(await upgradeStatus(server.url), 401, 'no token');
    assert.equal(await upgradeStatus(`${server.url}?access_token=${secret}`), 401, 'unknown token');
    assert.equal(await upgradeStatus(server.url, { headers: { Authorization: `Bearer ${secret}` } }), 401, 'unknown bearer');
    const good = withToken(server, 'tok-beta-77c2');
    assert.equal(await upgradeStatus(good, { origin: 'https://evil.example.com' }), 403, 'foreign origin');
    assert.equal(await upgradeStatus(good, { origin: 'https://app.example.com' }), 101, 'allowed origin');
    assert.equal(await upgradeStatus(good), 101, 'no Origin (not a browser)');
    assert.equal(await upgradeStatus(server.url, { headers: { Authorization: 'Bearer tok-alpha-5e1f' } }), 101);
    // The Docker healthcheck request still gets its 500.
    const hc = await rawHttp(server.port, `GET /kurento HTTP/1.1\r\nHost: 127.0.0.1:${server.port}\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n`);
    assert.match(hc, /^HTTP\/1\.1 500/);

    // A client hammering with a wrong token.
    for (let i = 0; i < 50; i++) assert.equal(await upgradeStatus(`${server.url}?access_token=${secret}`), 401);
    await sleep(200);
    const log = server.log();
    const lines = log.split('\n').filter((l) => /upgrade refused/.test(l));
    assert.equal(lines.length, 1, `one line per source address per minute, got:\n${lines.join('\n')}`);
    assert.match(lines[0], /127\.0\.0\.1/);
    assert.ok(!log.includes(secret), 'the refused token is never logged');
    for (const t of Object.keys(TOKENS)) assert.ok(!log.includes(t), 'configured tokens are never logged');
  } finally {
    await server.stop();
  }
});
