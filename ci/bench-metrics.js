// See bench-metrics.sh.
'use strict';

const path = require('node:path');
const { startServer, connect, call } = require(path.join(__dirname, '..', 'tests', 'conformance', 'lib', 'harness'));
const m = require(path.join(__dirname, '..', 'tests', 'shared', 'metrics'));

async function main() {
  const elements = Number(process.argv[2] || 1000);
  const scrapes = Number(process.argv[3] || 50);
  const server = await startServer({ resources: { maxObjectsPerSession: elements + 100 } });
  const client = await connect(server.url);
  const perPipeline = 100;
  for (let made = 0; made < elements;) {
    const p = await call(client, 'create', 'MediaPipeline');
    made++;
    const batch = [];
    for (let i = 0; i < perPipeline - 1 && made < elements; i++, made++) batch.push(call(p, 'create', 'PassThrough'));
    await Promise.all(batch);
  }
  const first = await m.scrape(server.port);
  const objects = (first.samples.kms_objects || []).reduce((n, s) => n + s.value, 0);
  const times = [];
  let bytes = 0;
  for (let i = 0; i < scrapes; i++) {
    const t0 = process.hrtime.bigint();
    const r = await m.get(server.port, '/metrics');
    times.push(Number(process.hrtime.bigint() - t0) / 1e6);
    bytes = r.body.length;
  }
  times.sort((a, b) => a - b);
  const q = (p) => times[Math.min(times.length - 1, Math.floor(p * times.length))].toFixed(2);
  console.log(`| ${objects} objects | ${scrapes} scrapes | p50 ${q(0.5)} ms | p99 ${q(0.99)} ms | ${(bytes / 1024).toFixed(1)} KiB |`);
  client.close();
  await server.stop();
}

main().catch((e) => { console.error(e); process.exit(1); });
