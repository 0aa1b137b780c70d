// Drives a module crate created by `kurento-module-creator new <name>`: its
// server binary (the kurento-rs server with the module linked in) on a free
// port, and the official kurento-client 7.3.0 with the module's generated JS
// client registered.
//
//   KMS_BIN          the crate's server binary
//   SCAFFOLD_JS_DIR  the crate's js/ directory
//   SCAFFOLD_MODULE  the module name
//
// module-creator/tests/scaffold.rs sets these; ./run.sh runs it.
'use strict';

const test = require('node:test');
const assert = require('node:assert/strict');
const fs = require('node:fs');
const path = require('node:path');

const kms = require('../shared/kms-process');

kms.installClientShims();

const { KMS_BIN, SCAFFOLD_JS_DIR, SCAFFOLD_MODULE } = process.env;
if (!KMS_BIN || !SCAFFOLD_JS_DIR || !SCAFFOLD_MODULE) {
  throw new Error('KMS_BIN, SCAFFOLD_JS_DIR and SCAFFOLD_MODULE must be set: run ./run.sh');
}
const CLASS = SCAFFOLD_MODULE.split('_').map((w) => w[0].toUpperCase() + w.slice(1)).join('') + 'Filter';
const EVENT = CLASS.replace(/Filter$/, 'LabelChanged');

// The generated module require()s kurento-client as an application's
// node_modules would provide it: the very instance registered into here.
const linked = path.join(SCAFFOLD_JS_DIR, 'node_modules');
if (!fs.existsSync(linked)) fs.symlinkSync(path.join(__dirname, 'node_modules'), linked, 'dir');
const kurentoClient = require('kurento-client');
kurentoClient.register(require(SCAFFOLD_JS_DIR));

function startServer() {
  return kms.startServer({
    bin: KMS_BIN,
    prefix: 'kms-scaffold-conf-',
    config: (port) => ({ mediaServer: { net: { websocket: { port, path: 'kurento', address: '127.0.0.1' } } } }),
  });
}

const { call } = kms;

function connect(url) {
  return new Promise((resolve, reject) => {
    kurentoClient(url, { failAfter: 1, strict: true }, (err, client) => (err ? reject(err) : resolve(client)));
  });
}

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

test(`the ${SCAFFOLD_MODULE} module is listed and ${CLASS} works through the official client`, async () => {
  const server = await startServer();
  try {
    const client = await connect(server.url);
    const sm = await call(client, 'getServerManager');

    const info = await call(sm, 'getInfo');
    const mod = info.modules.find((m) => m.name === SCAFFOLD_MODULE);
    assert.ok(mod, `getInfo lists ${SCAFFOLD_MODULE}: ${JSON.stringify(info.modules.map((m) => m.name))}`);
    assert.equal(mod.version, '0.1.0');
    assert.deepEqual(mod.factories, [CLASS]);
    for (const builtin of ['core', 'elements', 'filters']) {
      assert.ok(info.modules.some((m) => m.name === builtin), `built-in ${builtin} still listed`);
    }
    const kmd = JSON.parse(await call(sm, 'getKmd', SCAFFOLD_MODULE));
    assert.equal(kmd.remoteClasses[0].name, CLASS);

    const pipeline = await call(client, 'create', 'MediaPipeline');
    const filter = await call(pipeline, 'create', CLASS);
    assert.ok(filter.id.startsWith(pipeline.id + '/'), filter.id);
    assert.ok(filter.id.endsWith(`_${SCAFFOLD_MODULE}.${CLASS}`), filter.id);

    // Property getter, method, setter and the event it raises.
    assert.equal(await call(filter, 'getLabel'), 'Hello');
    assert.equal(await call(filter, 'greet', 'world'), 'Hello, world!');
    const events = [];
    filter.on(EVENT, (ev) => events.push(ev));
    await sleep(200); // subscription round trip
    await call(filter, 'setLabel', 'Hi');
    assert.equal(await call(filter, 'getLabel'), 'Hi');
    assert.equal(await call(filter, 'greet', 'you'), 'Hi, you!');
    await sleep(300);
    assert.equal(events.length, 1, `one ${EVENT}`);
    assert.equal(events[0].label, 'Hi');
    assert.equal(events[0].type, EVENT);
    assert.equal(events[0].source.id || events[0].source, filter.id);

    // It is a MediaElement like any other: connections work both ways.
    const pt = await call(pipeline, 'create', 'PassThrough');
    await call(filter, 'connect', pt);
    await call(pt, 'connect', filter, 'VIDEO');
    assert.equal((await call(pt, 'getSourceConnections')).length, 3);
    assert.equal((await call(filter, 'getSourceConnections', 'VIDEO')).length, 1);

    await call(pipeline, 'release');
    client.close();
    // close() disconnects asynchronously; stopping the server first would
    // make reconnect-ws retry against a closed port (uncaught ECONNREFUSED).
    await sleep(300);
  } finally {
    const r = await server.stop();
    assert.deepEqual(r, { code: 0, signal: null }, `clean shutdown\n${server.log()}`);
  }
});
