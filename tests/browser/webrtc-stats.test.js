// WebRtcEndpoint.getStats and the ICE/DTLS getters report what libnice and
// the DTLS element know, not constants: a candidate pair is "succeeded",
// nominated, writable and readable only once ICE has connected and selected
// it; DTLS connection ids are the same in events and getters.
'use strict';

const test = require('node:test');
const assert = require('node:assert/strict');
const h = require('./lib/harness');
const { call, waitFor, kurentoClient } = h;

let server;
let pages;
let browser;
let client;

test.before(async () => {
  server = await h.startServer();
  pages = await h.startPageServer();
  browser = await h.launchBrowser();
  client = await h.connect(server.url);
});

test.after(async () => {
  if (client) client.close();
  if (browser) await browser.close();
  if (pages) await pages.close();
  if (server) await server.stop();
});

const pairsOf = async (ep) => Object.values(await call(ep, 'getStats')).filter((x) => x.type === 'candidatepair');

test('candidate-pair stats: succeeded/nominated only once ICE connected; DTLS ids agree', async () => {
  const pipeline = await call(client, 'create', 'MediaPipeline');
  const ep = await call(pipeline, 'create', 'WebRtcEndpoint');
  await call(ep, 'connect', ep);
  const events = [];
  for (const ev of ['IceComponentStateChanged', 'NewCandidatePairSelected', 'DtlsConnectionStateChange']) {
    ep.on(ev, (e) => events.push(e));
  }
  const page = await browser.newPage(pages.url);
  ep.on('IceCandidateFound', (e) => { page.evaluate((c) => window.kms.addCandidate(c), e.candidate).catch(() => {}); });
  await page.exposeFunction('onLocalCandidate', (c) => {
    ep.addIceCandidate(kurentoClient.getComplexType('IceCandidate')(c), () => {});
  });

  // Before negotiation: no pair can have succeeded.
  for (const p of await pairsOf(ep)) assert.notEqual(p.state, 'succeeded', JSON.stringify(p));

  // Negotiated on our side, but the browser has no answer yet, so it cannot
  // nominate a pair: whatever the server reports is not a selected pair.
  const offer = await page.evaluate(() => window.kms.start('sendrecv', {}));
  const answer = await call(ep, 'processOffer', offer);
  await call(ep, 'gatherCandidates');
  await new Promise((r) => setTimeout(r, 1500));
  const early = await pairsOf(ep);
  if (process.env.KMS_TEST_VERBOSE) console.log('early pairs', JSON.stringify(early));
  assert.ok(early.length >= 1, 'webrtcbin reports the transport\'s pair before it connects');
  for (const p of early) {
    assert.notEqual(p.state, 'succeeded', JSON.stringify(p));
    assert.equal(p.nominated, false, JSON.stringify(p));
    assert.equal(p.writable && p.readable, false, JSON.stringify(p));
  }
  assert.equal((await call(ep, 'getICECandidatePairs')).length, 0, 'no pair selected yet');

  // The browser gets the answer: ICE connects and selects a pair.
  await page.evaluate((a) => window.kms.processAnswer(a), answer);
  await waitFor('DTLS connected', 20000, async () => (await call(ep, 'getDtlsConnectionState')).some((c) => c.state === 'CONNECTED'));
  const pairs = await waitFor('a succeeded pair', 10000, async () => {
    const ps = await pairsOf(ep);
    return ps.some((p) => p.state === 'succeeded') ? ps : null;
  });
  const ok = pairs.find((p) => p.state === 'succeeded');
  assert.ok(ok.nominated && ok.writable && ok.readable, JSON.stringify(ok));
  assert.ok(ok.localCandidateId && ok.remoteCandidateId, JSON.stringify(ok));

  // The same ids in the getters and the events, and the DTLS one is the
  // DTLS element's connection id, not a made-up one.
  const [dtls] = await call(ep, 'getDtlsConnectionState');
  const [iceConn] = await call(ep, 'getIceConnectionState');
  const [selected] = await call(ep, 'getICECandidatePairs');
  assert.ok(dtls.connectionId.length > 0, JSON.stringify(dtls));
  assert.notEqual(dtls.connectionId, `${dtls.streamId}-${dtls.componentId}`);
  await waitFor('events', 5000, () => events.some((e) => e.type === 'DtlsConnectionStateChange' && e.state === 'CONNECTED'));
  const dtlsEv = events.find((e) => e.type === 'DtlsConnectionStateChange' && e.state === 'CONNECTED');
  assert.equal(dtlsEv.connectionId, dtls.connectionId);
  assert.equal(dtlsEv.streamId, dtls.streamId);
  assert.equal(dtlsEv.componentId, dtls.componentId);
  assert.equal(iceConn.streamId, dtls.streamId);
  assert.equal(selected.streamId, dtls.streamId);
  const iceEv = events.find((e) => e.type === 'IceComponentStateChanged' && e.state !== 'GATHERING');
  assert.equal(String(iceEv.streamId), dtls.streamId);
  const pairEv = events.find((e) => e.type === 'NewCandidatePairSelected');
  assert.equal(pairEv.candidatePair.streamId, dtls.streamId);

  await page.close();
  await call(pipeline, 'release');
});
