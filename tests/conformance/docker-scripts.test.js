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
