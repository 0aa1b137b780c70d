// Cluster mode in a real browser (docs/cluster.md): redis-server and two
// cluster nodes; the official kurento-client talks to node A only, and a
// WebRTC loopback runs in a pipeline placed on node B. Signalling, ICE
// candidates and flow events travel through A; the media goes to B.
'use strict';

const test = require('node:test');
const assert = require('node:assert/strict');
const { spawn, execFileSync } = require('node:child_process');
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');
const kms = require('../shared/kms-process');
const h = require('./lib/harness');
const { call, waitFor, negotiate, decodes } = h;

const B_MIN_PORT = 46000;
const C_MIN_PORT = 47000;
let redis;
let redisPort;
let redisDir;
let nodeA;
let nodeB;
let nodeC;
let pages;
let browser;
let client;

function startNode(name, minPort) {
  return kms.startServer({
    bin: h.BIN,
    prefix: `kms-browser-cluster-${name}-`,
    env: { KMS_LOG: 'info' },
    // externalIPv4: the address an RtpEndpoint writes in its SDP (the
    // cascade below); on a real cluster, the node's address on the network
    // the nodes share.
    files: { 'modules/kurento/BaseRtpEndpoint.conf.ini': `minPort=${minPort}\nmaxPort=${minPort + 999}\nexternalIPv4=127.0.0.1\n` },
    config: (port) => ({
      mediaServer: {
        net: { websocket: { port, path: 'kurento', address: '127.0.0.1' } },
        cluster: { redisUrl: `redis://127.0.0.1:${redisPort}`, nodeId: name, advertisedAddress: `127.0.0.1:${port}`, heartbeatMs: 500, expiryMs: 2500 },
      },
    }),
  });
}

test.before(async () => {
  redisPort = await kms.freePort();
  redisDir = fs.mkdtempSync(path.join(os.tmpdir(), 'kms-redis-'));
  redis = spawn('redis-server', ['--port', String(redisPort), '--bind', '127.0.0.1', '--save', '', '--dir', redisDir], { stdio: 'ignore' });
  await kms.waitForPort(redisPort, 10000);
  [nodeA, nodeB, nodeC] = await Promise.all([startNode('node-a', 45000), startNode('node-b', B_MIN_PORT), startNode('node-c', C_MIN_PORT)]);
  pages = await h.startPageServer();
  browser = await h.launchBrowser();
  client = await h.connect(nodeA.url);
});

test.after(async () => {
  if (client) client.close();
  if (browser) await browser.close();
  if (pages) await pages.close();
  await Promise.all([nodeA, nodeB, nodeC].filter(Boolean).map((n) => n.stop()));
  if (redis) redis.kill('SIGKILL');
  if (redisDir) fs.rmSync(redisDir, { recursive: true, force: true });
});

test('loopback in a pipeline on node B, driven through node A', async () => {
  const pipeline = await call(client, 'create', 'MediaPipeline', { clusterNode: 'node-b' });
  const entry = JSON.parse(execFileSync('redis-cli', ['-p', String(redisPort), '--raw', 'HGET', 'kms:cluster:pipelines', pipeline.id], { encoding: 'utf8' }));
  assert.equal(entry.node, 'node-b');
  const ep = await call(pipeline, 'create', 'WebRtcEndpoint');
  await call(ep, 'connect', ep);
  const page = await browser.newPage(pages.url);
  const { events } = await negotiate(page, ep, 'sendrecv');
  const s = await decodes(page);
  await waitFor('IceGatheringDone relayed', 10000, () => events.gatheringDone);
  // The media ports (host candidates, UDP) are node B's.
  const local = await call(ep, 'getLocalSessionDescriptor');
  const ports = [...local.matchAll(/^a=candidate:\S+ \d+ udp \d+ \S+ (\d+) typ host/gim)].map((m) => Number(m[1]));
  assert.ok(ports.length > 0 && ports.every((p) => p >= B_MIN_PORT && p < B_MIN_PORT + 1000), `ports of node B: ${ports}`);
  assert.ok(s.width > 0 && s.height > 0, 'Chromium decodes the loopback');
  assert.ok(events.candidates > 0, 'IceCandidateFound relayed');
  await waitFor('flow events relayed', 15000, () =>
    events.flowIn.some((e) => e.state === 'FLOWING' && e.mediaType === 'VIDEO') &&
    events.flowOut.some((e) => e.state === 'FLOWING' && e.mediaType === 'VIDEO'));
  assert.equal(await call(ep, 'isMediaFlowingIn', 'VIDEO'), true);
  await page.close();
  await call(pipeline, 'release');
});

/**
 * The cascade recipe of docs/cluster.md ("Media across nodes"): an
 * RtpEndpoint in each pipeline, the downstream one offers, the upstream one
 * answers. Every call goes to the client's node, which forwards it to the
 * pipeline's owner; the media goes node to node over RTP.
 */
async function cascade(from, to) {
  const out = await call(from, 'create', 'RtpEndpoint');
  const into = await call(to, 'create', 'RtpEndpoint');
  const offer = await call(into, 'generateOffer');
  const answer = await call(out, 'processOffer', offer);
  await call(into, 'processAnswer', answer);
  return { out, into, offer, answer };
}

test('cascade: a presenter in a pipeline on node A reaches a viewer in a pipeline on node B', async () => {
  const pipeA = await call(client, 'create', 'MediaPipeline', { clusterNode: 'node-a' });
  const pipeB = await call(client, 'create', 'MediaPipeline', { clusterNode: 'node-b' });
  const where = (id) => JSON.parse(execFileSync('redis-cli', ['-p', String(redisPort), '--raw', 'HGET', 'kms:cluster:pipelines', id], { encoding: 'utf8' })).node;
  assert.equal(where(pipeA.id), 'node-a');
  assert.equal(where(pipeB.id), 'node-b');
  const presenter = await call(pipeA, 'create', 'WebRtcEndpoint');
  const viewer = await call(pipeB, 'create', 'WebRtcEndpoint');
  const c = await cascade(pipeA, pipeB);
  // The answer (from A's RtpEndpoint) and the offer (B's) carry each node's own ports.
  const mport = (sdp) => Number(/^m=video (\d+) /m.exec(sdp)[1]);
  assert.ok(mport(c.offer) >= B_MIN_PORT && mport(c.offer) < B_MIN_PORT + 1000, `offer from node B: ${mport(c.offer)}`);
  assert.ok(mport(c.answer) >= 45000 && mport(c.answer) < 46000, `answer from node A: ${mport(c.answer)}`);
  const flowB = [];
  // MediaFlowOut: media leaving an element into its pipeline (for an
  // RtpEndpoint, what it receives from the network).
  c.into.on('MediaFlowOutStateChanged', (e) => flowB.push(e));
  await call(presenter, 'connect', c.out);
  await call(c.into, 'connect', viewer);
  // connect() across pipelines (and so across nodes) stays an error, as in KMS.
  await assert.rejects(call(presenter, 'connect', viewer));
  const sender = await browser.newPage(pages.url);
  await negotiate(sender, presenter, 'sendonly');
  await waitFor('RTP arriving on node B (its RtpEndpoint\'s MediaFlowOut relayed through A)', 20000,
    () => flowB.some((e) => e.state === 'FLOWING' && e.mediaType === 'VIDEO'));
  assert.equal(await call(c.out, 'isMediaFlowingIn', 'VIDEO'), true, 'the presenter feeds node A\'s RtpEndpoint');
  const page = await browser.newPage(pages.url);
  await negotiate(page, viewer, 'recvonly');
  const s = await decodes(page);
  assert.ok(s.width > 0 && s.height > 0, 'Chromium decodes the presenter through the cascade');
  await sender.close();
  await page.close();
  await call(pipeA, 'release');
  await call(pipeB, 'release');
});

test('loopbacks on nodes A, B and C decode; SIGKILL of C: its objects are destroyed, A and B keep flowing', async () => {
  const sm = await call(client, 'getServerManager');
  const destroyed = [];
  sm.on('ObjectDestroyed', (e) => destroyed.push(e.objectId));
  const where = (id) => JSON.parse(execFileSync('redis-cli', ['-p', String(redisPort), '--raw', 'HGET', 'kms:cluster:pipelines', id], { encoding: 'utf8' }).trim() || 'null');
  const runs = {};
  for (const node of ['node-a', 'node-b', 'node-c']) {
    const pipeline = await call(client, 'create', 'MediaPipeline', { clusterNode: node });
    assert.equal(where(pipeline.id).node, node);
    const ep = await call(pipeline, 'create', 'WebRtcEndpoint');
    await call(ep, 'connect', ep);
    const page = await browser.newPage(pages.url);
    await negotiate(page, ep, 'sendrecv');
    runs[node] = { pipeline, ep, page };
  }
  for (const node of Object.keys(runs)) await decodes(runs[node].page);
  const before = {};
  for (const node of ['node-a', 'node-b']) before[node] = (await h.pageStats(runs[node].page)).framesDecoded;
  nodeC.child.kill('SIGKILL');
  await nodeC.exited;
  const c = runs['node-c'];
  await waitFor('ObjectDestroyed for node C\'s endpoint and pipeline', 5000,
    () => destroyed.includes(c.ep.id) && destroyed.includes(c.pipeline.id));
  await assert.rejects(call(c.ep, 'getName'), (e) => e.code === 40101);
  await waitFor('node C gone from the directory', 6000, () => where(c.pipeline.id) === null);
  // The media of A and B never stopped: 60 more frames each after the kill.
  for (const node of ['node-a', 'node-b']) {
    await waitFor(`${node} keeps decoding`, 15000, async () =>
      (await h.pageStats(runs[node].page)).framesDecoded > before[node] + 60);
    assert.equal(await call(runs[node].ep, 'isMediaFlowingIn', 'VIDEO'), true);
  }
  for (const node of Object.keys(runs)) await runs[node].page.close();
  await call(c.pipeline, 'release');
  for (const node of ['node-a', 'node-b']) await call(runs[node].pipeline, 'release');
});
