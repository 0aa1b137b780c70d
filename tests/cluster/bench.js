// Forwarded-request overhead (docs/benchmarks.md): RPC latency of `invoke`
// on an element whose pipeline lives on the client's node (direct) and on
// another node (forwarded over an internal link), with redis-server and two
// cluster nodes. Not a test: prints numbers.
//
//   node bench.js [requests] [connections]
'use strict';

const { startRedis, startNode, until, nodes, rawPeer } = require('./lib/cluster');

const N = Number(process.argv[2] || 3000);
const CONNS = Number(process.argv[3] || 4);

function pct(sorted, p) {
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))];
}

async function run(url, clusterNode) {
  const peers = await Promise.all(Array.from({ length: CONNS }, () => rawPeer(url)));
  const targets = [];
  for (const peer of peers) {
    const p = await peer.send('create', { type: 'MediaPipeline', properties: { clusterNode } });
    const sid = p.result.sessionId;
    const e = await peer.send('create', { type: 'PassThrough', constructorParams: { mediaPipeline: p.result.value }, sessionId: sid });
    targets.push({ peer, sid, pipeline: p.result.value, el: e.result.value });
  }
  // Warm-up (links opened, caches filled).
  for (const t of targets) for (let i = 0; i < 50; i++) await t.peer.send('invoke', { object: t.el, operation: 'getName', sessionId: t.sid });
  const lat = [];
  const per = Math.ceil(N / CONNS);
  const t0 = process.hrtime.bigint();
  await Promise.all(targets.map(async (t) => {
    for (let i = 0; i < per; i++) {
      const a = process.hrtime.bigint();
      const r = await t.peer.send('invoke', { object: t.el, operation: 'getName', sessionId: t.sid });
      if (!r.result) throw new Error(JSON.stringify(r.error));
      lat.push(Number(process.hrtime.bigint() - a) / 1e6);
    }
  }));
  const secs = Number(process.hrtime.bigint() - t0) / 1e9;
  for (const t of targets) { await t.peer.send('release', { object: t.pipeline, sessionId: t.sid }); t.peer.close(); }
  lat.sort((x, y) => x - y);
  return `p50=${pct(lat, 50).toFixed(2)} ms p99=${pct(lat, 99).toFixed(2)} ms throughput=${Math.round(lat.length / secs)} req/s (${lat.length} requests, ${CONNS} connections)`;
}

(async () => {
  const redis = await startRedis();
  const [A, B] = await Promise.all([startNode('node-a', redis, 41000), startNode('node-b', redis, 42000)]);
  try {
    await until('two nodes', () => Object.keys(nodes(redis)).length === 2);
    console.log(`direct    (pipeline on the client's node): ${await run(A.url, 'node-a')}`);
    console.log(`forwarded (pipeline on the other node):    ${await run(A.url, 'node-b')}`);
    console.log(`direct again:                              ${await run(A.url, 'node-a')}`);
  } finally {
    await Promise.all([A.stop(), B.stop()]);
    await redis.stop();
  }
})().catch((e) => { console.error(e); process.exit(1); });
