// Tenants across the cluster: an internal link acts for the caller's tenant
// (it presents that tenant's token), so another tenant cannot reach a
// pipeline through any node, and getPipelines answers per tenant.
'use strict';

const test = require('node:test');
const assert = require('node:assert/strict');
const { startRedis, startNode, directory, nodes, until, connect, call } = require('./lib/cluster');

const websocket = { accessTokens: { 'tok-one': 'one', 'tok-two': 'two' } };
let redis;
let A;
let B;

test.before(async () => {
  redis = await startRedis();
  [A, B] = await Promise.all([
    startNode('node-a', redis, 41000, { websocket }),
    startNode('node-b', redis, 42000, { websocket }),
  ]);
  await until('two nodes', () => Object.keys(nodes(redis)).length === 2);
});

test.after(async () => {
  await Promise.all([A, B].filter(Boolean).map((n) => n.stop()));
  if (redis) await redis.stop();
});

test('a pipeline placed on B for tenant one is invisible to tenant two on A and on B', async () => {
  const one = await connect(`${A.url}?access_token=tok-one`);
  const twoA = await connect(`${A.url}?access_token=tok-two`);
  const twoB = await connect(`${B.url}?access_token=tok-two`);
  try {
    const p = await call(one, 'create', 'MediaPipeline', { clusterNode: 'node-b' });
    const e = await call(p, 'create', 'PassThrough');
    const entry = directory(redis)[p.id];
    assert.deepEqual([entry.node, entry.tenant], ['node-b', 'one']);
    // The owner saw tenant one: the element is reachable for it through A.
    await call(e, 'setName', 'mine');
    assert.equal(await call(e, 'getName'), 'mine');
    for (const two of [twoA, twoB]) {
      await assert.rejects(call(two, 'getMediaobjectById', e.id), (err) => err.code === 40101);
      const sm = await call(two, 'getServerManager');
      assert.ok(!(await call(sm, 'getPipelines')).some((x) => x.id === p.id), 'not listed for tenant two');
    }
    const smOne = await call(one, 'getServerManager');
    assert.ok((await call(smOne, 'getPipelines')).some((x) => x.id === p.id), 'listed for tenant one');
    await call(p, 'release');
  } finally {
    for (const c of [one, twoA, twoB]) c.close();
  }
});
