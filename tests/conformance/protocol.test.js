// Conformance of the Kurento Protocol, driven by the official kurento-client
// 7.3.0 (unmodified) and a raw WebSocket peer against the real server.
'use strict';

const test = require('node:test');
const assert = require('node:assert/strict');
const { startServer, connect, call, once, rawPeer } = require('./lib/harness');

let server;
test.before(async () => { server = await startServer({ metadata: { site: 'ci' } }); });
test.after(async () => { await server.stop(); });

test('strict connect, ServerManager info, pipelines, sessions, kmd, cpu, memory, metadata', async () => {
  const client = await connect(server.url);
  const sm = await call(client, 'getServerManager');
  const info = await call(sm, 'getInfo');
  const names = info.modules.map((m) => m.name);
  for (const m of ['core', 'elements', 'filters']) assert.ok(names.includes(m), `module ${m} listed`);
  assert.equal(info.type, 'KMS');
  assert.deepEqual(info.capabilities, ['transactions']);
  const core = info.modules.find((m) => m.name === 'core');
  assert.ok(core.factories.includes('PassThrough') && core.factories.includes('MediaPipeline'));
  const kmd = JSON.parse(await call(sm, 'getKmd', 'core'));
  assert.equal(kmd.name, 'core');
  assert.ok(kmd.remoteClasses.some((c) => c.name === 'MediaElement'));
  await assert.rejects(call(sm, 'getKmd', 'nope'), (e) => e.code === 40500);
  assert.ok((await call(sm, 'getCpuCount')) >= 1);
  assert.ok((await call(sm, 'getUsedMemory')) > 1000, 'RSS in KiB');
  assert.match(await call(sm, 'getMetadata'), /"site": "ci"/);
  const pipeline = await call(client, 'create', 'MediaPipeline');
  const pipelines = await call(sm, 'getPipelines');
  assert.ok(pipelines.some((p) => p.id === pipeline.id), 'new pipeline listed');
  const sessions = await call(sm, 'getSessions');
  assert.ok(sessions.length >= 1 && sessions.every((s) => /^[0-9a-f-]{36}$/.test(s)), 'session ids, no padding');
  await call(pipeline, 'release');
  client.close();
});

test('ids, describe hierarchy, ObjectCreated/ElementConnected payloads, connections by media type', async () => {
  const client = await connect(server.url);
  const sm = await call(client, 'getServerManager');
  const created = [];
  sm.on('ObjectCreated', (ev) => created.push(ev));
  await new Promise((r) => setTimeout(r, 100)); // subscription round trip
  const pipeline = await call(client, 'create', 'MediaPipeline');
  assert.match(pipeline.id, /^[0-9a-f-]{36}_kurento\.MediaPipeline$/);
  const a = await call(pipeline, 'create', 'PassThrough');
  const b = await call(pipeline, 'create', 'PassThrough');
  assert.ok(a.id.startsWith(pipeline.id + '/'), 'child id prefixed by parent id');
  assert.match(a.id, /_kurento\.PassThrough$/);
  const connected = [];
  a.on('ElementConnected', (ev) => connected.push(ev));
  await new Promise((r) => setTimeout(r, 100));
  await call(a, 'connect', b, 'VIDEO');
  await new Promise((r) => setTimeout(r, 200));
  assert.equal(connected.length, 1, 'one event for one media type');
  const ev = connected[0];
  assert.equal(ev.mediaType, 'VIDEO');
  assert.equal(ev.sourceMediaDescription, 'default');
  assert.equal(ev.sinkMediaDescription, 'default');
  assert.equal(ev.type, 'ElementConnected');
  assert.equal(typeof ev.timestampMillis, 'string');
  assert.deepEqual(ev.tags, []);
  const sinkConns = await call(a, 'getSinkConnections');
  assert.equal(sinkConns.length, 1);
  assert.equal(sinkConns[0].type, 'VIDEO');
  const srcConns = await call(b, 'getSourceConnections', 'VIDEO');
  assert.equal(srcConns.length, 1);
  assert.equal((await call(b, 'getSourceConnections', 'AUDIO')).length, 0);
  // No media type: AUDIO, VIDEO and DATA (three events).
  await call(a, 'connect', b);
  await new Promise((r) => setTimeout(r, 200));
  assert.deepEqual(connected.slice(1).map((e) => e.mediaType).sort(), ['AUDIO', 'DATA', 'VIDEO']);
  assert.equal((await call(a, 'getSinkConnections')).length, 3);
  const disconnected = [];
  a.on('ElementDisconnected', (e) => disconnected.push(e));
  await new Promise((r) => setTimeout(r, 100));
  await call(a, 'disconnect', b, 'AUDIO');
  await new Promise((r) => setTimeout(r, 200));
  assert.deepEqual(disconnected.map((e) => e.mediaType), ['AUDIO']);
  assert.deepEqual((await call(a, 'getSinkConnections')).map((c) => c.type).sort(), ['DATA', 'VIDEO']);
  const objectIds = created.map((e) => e.object.id || e.object);
  assert.ok(objectIds.includes(a.id), 'ObjectCreated for the PassThrough');
  assert.equal(created[0].source.id || created[0].source, 'manager_ServerManager');
  await call(pipeline, 'release');
  client.close();
});

test('tags, name, sendTagsInEvents, getTag on unknown key → 40110', async () => {
  const client = await connect(server.url);
  const pipeline = await call(client, 'create', 'MediaPipeline');
  const a = await call(pipeline, 'create', 'PassThrough');
  const b = await call(pipeline, 'create', 'PassThrough');
  assert.equal(await call(a, 'getName'), a.id);
  await call(a, 'setName', 'alpha');
  assert.equal(await call(a, 'getName'), 'alpha');
  await call(a, 'addTag', 'k1', 'v1');
  await call(a, 'addTag', 'k2', 'v2');
  await call(a, 'addTag', 'k1', 'v1b');
  assert.equal(await call(a, 'getTag', 'k1'), 'v1b');
  const tags = await call(a, 'getTags');
  assert.deepEqual(tags.map((t) => [t.key, t.value]), [['k1', 'v1b'], ['k2', 'v2']]);
  await call(a, 'removeTag', 'k2');
  await assert.rejects(call(a, 'getTag', 'k2'), (e) => e.code === 40110);
  await call(a, 'setSendTagsInEvents', true);
  const got = once(a, 'ElementConnected');
  await new Promise((r) => setTimeout(r, 100));
  await call(a, 'connect', b, 'AUDIO');
  const ev = await got;
  assert.deepEqual(ev.tags.map((t) => [t.key, t.value]), [['k1', 'v1b']]);
  assert.ok((await call(a, 'getCreationTime')) > 1600000000);
  const parent = await call(a, 'getParent');
  assert.equal(parent.id, pipeline.id);
  const children = await call(pipeline, 'getChildren');
  assert.deepEqual(children.map((c) => c.id).sort(), [a.id, b.id].sort());
  await call(pipeline, 'release');
  client.close();
});

test('release cascades to children; a released id answers 40101', async () => {
  const client = await connect(server.url);
  const pipeline = await call(client, 'create', 'MediaPipeline');
  const a = await call(pipeline, 'create', 'PassThrough');
  const peer = await rawPeer(server.url);
  const destroyed = [];
  const sub = await peer.send('subscribe', { object: 'manager_ServerManager', type: 'ObjectDestroyed' });
  assert.ok(sub.result.value);
  await call(pipeline, 'release');
  await new Promise((r) => setTimeout(r, 300));
  for (const e of peer.events) destroyed.push(e.params.value.data.objectId);
  assert.ok(destroyed.includes(pipeline.id) && destroyed.includes(a.id), 'both destroyed');
  const r = await peer.send('invoke', { object: a.id, operation: 'getName' });
  assert.equal(r.error.code, 40101);
  assert.equal(r.error.data.type, 'MEDIA_OBJECT_NOT_FOUND');
  assert.equal(r.error.message, `Object '${a.id}' not found`);
  const rel = await peer.send('release', { object: a.id });
  assert.ok(rel.result, 'release of an unknown id succeeds');
  peer.close();
  client.close();
});

test('errors: unknown class 40108, unknown method 40008, bad params 40001, pipeline as sink 40001', async () => {
  const client = await connect(server.url);
  const peer = await rawPeer(server.url);
  const unknown = await peer.send('create', { type: 'NoSuchThing' });
  assert.equal(unknown.error.code, 40108);
  assert.equal(unknown.error.message, "Factory 'NoSuchThing' not found");
  assert.equal(unknown.error.data.type, 'MEDIA_OBJECT_NOT_AVAILABLE');
  const p = await peer.send('create', { type: 'MediaPipeline' });
  const pid = p.result.value;
  const sid = p.result.sessionId;
  const m = await peer.send('invoke', { object: pid, operation: 'fly', operationParams: { a: 1 }, sessionId: sid });
  assert.equal(m.error.code, 40008);
  assert.equal(m.error.message, "Method 'fly' with 1 parameters not found");
  const bad = await peer.send('invoke', { object: pid, operation: 'setLatencyStats', operationParams: { latencyStats: 'yes' }, sessionId: sid });
  assert.equal(bad.error.code, 40001);
  assert.equal(bad.error.data.type, 'MARSHALL_ERROR');
  const pt = await peer.send('create', { type: 'PassThrough', constructorParams: { mediaPipeline: pid }, sessionId: sid });
  const seg = await peer.send('invoke', { object: pt.result.value, operation: 'connect', operationParams: { sink: pid }, sessionId: sid });
  assert.equal(seg.error.code, 40001, 'a pipeline is not a MediaElement: clear error, no crash');
  const noCtor = await peer.send('create', { type: 'PassThrough', sessionId: sid });
  assert.equal(noCtor.error.code, 40001);
  assert.equal(noCtor.error.message, "'constructorParams' is required");
  const qualified = await peer.send('create', { type: 'kurento.PassThrough', constructorParams: { mediaPipeline: pid }, sessionId: sid });
  assert.match(qualified.result.value, /_kurento\.PassThrough$/);
  const desc = await peer.send('describe', { object: qualified.result.value, sessionId: sid });
  assert.deepEqual(desc.result.hierarchy, ['kurento.MediaElement', 'kurento.MediaObject']);
  assert.equal(desc.result.qualifiedType, 'kurento.PassThrough');
  const unsub = await peer.send('subscribe', { object: pid, type: 'NotAnEvent', sessionId: sid });
  assert.equal(unsub.error.code, 40106);
  const ping = await peer.send('ping', {});
  assert.equal(ping.result.value, 'pong');
  await peer.send('release', { object: pid, sessionId: sid });
  peer.close();
  client.close();
});

test('reconnect with the same sessionId keeps objects and event subscriptions', async () => {
  const a = await rawPeer(server.url);
  const created = await a.send('create', { type: 'MediaPipeline' });
  const sid = created.result.sessionId;
  const pid = created.result.value;
  const pt1 = (await a.send('create', { type: 'PassThrough', constructorParams: { mediaPipeline: pid }, sessionId: sid })).result.value;
  const pt2 = (await a.send('create', { type: 'PassThrough', constructorParams: { mediaPipeline: pid }, sessionId: sid })).result.value;
  await a.send('subscribe', { object: pt1, type: 'ElementConnected', sessionId: sid });
  a.close();
  await new Promise((r) => setTimeout(r, 200));
  const b = await rawPeer(server.url);
  const c = await b.send('connect', { sessionId: sid });
  assert.equal(c.result.sessionId, sid);
  assert.match(c.result.serverId, /^[0-9a-f-]{36}$/);
  const name = await b.send('invoke', { object: pid, operation: 'getName', sessionId: sid });
  assert.equal(name.result.value, pid, 'objects survive the socket');
  await b.send('invoke', { object: pt1, operation: 'connect', operationParams: { sink: pt2, mediaType: 'VIDEO' }, sessionId: sid });
  await new Promise((r) => setTimeout(r, 200));
  assert.equal(b.events.length, 1, 'subscription survived reconnection');
  assert.equal(b.events[0].params.value.type, 'ElementConnected');
  assert.equal(b.events[0].params.value.object, pt1);
  const bogus = await b.send('connect', { sessionId: '00000000-0000-4000-8000-000000000000' });
  assert.equal(bogus.error.code, 40007);
  await b.send('release', { object: pid, sessionId: sid });
  b.close();
});

test('transactions with newref through the official client and raw', async () => {
  const client = await connect(server.url);
  const pipeline = await call(client, 'create', 'MediaPipeline');
  const [x, y] = await new Promise((resolve, reject) => {
    pipeline.create([{ type: 'PassThrough', params: {} }, { type: 'PassThrough', params: {} }], (err, els) => (err ? reject(err) : resolve(els)));
  });
  assert.match(x.id, /_kurento\.PassThrough$/);
  assert.match(y.id, /_kurento\.PassThrough$/);
  const peer = await rawPeer(server.url);
  const r = await peer.send('transaction', {
    operations: [
      { jsonrpc: '2.0', id: 0, method: 'create', params: { type: 'MediaPipeline' } },
      { jsonrpc: '2.0', id: 1, method: 'create', params: { type: 'PassThrough', constructorParams: { mediaPipeline: 'newref:0' } } },
      { jsonrpc: '2.0', id: 2, method: 'invoke', params: { object: 'newref:1', operation: 'getName' } },
      { jsonrpc: '2.0', id: 3, method: 'invoke', params: { object: 'newref:1', operation: 'bogus' } },
      { jsonrpc: '2.0', id: 4, method: 'invoke', params: { object: 'newref:1', operation: 'getName' } },
    ],
  });
  const v = r.result.value;
  assert.equal(v.length, 4, 'stops at the first failure');
  assert.equal(v[2].result.value, v[1].result.value);
  assert.equal(v[3].error.code, 40008);
  const outside = await peer.send('invoke', { object: 'newref:1', operation: 'getName' });
  assert.equal(outside.error.code, 40109);
  await peer.send('release', { object: v[0].result.value });
  await call(pipeline, 'release');
  peer.close();
  client.close();
});

test('connection cycles (A→B→A, A→A) are legal and do not take the server down', async () => {
  const peer = await rawPeer(server.url);
  const p = await peer.send('create', { type: 'MediaPipeline' });
  const sid = p.result.sessionId;
  const mk = async () => (await peer.send('create', { type: 'PassThrough', constructorParams: { mediaPipeline: p.result.value }, sessionId: sid })).result.value;
  const a = await mk();
  const b = await mk();
  const ok = async (src, sink, mediaType) => {
    const r = await peer.send('invoke', { object: src, operation: 'connect', operationParams: mediaType ? { sink, mediaType } : { sink }, sessionId: sid });
    assert.ok(r.result, JSON.stringify(r.error));
  };
  await ok(a, b);
  await ok(b, a, 'VIDEO');
  const conns = await peer.send('invoke', { object: a, operation: 'getSourceConnections', sessionId: sid });
  assert.deepEqual(conns.result.value.map((c) => c.type).sort(), ['VIDEO']);
  // A PassThrough connected to itself (spec §10.3: connecting an element
  // to itself is legal) replaces its input with its own output.
  const c = await mk();
  await ok(c, c);
  const own = await peer.send('invoke', { object: c, operation: 'getSourceConnections', sessionId: sid });
  assert.deepEqual(own.result.value.map((x) => [x.source, x.sink, x.type]).sort(),
    [[c, c, 'AUDIO'], [c, c, 'DATA'], [c, c, 'VIDEO']]);
  await ok(a, c);
  const fed = await peer.send('invoke', { object: c, operation: 'getSourceConnections', sessionId: sid });
  assert.ok(fed.result.value.every((x) => x.source === a), 'the new source replaced the loop');
  const other = await rawPeer(server.url);
  assert.equal((await other.send('ping')).result.value, 'pong', 'server alive');
  other.close();
  await peer.send('release', { object: p.result.value, sessionId: sid });
  peer.close();
});
