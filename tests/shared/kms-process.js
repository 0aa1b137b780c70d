// The pieces every Node test suite shares (conformance, browser, scaffold):
// the real server binary started on a free 127.0.0.1 port with a temporary
// configuration, and the kurento-client 7.3.0 workarounds for Node 20.
// Node built-ins only: each suite has its own node_modules.
'use strict';

const { spawn, execSync } = require('node:child_process');
const fs = require('node:fs');
const net = require('node:net');
const os = require('node:os');
const path = require('node:path');

/** kurento-client 7.3.0 on Node 20: TransactionsManager calls
 * `domain.Domain()` without `new`. Test-side shim; the server is untouched.
 * Must run before kurento-client is required. */
function installDomainShim() {
  const domain = require('node:domain');
  if (domain.Domain.kmsShim) return;
  const OrigDomain = domain.Domain;
  function DomainShim() { return new OrigDomain(); }
  DomainShim.prototype = OrigDomain.prototype;
  DomainShim.kmsShim = true;
  domain.Domain = DomainShim;
}

/** kurento-client 7.3.0: `KurentoClient#close` closes the WebSocket but
 * never calls its RpcBuilder's `close()`, so each answered request leaves
 * kurento-jsonrpc's 20 s duplicate-detection timer armed, and every test
 * process lingered 20 s after its last test (about 8 minutes of the browser
 * suite). Those timers only forget old responses, so they are unref'd: they
 * no longer hold the process open. Test-side shim; the server is untouched. */
function unrefJsonRpcTimers() {
  if (global.setTimeout.kmsShim) return;
  const orig = global.setTimeout;
  const marker = `${path.sep}kurento-jsonrpc${path.sep}`;
  function setTimeoutShim(fn, ms, ...args) {
    const t = orig(fn, ms, ...args);
    // Only long timers pay for a stack trace; the library's are 20 s.
    if (ms >= 10000 && typeof t.unref === 'function' && new Error().stack.includes(marker)) t.unref();
    return t;
  }
  for (const key of Reflect.ownKeys(orig)) {
    if (typeof key === 'symbol') setTimeoutShim[key] = orig[key];
  }
  setTimeoutShim.kmsShim = true;
  global.setTimeout = setTimeoutShim;
}

/** Every kurento-client workaround above; must run before kurento-client is
 * required. */
function installClientShims() {
  installDomainShim();
  unrefJsonRpcTimers();
}

function freePort() {
  return new Promise((resolve, reject) => {
    const s = net.createServer();
    s.listen(0, '127.0.0.1', () => {
      const { port } = s.address();
      s.close(() => resolve(port));
    });
    s.on('error', reject);
  });
}

/** Resolves once `port` accepts connections; rejects after `ms` or as soon
 * as `exited` (the process's exit promise) settles. */
function waitForPort(port, ms, exited) {
  const deadline = Date.now() + ms;
  return new Promise((resolve, reject) => {
    let done = false;
    if (exited) exited.then((r) => { if (!done) reject(new Error(`server exited early: ${JSON.stringify(r)}`)); });
    const attempt = () => {
      const c = net.connect(port, '127.0.0.1');
      c.on('connect', () => { done = true; c.destroy(); resolve(); });
      c.on('error', () => {
        c.destroy();
        if (Date.now() > deadline) reject(new Error(`server did not listen on ${port}`));
        else setTimeout(attempt, 50);
      });
    };
    attempt();
  });
}

/**
 * Starts the server binary `bin`.
 * - `config(port)` returns the kurento.conf.json object;
 * - `files` maps paths relative to the config directory to their contents
 *   (e.g. `modules/kurento/WebRtcEndpoint.conf.ini`); `modules/` always exists;
 * - `env` adds to the environment.
 * `stop()` sends SIGTERM and waits up to 10 s (then SIGKILL, after an
 * all-threads gdb dump to `$KMS_HANG_DUMP.<pid>` when that is set) and
 * returns `{ code, signal }`, or null if the server had to be killed.
 */
async function startServer({ bin, config, files = {}, env = {}, prefix = 'kms-test-' }) {
  const port = await freePort();
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), prefix));
  fs.writeFileSync(path.join(dir, 'kurento.conf.json'), JSON.stringify(config(port)));
  fs.mkdirSync(path.join(dir, 'modules'));
  for (const [name, text] of Object.entries(files)) {
    const file = path.join(dir, name);
    fs.mkdirSync(path.dirname(file), { recursive: true });
    fs.writeFileSync(file, text);
  }
  const child = spawn(bin, ['--conf-file', path.join(dir, 'kurento.conf.json')], {
    env: Object.assign({}, process.env, env),
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let log = '';
  child.stdout.on('data', (d) => { log += d; });
  child.stderr.on('data', (d) => { log += d; });
  const exited = new Promise((resolve) => child.on('exit', (code, signal) => resolve({ code, signal })));
  child.on('error', () => {});
  try {
    await waitForPort(port, 20000, exited);
  } catch (e) {
    if (child.exitCode === null) child.kill('SIGKILL');
    fs.rmSync(dir, { recursive: true, force: true });
    throw new Error(`${e.message}\n${log}`);
  }
  return {
    port,
    url: `ws://127.0.0.1:${port}/kurento`,
    child,
    exited,
    dir,
    log: () => log,
    alive: () => child.exitCode === null && child.signalCode === null,
    async stop() {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGTERM');
      let timer;
      let r = await Promise.race([exited, new Promise((res) => { timer = setTimeout(() => res(null), 10000); })]);
      clearTimeout(timer);
      if (r === null) {
        if (process.env.KMS_HANG_DUMP) {
          try {
            execSync(`gdb -p ${child.pid} -batch -ex 'thread apply all bt' > ${process.env.KMS_HANG_DUMP}.${child.pid} 2>&1`);
          } catch (e) { /* diagnostics only */ }
        }
        child.kill('SIGKILL');
        await exited;
        r = null;
      }
      fs.rmSync(dir, { recursive: true, force: true });
      return r;
    },
  };
}

/** A callback-style kurento-client call as a promise (awaiting client
 * objects directly yields partial copies on Node 20). */
function call(obj, method, ...args) {
  return new Promise((resolve, reject) => {
    obj[method](...args, (err, value) => (err ? reject(err) : resolve(value)));
  });
}

module.exports = { installClientShims, installDomainShim, freePort, waitForPort, startServer, call };
