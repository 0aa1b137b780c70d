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
let redis;
let redisPort;
let redisDir;
let nodeA;
let nodeB;
let pages;
let browser;
let client;

function startNode(name, minPort) {
  return kms.startServer({
    bin: h.BIN,
    prefix: `kms-browser-cluster-${name}-`,
    env: { KMS_LOG: 'info' },
    files: { 'modules/kurento/BaseRtpEndpoint.conf.ini': `minPort=${minPort}\nmaxPort=${minPort + 999}\n` },
    config: (port) => ({
      mediaServer: {
        net: { websocket: { port, path: 'kurento', address: '127.0.0.1' } },
        cluster: { redisUrl: `redis://127.0.0.1:${redisPort}`, nodeId: name, advertisedAddress: `127.0.0.1:${port}` },
      },
    }),
  });
}

test.before(async () => {
  redisPort = await kms.freePort();
  redisDir = fs.mkdtempSync(path.join(os.tmpdir(), 'kms-redis-'));
  redis = spawn('redis-server', ['--port', String(redisPort), '--bind', '127.0.0.1', '--save', '', '--dir', redisDir], { stdio: 'ignore' });
  await kms.waitForPort(redisPort, 10000);
  [nodeA, nodeB] = await Promise.all([startNode('node-a', 45000), startNode('node-b', B_MIN_PORT)]);
  pages = await h.startPageServer();
  browser = await h.launchBrowser();
  client = await h.connect(nodeA.url);
});

test.after(async () => {
  if (client) client.close();
  if (browser) await browser.close();
  if (pages) await pages.close();
  await Promise.all([nodeA, nodeB].filter(Boolean).map((n) => n.stop()));
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
