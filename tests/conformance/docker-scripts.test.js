// docker/entrypoint.sh and docker/healthchecker.sh on the host, against the
// real server binary (the container test, ci/test-docker.sh, runs them in
// the image): every variable lands in the module configuration file and in
// the server's effective configuration (--dump-config); a STUN/TURN setting
// reaches a WebRtcEndpoint read by the official kurento-client; the health
// check answers 0 only while the server answers pings.
'use strict';

const test = require('node:test');
const assert = require('node:assert/strict');
const { spawn, spawnSync } = require('node:child_process');
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');
const h = require('./lib/harness');
const { call } = h;
const { freePort, waitForPort } = require('../shared/kms-process');

const ROOT = path.resolve(__dirname, '..', '..');
const ENTRYPOINT = path.join(ROOT, 'docker', 'entrypoint.sh');
const HEALTH = path.join(ROOT, 'docker', 'healthchecker.sh');

/** A copy of the shipped configuration, as the image has it. */
function configDir() {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'kms-entrypoint-'));
  fs.cpSync(path.join(ROOT, 'kurento-media-server', 'config'), dir, { recursive: true });
  return dir;
}

const baseEnv = (dir) => ({ PATH: process.env.PATH, KMS_CONFIG_DIR: dir, KMS_BIN: h.BIN });

function dump(dir, vars) {
  const r = spawnSync(ENTRYPOINT, ['--dump-config'], { env: Object.assign(baseEnv(dir), vars), encoding: 'utf8' });
  assert.equal(r.status, 0, r.stderr);
  return { cfg: JSON.parse(r.stdout), log: r.stderr };
}

const ini = (dir, cls) => fs.readFileSync(path.join(dir, 'modules', 'kurento', `${cls}.conf.ini`), 'utf8');

// variable, value, module class, key, value in the configuration
const CASES = [
  ['KMS_MIN_PORT', '41000', 'BaseRtpEndpoint', 'minPort'],
  ['KMS_MAX_PORT', '42000', 'BaseRtpEndpoint', 'maxPort'],
  ['KMS_MTU', '1400', 'BaseRtpEndpoint', 'mtu'],
  ['KMS_EXTERNAL_IPV4', '198.51.100.7', 'WebRtcEndpoint', 'externalIPv4'],
  ['KMS_EXTERNAL_IPV6', '2001:db8::7', 'WebRtcEndpoint', 'externalIPv6'],
  ['KMS_NETWORK_INTERFACES', 'eth0,eth1', 'WebRtcEndpoint', 'networkInterfaces'],
  ['KMS_ICE_TCP', '0', 'WebRtcEndpoint', 'iceTcp'],
  ['KMS_TURN_URL', 'user:p@ss@203.0.113.9:3478?transport=tcp', 'WebRtcEndpoint', 'turnURL'],
  ['KMS_PEM_CERTIFICATE_RSA', '/etc/kurento/rsa.pem', 'WebRtcEndpoint', 'pemCertificateRSA'],
  ['KMS_PEM_CERTIFICATE_ECDSA', '/etc/kurento/ec.pem', 'WebRtcEndpoint', 'pemCertificateECDSA'],
  ['OUTPUT_BITRATE', '777000', 'MediaElement', 'encoderBitrate'],
];

test('entrypoint: each variable → module config file → effective configuration', () => {
  for (const [v, value, cls, key] of CASES) {
    const dir = configDir();
    try {
      const before = dump(dir, {}).cfg;
      assert.notEqual(before.modules.kurento[cls]?.[key], value, `${v}: not already the default`);
      const { cfg, log } = dump(dir, { [v]: value });
      assert.equal(cfg.modules.kurento[cls][key], value, `${v} → ${cls}.${key}`);
      // The file itself, upstream-style (a commented sample line replaced,
      // not a second line appended), so it also holds without the variable.
      const lines = ini(dir, cls).split('\n').filter((l) => new RegExp(`^;?${key}=`).test(l));
      assert.deepEqual(lines, [`${key}=${value}`], `${cls}.conf.ini for ${v}`);
      assert.equal(dump(dir, {}).cfg.modules.kurento[cls][key], value, `${v} persisted in the file`);
      assert.match(log, new RegExp(`${cls}.conf.ini: ${key}=`));
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  }
});

test('entrypoint: STUN needs IP and port; 6.x KMS_EXTERNAL_ADDRESS by family; KMS_PORT', () => {
  const dir = configDir();
  try {
    let { cfg, log } = dump(dir, { KMS_STUN_IP: '192.0.2.10' });
    assert.equal(cfg.modules.kurento.WebRtcEndpoint?.stunServerAddress, undefined, 'IP alone: not configured');
    assert.match(log, /needs KMS_STUN_PORT/);
    cfg = dump(dir, { KMS_STUN_IP: '192.0.2.10', KMS_STUN_PORT: '3479' }).cfg;
    assert.equal(cfg.modules.kurento.WebRtcEndpoint.stunServerAddress, '192.0.2.10');
    assert.equal(cfg.modules.kurento.WebRtcEndpoint.stunServerPort, '3479');
    cfg = dump(dir, { KMS_EXTERNAL_ADDRESS: '203.0.113.1' }).cfg;
    assert.equal(cfg.modules.kurento.WebRtcEndpoint.externalIPv4, '203.0.113.1');
    cfg = dump(dir, { KMS_EXTERNAL_ADDRESS: '2001:db8::1' }).cfg;
    assert.equal(cfg.modules.kurento.WebRtcEndpoint.externalIPv6, '2001:db8::1');
    cfg = dump(dir, { KMS_PORT: '18999' }).cfg;
    assert.equal(cfg.mediaServer.net.websocket.port, 18999);
    const bad = spawnSync(ENTRYPOINT, ['--dump-config'], { env: Object.assign(baseEnv(dir), { KMS_PORT: 'x' }) });
    assert.notEqual(bad.status, 0, 'a non-numeric KMS_PORT is refused');
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

/** coturn as a plain STUN server on `ip`; -v logs every client's address
 * ("remote addr") with --log-binding, the oracle for what the entrypoint learnt. */
async function stunServer(ip) {
  const port = await freePort();
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'kms-stun-'));
  const proc = spawn('turnserver', ['-n', '--stun-only', '--no-cli', '--no-tls', '--no-dtls',
    `--listening-ip=${ip}`, `--listening-port=${port}`, '--log-file=stdout', '-v', '--log-binding',
    `--userdb=${path.join(dir, 'turndb')}`, `--pidfile=${path.join(dir, 'turn.pid')}`], { stdio: ['ignore', 'pipe', 'pipe'] });
  let log = '';
  proc.stdout.on('data', (d) => { log += d; });
  proc.stderr.on('data', (d) => { log += d; });
  const deadline = Date.now() + 10000;
  while (!/turn server id=/.test(log)) {
    assert.ok(Date.now() < deadline && proc.exitCode === null, `turnserver did not start: ${log}`);
    await new Promise((r) => setTimeout(r, 50));
  }
  return {
    port,
    /** Client addresses the server saw, in order. */
    // "remote addr 127.0.0.1:40000" or "remote addr [::1]:40000".
    seen: () => [...log.matchAll(/remote addr (?:\[([0-9a-fA-F:]+)\]|([0-9.]+)):\d+/g)].map((m) => m[1] || m[2]),
    stop: () => { proc.kill('SIGTERM'); fs.rmSync(dir, { recursive: true, force: true }); },
  };
}

const hasTurnserver = spawnSync('turnserver', ['--version']).status === 0;
const hasIpv6Loopback = (() => {
  const r = spawnSync('python3', ['-c', 'import socket; s=socket.socket(socket.AF_INET6, socket.SOCK_DGRAM); s.bind(("::1", 0))']);
  return r.status === 0;
})();

test('entrypoint: KMS_EXTERNAL_IPV4/IPV6=auto → the address a STUN server (coturn) saw', { skip: !hasTurnserver && 'no turnserver (ci/setup.sh --with-tests installs coturn)' }, async (t) => {
  const families = [['127.0.0.1', 'IPV4', 'externalIPv4']];
  if (hasIpv6Loopback) families.push(['::1', 'IPV6', 'externalIPv6']);
  else t.diagnostic('no ::1 here: IPv6 case skipped');
  for (const [ip, fam, key] of families) {
    const stun = await stunServer(ip);
    const dir = configDir();
    try {
      const { cfg, log } = dump(dir, {
        KMS_STUN_IP: ip, KMS_STUN_PORT: String(stun.port), [`KMS_EXTERNAL_${fam}`]: 'auto', KMS_EXTERNAL_IP_DNS: '0',
      });
      await new Promise((r) => setTimeout(r, 300)); // coturn's log line
      const seen = stun.seen();
      assert.ok(seen.length > 0, 'the STUN server got a request');
      assert.equal(cfg.modules.kurento.WebRtcEndpoint[key], seen[0], `${key}: what the STUN server saw (${log})`);
      assert.match(log, new RegExp(`public IPv${fam.slice(3)} from STUN`));
      assert.match(ini(dir, 'WebRtcEndpoint'), new RegExp(`^${key}=${seen[0].replace(/\./g, '\\.')}$`, 'm'));
    } finally {
      stun.stop();
      fs.rmSync(dir, { recursive: true, force: true });
    }
  }
});

test('entrypoint: auto with nothing reachable stays unset, warns, and the server still starts', async () => {
  const dir = configDir();
  const port = await freePort();
  const closed = await freePort(); // nothing listens there: ICMP port unreachable
  const child = spawn(ENTRYPOINT, [], {
    env: Object.assign(baseEnv(dir), {
      KMS_PORT: String(port), KMS_STUN_IP: '127.0.0.1', KMS_STUN_PORT: String(closed),
      KMS_EXTERNAL_IPV4: 'auto', KMS_EXTERNAL_IPV6: 'auto',
      // Public resolvers may or may not answer from a test host; the
      // container test covers DNS failing for real (--network none).
      KMS_EXTERNAL_IP_DNS: '0',
    }),
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  let log = '';
  child.stderr.on('data', (d) => { log += d; });
  const exited = new Promise((r) => child.on('exit', (code, signal) => r({ code, signal })));
  try {
    await waitForPort(port, 20000, exited);
    assert.match(log, /WARNING: KMS_EXTERNAL_IPV4=auto: no public IPv4 address found/);
    assert.match(log, /WARNING: KMS_EXTERNAL_IPV6=auto: no public IPv6 address found/);
    assert.doesNotMatch(ini(dir, 'WebRtcEndpoint'), /^externalIPv[46]=/m, 'left unset (upstream rule)');
    const client = await h.connect(`ws://127.0.0.1:${port}/kurento`);
    const pipeline = await call(client, 'create', 'MediaPipeline');
    const ep = await call(pipeline, 'create', 'WebRtcEndpoint');
    assert.equal(await call(ep, 'getStunServerPort'), closed, 'the server runs with the rest of the configuration');
    await call(pipeline, 'release');
    client.close();
    child.kill('SIGTERM');
    assert.deepEqual(await exited, { code: 0, signal: null });
  } finally {
    if (child.exitCode === null) child.kill('SIGKILL');
    child.stderr.destroy();
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

const isRoot = process.getuid && process.getuid() === 0;

test('entrypoint: KMS_UID as root → the server runs with that uid; as another user → refused', { skip: !isRoot && 'needs root (switching uid)' }, async () => {
  const dir = configDir();
  fs.chmodSync(dir, 0o755); // readable by the new uid, as /etc/kurento is in the image
  const media = fs.mkdtempSync(path.join(os.tmpdir(), 'kms-uid-media-'));
  const port = await freePort();
  const child = spawn(ENTRYPOINT, [], {
    env: Object.assign(baseEnv(dir), {
      KMS_PORT: String(port), KMS_UID: '43210', KMS_MEDIA_DIR: media, GST_REGISTRY: path.join(media, 'registry.bin'),
    }),
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  let log = '';
  child.stderr.on('data', (d) => { log += d; });
  const exited = new Promise((r) => child.on('exit', (code, signal) => r({ code, signal })));
  try {
    await waitForPort(port, 20000, exited);
    const status = fs.readFileSync(`/proc/${child.pid}/status`, 'utf8');
    assert.match(status, /^Uid:\s+43210\s+43210\s+43210\s+43210$/m, 'exec: the entrypoint pid is the server, as uid 43210');
    assert.match(status, /^Gid:\s+43210\s/m);
    assert.equal(fs.statSync(media).uid, 43210, 'the media directory is handed over');
    assert.match(log, /running the server as uid 43210/);
    assert.equal(health(port), 0);
    child.kill('SIGTERM');
    assert.deepEqual(await exited, { code: 0, signal: null });
  } finally {
    if (child.exitCode === null) child.kill('SIGKILL');
    child.stderr.destroy();
    fs.rmSync(dir, { recursive: true, force: true });
    fs.rmSync(media, { recursive: true, force: true });
  }
  // Not root (nobody): cannot switch, and says so instead of running as
  // someone else than asked.
  const dir2 = configDir();
  fs.chmodSync(dir2, 0o777);
  try {
    const r = spawnSync('setpriv', ['--reuid=65534', '--regid=65534', '--clear-groups', ENTRYPOINT, '--version'], {
      env: Object.assign(baseEnv(dir2), { KMS_UID: '43210' }), encoding: 'utf8',
    });
    assert.notEqual(r.status, 0, 'refused');
    assert.match(r.stderr, /KMS_UID=43210 but running as uid 65534, not root/);
    assert.doesNotMatch(r.stdout, /Kurento Media Server version/, 'the server was not started');
    // KMS_UID equal to the current uid: nothing to do.
    const same = spawnSync('setpriv', ['--reuid=65534', '--regid=65534', '--clear-groups', ENTRYPOINT, '--version'], {
      env: Object.assign(baseEnv(dir2), { KMS_UID: '65534' }), encoding: 'utf8',
    });
    assert.equal(same.status, 0, same.stderr);
    assert.match(same.stdout, /Kurento Media Server version/);
  } finally {
    fs.rmSync(dir2, { recursive: true, force: true });
  }
});

function health(port) {
  return spawnSync(HEALTH, [], { env: { PATH: process.env.PATH, KMS_PORT: String(port), KMS_HEALTHCHECK_TIMEOUT: '2' } }).status;
}

test('entrypoint runs the server: STUN/TURN on a WebRtcEndpoint; healthchecker 0 / SIGSTOP / down', async () => {
  const dir = configDir();
  const port = await freePort();
  const child = spawn(ENTRYPOINT, [], {
    env: Object.assign(baseEnv(dir), {
      KMS_PORT: String(port), KMS_STUN_IP: '192.0.2.20', KMS_STUN_PORT: '3480',
      KMS_TURN_URL: 'kurento:pw@192.0.2.21:3481?transport=udp',
    }),
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  let log = '';
  child.stderr.on('data', (d) => { log += d; });
  const exited = new Promise((r) => child.on('exit', (code, signal) => r({ code, signal })));
  try {
    await waitForPort(port, 20000, exited);
    assert.match(log, /GST_DEBUG_NO_COLOR|kurento.conf.json: websocket port/);
    const client = await h.connect(`ws://127.0.0.1:${port}/kurento`);
    const pipeline = await call(client, 'create', 'MediaPipeline');
    const ep = await call(pipeline, 'create', 'WebRtcEndpoint');
    assert.equal(await call(ep, 'getStunServerAddress'), '192.0.2.20');
    assert.equal(await call(ep, 'getStunServerPort'), 3480);
    assert.equal(await call(ep, 'getTurnUrl'), 'kurento:pw@192.0.2.21:3481?transport=udp');
    await call(pipeline, 'release');
    client.close();

    assert.equal(health(port), 0, 'healthy while running');
    process.kill(child.pid, 'SIGSTOP');
    assert.notEqual(health(port), 0, 'unhealthy while SIGSTOPped (accepts TCP, never answers)');
    process.kill(child.pid, 'SIGCONT');
    assert.equal(health(port), 0, 'healthy again after SIGCONT');
    // exec: the server is the entrypoint's own process, so it gets SIGTERM.
    child.kill('SIGTERM');
    assert.deepEqual(await exited, { code: 0, signal: null }, 'clean exit on SIGTERM');
    assert.notEqual(health(port), 0, 'unhealthy when the server is down');
  } finally {
    if (child.exitCode === null) child.kill('SIGKILL');
    child.stderr.destroy();
    fs.rmSync(dir, { recursive: true, force: true });
  }
});
