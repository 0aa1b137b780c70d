// /metrics while media flows (issue 11): RTP packet and byte counters move,
// endpoints are counted by ICE/DTLS state, and a VP8 → H.264 transcoding
// branch is counted by its codec pair — parsed with a real Prometheus
// parser (tests/shared/metrics.js).
'use strict';

const test = require('node:test');
const assert = require('node:assert/strict');
const h = require('./lib/harness');
const m = require('../shared/metrics');

const env = h.suite();

test('RTP counters, ICE/DTLS states and transcoding branches follow a running session', async () => {
  const { client, browser, pages, server } = env;
  const port = Number(new URL(server.url).port);
  const before = (await m.scrape(port)).samples;
  const pipeline = await h.call(client, 'create', 'MediaPipeline');
  const a = await h.call(pipeline, 'create', 'WebRtcEndpoint');
  const b = await h.call(pipeline, 'create', 'WebRtcEndpoint');
  await h.call(a, 'connect', b);
  const sPage = await browser.newPage(pages.url);
  await h.negotiate(sPage, a, 'sendonly', { videoCodec: 'VP8' });
  const rPage = await browser.newPage(pages.url);
  await h.negotiate(rPage, b, 'recvonly', { videoCodec: 'H264' });
  await h.decodes(rPage);
  const s = (await m.scrape(port)).samples;
  const moved = (name) => m.value(s, name) - (m.value(before, name) || 0);
  assert.ok(moved('kms_rtp_received_packets_total') > 100, 'RTP packets in');
  assert.ok(moved('kms_rtp_received_bytes_total') > 10000, 'RTP bytes in');
  assert.ok(moved('kms_rtp_sent_packets_total') > 100, 'RTP packets out');
  assert.ok(moved('kms_rtp_sent_bytes_total') > 10000, 'RTP bytes out');
  assert.equal(m.value(s, 'kms_element_states', { class: 'WebRtcEndpoint', kind: 'dtls', state: 'CONNECTED' }), 2);
  assert.ok(m.value(s, 'kms_element_states', { class: 'WebRtcEndpoint', kind: 'ice', state: 'CONNECTED' }) >= 1 ||
    m.value(s, 'kms_element_states', { class: 'WebRtcEndpoint', kind: 'ice', state: 'READY' }) >= 1, 'ICE connected');
  assert.equal(m.value(s, 'kms_transcoding_branches', { from: 'vp8', to: 'h264' }), 1, 'the VP8 → H.264 branch');
  await sPage.close();
  await rPage.close();
  await h.call(pipeline, 'release');
  const after = (await m.scrape(port)).samples;
  assert.equal(m.value(after, 'kms_transcoding_branches', { from: 'vp8', to: 'h264' }), undefined, 'gone with the pipeline');
});
