// MediaPipeline and MediaElement operations through the official client,
// and a clean exit on SIGTERM.
'use strict';

const test = require('node:test');
const assert = require('node:assert/strict');
const { startServer, connect, call } = require('./lib/harness');

test('pipeline DOT, latencyStats, element bitrates, stats shape, flow queries', async () => {
  const server = await startServer();
  try {
    const client = await connect(server.url);
    const pipeline = await call(client, 'create', 'MediaPipeline');
    const a = await call(pipeline, 'create', 'PassThrough');
    const dot = await call(pipeline, 'getGstreamerDot');
    assert.match(dot, /^digraph/);
    assert.equal(await call(pipeline, 'getLatencyStats'), false);
    await call(pipeline, 'setLatencyStats', true);
    assert.equal(await call(pipeline, 'getLatencyStats'), true);
    assert.equal(await call(a, 'getEncoderBitrate'), 300000, 'MediaElement.conf.ini default');
    await call(a, 'setMaxEncoderBitrate', 500000);
    assert.equal(await call(a, 'getMaxEncoderBitrate'), 500000);
    const stats = await call(a, 'getStats');
    const s = stats[a.id];
    assert.ok(s, 'ElementStats keyed by the element id');
    assert.equal(s.type, 'element');
    assert.equal(typeof s.timestampMillis, 'number');
    assert.equal(await call(a, 'isMediaFlowingIn', 'VIDEO'), false);
    assert.equal(await call(a, 'isMediaFlowingOut', 'AUDIO'), false);
    assert.equal(await call(a, 'isMediaTranscoding', 'VIDEO'), false);
    await assert.rejects(call(a, 'isMediaFlowingIn', 'DATA'), (e) => e.code === 40107);
    const elementDot = await call(a, 'getGstreamerDot', 'SHOW_ALL');
    assert.match(elementDot, /^digraph/);
    await call(pipeline, 'release');
    client.close();
    // close() disconnects asynchronously: let it finish before the server
    // stops, or reconnect-ws retries against a closed port.
    await new Promise((r) => setTimeout(r, 300));
  } finally {
    const exit = await server.stop();
    assert.deepEqual(exit, { code: 0, signal: null }, 'SIGTERM → orderly shutdown, exit 0');
  }
});
