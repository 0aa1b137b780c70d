// The media server pods' preStop hook (deploy/kubernetes/base/drain.sh) run
// against the real server binary, as the kubelet runs it in the container
// (there the server is PID 1; here KMS_DRAIN_PID names it), with the official
// kurento-client holding a pipeline. Run by ci/test-deploy.sh after the
// conformance suite installed tests/conformance/node_modules.
'use strict';

const test = require('node:test');
const assert = require('node:assert/strict');
const path = require('node:path');
const fs = require('node:fs');
const os = require('node:os');
const { spawn } = require('node:child_process');

// In a pod the server's stderr is a FIFO (containerd, CRI-O), which the hook
// can open through /proc/1/fd/2; Node gives a child a socket instead, which
// /proc cannot reopen. So the server runs behind a wrapper that gives it a
// pipe for stderr, then execs it (same pid, as with the image's entrypoint).
const realBin = process.env.KMS_BIN || path.join(__dirname, '..', 'target', 'debug', 'kurento-media-server');
const wrapDir = fs.mkdtempSync(path.join(os.tmpdir(), 'kms-drain-'));
process.env.KMS_BIN = path.join(wrapDir, 'kms-fifo-stderr');
fs.writeFileSync(process.env.KMS_BIN, `#!/bin/bash\nexec ${JSON.stringify(realBin)} "$@" 2> >(exec cat >&2)\n`, { mode: 0o755 });
process.on('exit', () => fs.rmSync(wrapDir, { recursive: true, force: true }));

const { startServer, connect, call, rawPeer } = require('../tests/conformance/lib/harness');
const m = require('../tests/shared/metrics');

const DRAIN = path.join(__dirname, '..', 'deploy', 'kubernetes', 'base', 'drain.sh');
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/** Runs drain.sh for `server`; resolves the handle at once. */
function drain(server, env = {}) {
  const child = spawn('/bin/bash', [DRAIN], {
    env: Object.assign({ PATH: process.env.PATH, KMS_DRAIN_PID: String(server.child.pid), KMS_PORT: String(server.port), KMS_DRAIN_POLL: '0.2' }, env),
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let out = '';
  child.stdout.on('data', (d) => { out += d; });
  child.stderr.on('data', (d) => { out += d; });
  const exited = new Promise((resolve) => child.on('exit', (code) => resolve(code)));
  return { child, exited, output: () => out, running: () => child.exitCode === null };
}

async function within(promise, ms, what) {
  let timer;
  const r = await Promise.race([promise, new Promise((_, rej) => { timer = setTimeout(() => rej(new Error(`${what}: not within ${ms} ms`)), ms); })]);
  clearTimeout(timer);
  return r;
}

async function waitReady(port, status, ms = 5000) {
  const deadline = Date.now() + ms;
  for (;;) {
    const r = await m.get(port, '/ready');
    if (r.status === status) return;
    if (Date.now() > deadline) throw new Error(`/ready stayed ${r.status}, expected ${status}`);
    await sleep(50);
  }
}

test('preStop drain: refuses new sessions, waits while a pipeline lives, returns once it is released; SIGTERM then stops the server cleanly', async () => {
  const server = await startServer();
  const client = await connect(server.url);
  try {
    const pipeline = await call(client, 'create', 'MediaPipeline');
    const d = drain(server, { KMS_DRAIN_TIMEOUT: '60' });
    await waitReady(server.port, 503);
    const fresh = await rawPeer(server.url);
    const r = await fresh.send('ping');
    assert.equal(r.error && r.error.code, 40009, `a new session while draining: ${JSON.stringify(r)}`);
    fresh.close();
    // The existing session goes on.
    const pass = await call(pipeline, 'create', 'PassThrough');
    assert.ok(pass.id);
    await sleep(1500);
    assert.ok(d.running(), `the hook must wait while a pipeline lives: ${d.output()}`);
    assert.equal(m.value((await m.scrape(server.port)).samples, 'kms_pipelines'), 1);

    const released = Date.now();
    await call(pipeline, 'release');
    const code = await within(d.exited, 10000, 'drain after the release');
    assert.equal(code, 0, d.output());
    assert.ok(Date.now() - released < 3000, `returned ${Date.now() - released} ms after the release`);
    assert.match(d.output(), /drain mode on \(SIGUSR1/);
    assert.match(d.output(), /no pipelines left after \d+s/);
    // The hook does not stop the server: the kubelet's SIGTERM does.
    assert.ok(server.alive(), 'server still running after the hook');
    assert.equal((await m.get(server.port, '/health')).status, 200);
    // Its lines also went to the server's own stderr (kubectl logs).
    assert.match(server.log(), /\[drain\] .*no pipelines left/);
  } finally {
    client.close();
    const r = await server.stop();
    assert.ok(r && r.code === 0, `server exited cleanly on SIGTERM: ${JSON.stringify(r)}`);
  }
});

test('preStop drain: bounded by KMS_DRAIN_TIMEOUT while pipelines stay', async () => {
  const server = await startServer();
  const client = await connect(server.url);
  try {
    await call(client, 'create', 'MediaPipeline');
    const started = Date.now();
    const d = drain(server, { KMS_DRAIN_TIMEOUT: '1' });
    const code = await within(d.exited, 8000, 'drain with a 1 s timeout');
    const took = Date.now() - started;
    assert.equal(code, 0, d.output());
    assert.ok(took >= 900, `waited ${took} ms`);
    assert.match(d.output(), /1 pipeline\(s\) still alive after 1s \(KMS_DRAIN_TIMEOUT\)/);
    assert.ok(server.alive());
  } finally {
    client.close();
    await server.stop();
  }
});

test('preStop drain: sends the access token to /metrics; without one it fails loudly instead of waiting blind', async () => {
  const server = await startServer({ websocket: { accessTokens: { 'tok-app-1': 'app' } } });
  try {
    const blind = drain(server, { KMS_DRAIN_TIMEOUT: '30' });
    assert.equal(await within(blind.exited, 8000, 'drain without a token'), 1, blind.output());
    assert.match(blind.output(), /cannot read \/metrics .*401/);
    const d = drain(server, { KMS_DRAIN_TIMEOUT: '30', KMS_ACCESS_TOKENS: 'tok-app-1:app' });
    assert.equal(await within(d.exited, 8000, 'drain with the token'), 0, d.output());
    assert.match(d.output(), /no pipelines left/);
  } finally {
    await server.stop();
  }
  const gone = drain(server, {});
  assert.equal(await within(gone.exited, 5000, 'drain of a stopped server'), 0, gone.output());
  assert.match(gone.output(), /nothing to drain/);
});
