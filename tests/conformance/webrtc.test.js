// WebRtcEndpoint through the official kurento-client, without a browser:
// offers KMS answers with rejected sections (kurento-client's own test
// suite sends plain RTP/AVP offers), the per-endpoint caps of
// mediaServer.resources.limits, a constructor that fails on a bad
// certificate, and data channels between two endpoints of the server.
'use strict';

const test = require('node:test');
const assert = require('node:assert/strict');
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');
const { startServer, connect, call } = require('./lib/harness');

const PLAIN_RTP_OFFER = [
  'v=0', 'o=- 12345 12345 IN IP4 192.168.1.18', 's=-', 'c=IN IP4 192.168.1.18', 't=0 0',
  'm=audio 45324 RTP/AVP 0', 'a=rtpmap:0 PCMU/8000', 'a=sendonly',
  'm=video 45325 RTP/AVP 96', 'a=rtpmap:96 H264/90000', 'a=sendonly', '',
].join('\r\n');

const FP = 'a=fingerprint:sha-256 00:11:22:33:44:55:66:77:88:99:AA:BB:CC:DD:EE:FF:00:11:22:33:44:55:66:77:88:99:AA:BB:CC:DD:EE:FF';
const DTLS_VIDEO = [
  'm=video 9 UDP/TLS/RTP/SAVPF 96', 'c=IN IP4 0.0.0.0', 'a=rtcp:9 IN IP4 0.0.0.0', 'a=ice-ufrag:abcd',
  'a=ice-pwd:abcdefghijklmnopqrstuvwx', FP, 'a=setup:actpass', 'a=mid:0', 'a=sendrecv', 'a=rtcp-mux',
  'a=rtpmap:96 VP8/90000', 'a=rtcp-fb:96 nack pli',
];
const MIXED_OFFER = [
  'v=0', 'o=- 4611731400430051336 2 IN IP4 127.0.0.1', 's=-', 't=0 0', 'a=group:BUNDLE 0',
  ...DTLS_VIDEO,
  'm=audio 45324 RTP/AVP 0', 'c=IN IP4 192.168.1.18', 'a=mid:1', 'a=rtpmap:0 PCMU/8000', 'a=sendonly', '',
].join('\r\n');
const DTLS_OFFER = ['v=0', 'o=- 1 2 IN IP4 127.0.0.1', 's=-', 't=0 0', 'a=group:BUNDLE 0', ...DTLS_VIDEO, ''].join('\r\n');

/** The m-lines of an SDP, each with its attribute lines. */
function sections(sdp) {
  const out = [];
  for (const line of sdp.split(/\r?\n/)) {
    if (line.startsWith('m=')) out.push({ m: line, lines: [] });
    else if (out.length && line) out[out.length - 1].lines.push(line);
  }
  return out;
}

const code = (p) => p.then(() => 'no error', (e) => e.code);

function waitFor(what, ms, fn) {
  const deadline = Date.now() + ms;
  return new Promise((resolve, reject) => {
    const tick = async () => {
      let v;
      try { v = await fn(); } catch (e) { v = null; }
      if (v) return resolve(v);
      if (Date.now() > deadline) return reject(new Error(`timeout waiting for ${what}`));
      setTimeout(tick, 100);
    };
    tick();
  });
}

test('processOffer: plain RTP/AVP sections are answered rejected (port 0, inactive), as KMS does', async () => {
  const server = await startServer();
  try {
    const client = await connect(server.url);
    const pipeline = await call(client, 'create', 'MediaPipeline');

    // Every section plain RTP/AVP: still an answer, every m-line rejected.
    const ep = await call(pipeline, 'create', 'WebRtcEndpoint');
    const answer = await call(ep, 'processOffer', PLAIN_RTP_OFFER);
    assert.match(answer, /^v=0\r\n/);
    const s = sections(answer);
    assert.deepEqual(s.map((x) => x.m), ['m=audio 0 RTP/AVP 0', 'm=video 0 RTP/AVP 96'], answer);
    for (const x of s) assert.ok(x.lines.includes('a=inactive'), `${x.m} inactive: ${answer}`);
    assert.equal(await call(ep, 'getLocalSessionDescriptor'), answer);
    assert.equal(await call(ep, 'getRemoteSessionDescriptor'), PLAIN_RTP_OFFER);
    assert.equal(await code(call(ep, 'processOffer', PLAIN_RTP_OFFER)), 40208, 'negotiated once');

    // One DTLS section, one plain: only the plain one is rejected, the order
    // and mids are kept.
    const mixed = await call(pipeline, 'create', 'WebRtcEndpoint');
    const mAnswer = await call(mixed, 'processOffer', MIXED_OFFER);
    const ms = sections(mAnswer);
    assert.equal(ms.length, 2, mAnswer);
    assert.match(ms[0].m, /^m=video 9 UDP\/TLS\/RTP\/SAVPF 96/, mAnswer);
    assert.ok(ms[0].lines.includes('a=mid:0') && ms[0].lines.some((l) => l.startsWith('a=fingerprint:')), mAnswer);
    assert.equal(ms[1].m, 'm=audio 0 RTP/AVP 0', mAnswer);
    assert.ok(ms[1].lines.includes('a=inactive') && ms[1].lines.includes('a=mid:1'), mAnswer);
    assert.match(mAnswer, /a=group:BUNDLE 0\r\n/);

    // Bad SDP keeps the spec's error, and the endpoint can still negotiate.
    const bad = await call(pipeline, 'create', 'WebRtcEndpoint');
    assert.equal(await code(call(bad, 'processOffer', 'hello')), 40201);
    assert.equal(await code(call(bad, 'processOffer', '')), 40201);
    assert.match(await call(bad, 'processOffer', DTLS_OFFER), /m=video 9 UDP\/TLS\/RTP\/SAVPF 96/);

    await call(pipeline, 'release');
    client.close();
  } finally {
    await server.stop();
  }
});

test('maxQueuedIceCandidates / maxDataChannels (limit 3): the 4th gets 40009, the endpoint stays usable', async () => {
  const server = await startServer({
    resources: { limits: { maxQueuedIceCandidates: 3, maxDataChannels: 3 } },
    env: { KMS_ICE_LOOPBACK: '1' },
  });
  try {
    const client = await connect(server.url);
    const pipeline = await call(client, 'create', 'MediaPipeline');

    // Remote candidates before the remote description are queued, up to 3.
    const ep = await call(pipeline, 'create', 'WebRtcEndpoint');
    const cand = (port) => kurentoCandidate(`candidate:1 1 UDP 2015363327 127.0.0.1 ${port} typ host`);
    for (let i = 0; i < 3; i++) await call(ep, 'addIceCandidate', cand(40000 + i));
    await assert.rejects(call(ep, 'addIceCandidate', cand(40003)),
      (e) => e.code === 40009 && /maxQueuedIceCandidates/.test(e.message));
    assert.match(await call(ep, 'processOffer', DTLS_OFFER), /^v=0/);
    // Negotiated: candidates go to ICE, not to the queue.
    for (let i = 0; i < 5; i++) await call(ep, 'addIceCandidate', cand(41000 + i));

    // Data channels: two endpoints of this server, connected over loopback.
    const a = await call(pipeline, 'create', 'WebRtcEndpoint', { useDataChannels: true });
    const b = await call(pipeline, 'create', 'WebRtcEndpoint', { useDataChannels: true });
    const opened = { a: [], b: [] };
    const closed = { a: [], b: [] };
    for (const [name, ep1, ep2] of [['a', a, b], ['b', b, a]]) {
      ep1.on('IceCandidateFound', (ev) => { ep2.addIceCandidate(ev.candidate, () => {}); });
      ep1.on('DataChannelOpened', (ev) => opened[name].push(ev.channelId));
      ep1.on('DataChannelClosed', (ev) => closed[name].push(ev.channelId));
    }
    const offer = await call(a, 'generateOffer');
    const answer = await call(b, 'processOffer', offer);
    await call(a, 'processAnswer', answer);
    await call(a, 'gatherCandidates');
    await call(b, 'gatherCandidates');
    await waitFor('DTLS connected', 15000, async () => (await call(a, 'getDtlsConnectionState')).some((c) => c.state === 'CONNECTED'));

    for (let i = 0; i < 3; i++) await call(a, 'createDataChannel', `c${i}`);
    await assert.rejects(call(a, 'createDataChannel', 'c3'),
      (e) => e.code === 40009 && /maxDataChannels/.test(e.message));
    await waitFor('3 channels open on both sides', 10000, () => opened.a.length === 3 && opened.b.length === 3);
    // Closing one frees its place.
    await call(a, 'closeDataChannel', opened.a[0]);
    await waitFor('DataChannelClosed on both sides', 10000, () => closed.a.length === 1 && closed.b.length === 1);
    await call(a, 'createDataChannel', 'c4');
    await waitFor('the new channel opens', 10000, () => opened.a.length === 4 && opened.b.length === 4);
    await assert.rejects(call(a, 'createDataChannel', 'c5'), (e) => e.code === 40009);

    await call(pipeline, 'release');
    client.close();
  } finally {
    await server.stop();
  }
});

test('a WebRtcEndpoint whose configured certificate is unusable is refused, and leaves the pipeline as it was', async () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'kms-badpem-'));
  const pem = path.join(dir, 'garbage.pem');
  fs.writeFileSync(pem, '-----BEGIN CERTIFICATE-----\nnot base64 !!\n-----END CERTIFICATE-----\n-----BEGIN PRIVATE KEY-----\nx\n-----END PRIVATE KEY-----\n');
  const server = await startServer({ env: { KMS_PEM_CERTIFICATE_RSA: pem } });
  try {
    const client = await connect(server.url);
    const pipeline = await call(client, 'create', 'MediaPipeline');
    await call(pipeline, 'create', 'PassThrough');
    const dotBefore = await call(pipeline, 'getGstreamerDot');
    for (let i = 0; i < 3; i++) {
      await assert.rejects(call(pipeline, 'create', 'WebRtcEndpoint'),
        (e) => e.code === 40108 && /pemCertificateRSA/.test(e.message));
    }
    const dotAfter = await call(pipeline, 'getGstreamerDot');
    const bins = (dot) => (dot.match(/subgraph cluster_\w+/g) || []).filter((n) => /WebRtcEndpoint/.test(n)).length;
    assert.equal(bins(dotAfter), 0, 'no WebRtcEndpoint bin left in the pipeline');
    assert.equal((await call(pipeline, 'getChildren')).length, 1, 'only the PassThrough');
    assert.equal(dotAfter.length, dotBefore.length, 'the pipeline graph is unchanged');
    // ECDSA endpoints do not use the RSA file; the server and pipeline work.
    const ecdsa = await call(pipeline, 'create', 'WebRtcEndpoint', { certificateKeyType: 'ECDSA' });
    assert.ok(ecdsa.id);
    await call(pipeline, 'release');
    client.close();
  } finally {
    await server.stop();
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

/** An IceCandidate complex type as kurento-client takes it. */
function kurentoCandidate(candidate) {
  const { getComplexType } = require('kurento-client');
  const IceCandidate = getComplexType('IceCandidate');
  return new IceCandidate({ candidate, sdpMid: '0', sdpMLineIndex: 0 });
}
