// ICE-TCP (RFC 6544): with only the server's TCP candidates, Chromium
// connects to the endpoint's passive TCP candidate (its own are active) and
// the media flows over that connection, RFC 4571 framed. `iceTcp` false
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
  // Passive host candidates (libnice adds active ones too; the native
  // transport only listens).
  assert.ok(tcp.some((c) => / typ host /.test(c) && / tcptype passive/.test(c)),
    `a passive TCP host candidate: ${JSON.stringify(tcp)}`);
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
