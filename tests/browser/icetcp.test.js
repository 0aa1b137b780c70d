// ICE-TCP (RFC 6544): with only the server's TCP candidates, Chromium
// connects to the endpoint's passive TCP candidate (its own are active) and
// the media flows over that connection, RFC 4571 framed. Two server
// endpoints given only each other's TCP candidates connect too: an active
// candidate connects out to the other's passive one. `iceTcp` false
// gathers none. Runs on the transport under test (KMS_WEBRTC_TRANSPORT;
// CI runs the suite on both).
'use strict';

const test = require('node:test');
const assert = require('node:assert/strict');
const h = require('./lib/harness');
const { call, waitFor, negotiate, pageStats, decodes } = h;

const env = h.suite();
const isTcp = (c) => / tcp /i.test(c);

test('ICE-TCP: given only the server\'s TCP candidates, Chromium connects over TCP and decodes the loopback', async () => {
  const { client, browser, pages } = env;
  const pipeline = await call(client, 'create', 'MediaPipeline');
  const ep = await call(pipeline, 'create', 'WebRtcEndpoint');
  assert.equal(await call(ep, 'getIceTcp'), true, 'iceTcp is on by default, as in KMS');
  await call(ep, 'connect', ep);
  const pairs = [];
  ep.on('NewCandidatePairSelected', (e) => pairs.push(e.candidatePair));
  const page = await browser.newPage(pages.url);
  // TCP only, both ways: neither side learns the other's UDP addresses.
  const { events, answer } = await negotiate(page, ep, 'sendrecv', { keep: isTcp, keepPage: isTcp });
  await waitFor('IceGatheringDone', 10000, () => events.gatheringDone);
  const found = events.found || [];
  const tcp = found.filter(isTcp);
  assert.ok(tcp.length > 0, `TCP candidates gathered: ${JSON.stringify(found)}`);
  // Passive host candidates, and active ones (port 9) beside them, as
  // libnice gathers.
  assert.ok(tcp.some((c) => / typ host /.test(c) && / tcptype passive/.test(c)),
    `a passive TCP host candidate: ${JSON.stringify(tcp)}`);
  assert.ok(tcp.some((c) => / 9 typ host tcptype active/.test(c)), `an active TCP host candidate: ${JSON.stringify(tcp)}`);
  assert.ok(found.some((c) => / udp /i.test(c)), 'UDP candidates too');
  await decodes(page, 30);
  const s = await pageStats(page);
  assert.equal(s.localProtocol, 'tcp', `the page's selected pair is TCP: ${JSON.stringify(s)}`);
  assert.equal(s.remoteProtocol, 'tcp');
  await waitFor('NewCandidatePairSelected on TCP', 10000, () => pairs.some((p) => isTcp(p.localCandidate)));
  const last = pairs[pairs.length - 1];
  assert.ok(isTcp(last.localCandidate) && isTcp(last.remoteCandidate), `selected pair: ${JSON.stringify(last)}`);
  assert.ok(/ typ host/.test(last.localCandidate), 'our passive host candidate');
  assert.ok(await call(ep, 'isMediaFlowingIn', 'VIDEO'), 'media flows in over TCP');
  if (process.env.KMS_TEST_VERBOSE) console.log(JSON.stringify({ answer, pairs }));
  await page.close();
  await call(pipeline, 'release');
});

test('ICE-TCP off (setIceTcp false before gathering): no TCP candidate anywhere', async () => {
  const { client, browser, pages } = env;
  const pipeline = await call(client, 'create', 'MediaPipeline');
  const ep = await call(pipeline, 'create', 'WebRtcEndpoint');
  await call(ep, 'setIceTcp', false);
  assert.equal(await call(ep, 'getIceTcp'), false);
  await call(ep, 'connect', ep);
  const page = await browser.newPage(pages.url);
  const { events, answer } = await negotiate(page, ep, 'sendrecv');
  await waitFor('IceGatheringDone', 10000, () => events.gatheringDone);
  await decodes(page, 10);
  const found = events.found || [];
  assert.ok(found.length > 0 && !found.some(isTcp), `no TCP candidate gathered: ${JSON.stringify(found)}`);
  assert.ok(!answer.split('\r\n').some((l) => l.startsWith('a=candidate:') && isTcp(l)), 'none in the answer');
  assert.equal((await pageStats(page)).localProtocol, 'udp');
  await page.close();
  await call(pipeline, 'release');
});

test('ICE-TCP between two server endpoints: given only each other\'s TCP candidates, one connects out to the other and the video crosses', async () => {
  const { client, browser, pages } = env;
  const pipeline = await call(client, 'create', 'MediaPipeline');
  const fromPage = await call(pipeline, 'create', 'WebRtcEndpoint');
  const toPage = await call(pipeline, 'create', 'WebRtcEndpoint');
  const a = await call(pipeline, 'create', 'WebRtcEndpoint');
  const b = await call(pipeline, 'create', 'WebRtcEndpoint');
  await call(fromPage, 'connect', a);
  await call(b, 'connect', toPage);
  const pairs = { a: [], b: [] };
  a.on('NewCandidatePairSelected', (e) => pairs.a.push(e.candidatePair));
  b.on('NewCandidatePairSelected', (e) => pairs.b.push(e.candidatePair));
  // Neither learns the other's UDP addresses; a browser is not involved
  // between them, so only an active candidate can open the connection.
  const forwarded = [];
  const forward = (to) => (e) => {
    if (!isTcp(e.candidate.candidate)) return;
    forwarded.push(e.candidate.candidate);
    to.addIceCandidate(e.candidate).catch(() => {});
  };
  a.on('IceCandidateFound', forward(b));
  b.on('IceCandidateFound', forward(a));
  const tcpOnly = (sdp) => sdp.split('\r\n').filter((l) => !(l.startsWith('a=candidate:') && !isTcp(l))).join('\r\n');
  const offer = await call(a, 'generateOffer');
  const answer = await call(b, 'processOffer', tcpOnly(offer));
  await call(a, 'processAnswer', tcpOnly(answer));
  await call(a, 'gatherCandidates');
  await call(b, 'gatherCandidates');
  const presenter = await browser.newPage(pages.url);
  const viewer = await browser.newPage(pages.url);
  await negotiate(presenter, fromPage, 'sendonly');
  await negotiate(viewer, toPage, 'recvonly');
  await decodes(viewer, 30);
  await waitFor('TCP pairs selected on both', 10000, () => pairs.a.length > 0 && pairs.b.length > 0);
  for (const [name, ps] of Object.entries(pairs)) {
    const last = ps[ps.length - 1];
    assert.ok(isTcp(last.localCandidate) && isTcp(last.remoteCandidate), `${name}'s selected pair: ${JSON.stringify(last)}`);
  }
  assert.ok(forwarded.some((c) => / tcptype active/.test(c)), `an active candidate was given: ${JSON.stringify(forwarded)}`);
  assert.ok(await call(b, 'isMediaFlowingOut', 'VIDEO'), 'video from a reaches the pipeline through b, over TCP');
  if (process.env.KMS_TEST_VERBOSE) console.log(JSON.stringify(pairs));
  await presenter.close();
  await viewer.close();
  await call(pipeline, 'release');
});
