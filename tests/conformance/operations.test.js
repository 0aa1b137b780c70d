// Operations (issue 11, beyond KMS): /metrics in Prometheus text format,
// parsed by a real Prometheus parser (prometheus_client) and checked by
// promtool, moving as the official kurento-client creates and releases
// objects; /health and /ready; the SIGUSR1 drain mode; logs without colour
// codes when redirected, and as JSON lines with --log-format=json.
'use strict';

const test = require('node:test');
const assert = require('node:assert/strict');
const { startServer, connect, call, rawPeer } = require('./lib/harness');
const m = require('../shared/metrics');

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

test('/metrics parses, passes promtool, and follows objects, requests and errors', async () => {
  const server = await startServer();
  const client = await connect(server.url);
  try {
    const before = await m.scrape(server.port);
    assert.match(before.contentType, /^text\/plain; version=0\.0\.4/);
    const lint = m.promtool(before.text);
    if (lint) assert.equal(lint.status, 0, `promtool check metrics: ${lint.output}`);
    assert.equal(m.value(before.samples, 'kms_pipelines'), 0);
    assert.ok(m.value(before.samples, 'process_resident_memory_bytes') > 1e6, 'process RSS');
    assert.ok(m.value(before.samples, 'process_threads') >= 2, 'process threads');
    const creates0 = m.value(before.samples, 'kms_rpc_requests_total', { method: 'create' });

    const pipeline = await call(client, 'create', 'MediaPipeline');
    const a = await call(pipeline, 'create', 'WebRtcEndpoint');
    await call(pipeline, 'create', 'WebRtcEndpoint');
    await call(pipeline, 'create', 'PassThrough');
    await assert.rejects(call(a, 'processOffer', 'not an sdp'), (e) => e.code === 40205 || e.code === 40201 || e.code === 40001);

    const during = await m.scrape(server.port);
    const s = during.samples;
    assert.equal(m.value(s, 'kms_pipelines'), 1);
    assert.equal(m.value(s, 'kms_objects', { class: 'WebRtcEndpoint' }), 2);
    assert.equal(m.value(s, 'kms_objects', { class: 'PassThrough' }), 1);
    assert.equal(m.value(s, 'kms_element_states', { class: 'WebRtcEndpoint', kind: 'ice', state: 'NONE' }), 2,
      'endpoints by ICE state (no transport yet)');
    assert.equal(m.value(s, 'kms_rpc_requests_total', { method: 'create' }) - creates0, 4);
    assert.ok(m.value(s, 'kms_rpc_request_duration_seconds_count', { method: 'create' }) >= 4, 'latency histogram');
    assert.ok(m.value(s, 'kms_rpc_request_duration_seconds_sum', { method: 'create' }) > 0);
    const errors = (s.kms_rpc_errors_total || []).reduce((n, x) => n + x.value, 0);
    assert.ok(errors >= 1, 'the refused processOffer is counted by code');
    assert.ok(m.value(s, 'kms_sessions') >= 1 && m.value(s, 'kms_connections') >= 1);

    await call(pipeline, 'release');
    const after = await m.scrape(server.port);
    assert.equal(m.value(after.samples, 'kms_pipelines'), 0);
    assert.equal(m.value(after.samples, 'kms_objects', { class: 'WebRtcEndpoint' }), undefined);
  } finally {
    client.close();
    const r = await server.stop();
    assert.ok(r && r.code === 0, `server exited cleanly: ${JSON.stringify(r)}`);
  }
});

test('with access tokens, /metrics needs one; /health and /ready do not', async () => {
  const server = await startServer({ websocket: { accessTokens: { 'tok-ops-1': 'ops' } } });
  try {
    assert.equal((await m.get(server.port, '/metrics')).status, 401);
    const ok = await m.get(server.port, '/metrics', { authorization: 'Bearer tok-ops-1' });
    assert.equal(ok.status, 200);
    m.parse(ok.body);
    assert.equal((await m.get(server.port, '/health')).status, 200);
    assert.equal((await m.get(server.port, '/ready')).status, 200);
  } finally {
    await server.stop();
  }
});

test('SIGUSR1 drains: /ready 503, new sessions refused, existing ones go on; SIGUSR2 ends it', async () => {
  const server = await startServer();
  const old = await connect(server.url);
  try {
    const pipeline = await call(old, 'create', 'MediaPipeline');
    assert.equal((await m.get(server.port, '/ready')).status, 200);
    server.child.kill('SIGUSR1');
    await sleep(300);
    assert.equal((await m.get(server.port, '/ready')).status, 503);
    assert.equal((await m.get(server.port, '/health')).status, 200, 'still alive');
    // The existing session keeps working.
    const ep = await call(pipeline, 'create', 'PassThrough');
    assert.ok(ep.id);
    // A new connection cannot start a session (kurento-client's first
    // ping already asks for one); raw, so no client keeps reconnecting.
    const fresh = await rawPeer(server.url);
    for (const method of ['ping', 'create']) {
      const params = method === 'create' ? { type: 'MediaPipeline', constructorParams: {} } : undefined;
      const r = await fresh.send(method, params);
      assert.equal(r.error && r.error.code, 40009, `${method}: ${JSON.stringify(r)}`);
      assert.match(r.error.message, /draining/);
    }
    fresh.close();
    assert.equal(m.value((await m.scrape(server.port)).samples, 'kms_draining'), 1);
    server.child.kill('SIGUSR2');
    await sleep(300);
    assert.equal((await m.get(server.port, '/ready')).status, 200);
    const again = await connect(server.url);
    await call(again, 'create', 'MediaPipeline');
    again.close();
  } finally {
    old.close();
    const r = await server.stop();
    assert.ok(r && r.code === 0, `server exited cleanly: ${JSON.stringify(r)}`);
  }
});

test('logs: no colour codes when redirected; --log-format=json gives one JSON object per line', async () => {
  const plain = await startServer();
  await plain.stop();
  assert.match(plain.log(), /listening on ws:/);
  // eslint-disable-next-line no-control-regex
  assert.doesNotMatch(plain.log(), /\x1b\[/, 'no ANSI escapes in a redirected log');

  const json = await startServer({ env: { KURENTO_LOG_FORMAT: 'json' } });
  const client = await connect(json.url);
  await call(client, 'create', 'MediaPipeline');
  client.close();
  await json.stop();
  const lines = json.log().split('\n').filter((l) => l.trim() && !l.startsWith('(') && !/^\d+:\d+:\d+\.\d+ /.test(l));
  assert.ok(lines.length >= 2, json.log());
  const parsed = lines.map((l) => JSON.parse(l));
  assert.ok(parsed.some((o) => o.level === 'INFO' && /listening on ws:/.test(o.fields.message)));
});
