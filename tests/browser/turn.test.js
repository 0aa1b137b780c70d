// TURN on both WebRTC transports (issue 13), through Debian's coturn started
// here on loopback with long-term credentials:
//  - Chromium forced to relay (iceTransportPolicy: 'relay'): its only
//    candidates are coturn allocations, the loopback still decodes;
//  - the server's own TURN client (setTurnUrl, KMS's user:pass@ip:port form),
//    reaching coturn over UDP and over TCP (?transport=tcp): the page,
//    relay-only too, gets only the endpoint's relay candidates.
//    coturn lets into an allocation only the addresses its owner gave a
//    permission to, so the one path is allocation to allocation: media can
//    only reach the server through its own allocation.
//  - STUN (setStunServerAddress/Port): a server-reflexive candidate. Here
//    everything is on one host, so no real STUN server can show a mapped
//    address other than the socket's own (a candidate the ICE agents drop as
//    redundant); a minimal Binding responder stands in for a NAT and answers
//    203.0.113.7 with the client's port.
// Each case runs on a webrtcbin server and on a native one.
'use strict';

const test = require('node:test');
const assert = require('node:assert/strict');
const fs = require('node:fs');
const net = require('node:net');
const dgram = require('node:dgram');
const os = require('node:os');
const zlib = require('node:zlib');
const path = require('node:path');
const { spawn, execFileSync } = require('node:child_process');
const h = require('./lib/harness');
const { decodes, call, waitFor, negotiate, pageStats } = h;

// Everything stays on loopback. coturn and the STUN responder listen on
// 127.0.0.1 and the servers gather on it too (KMS_ICE_LOOPBACK=1): libnice
// ties each socket to its interface (IP_UNICAST_IF), so webrtcbin's sockets
// on eth0 never reach 127.0.0.1. coturn relays from 127.0.0.2, another
// address than the servers' host candidates: an allocation only lets in the
// IPs its owner gave a permission to, so a host candidate of the server
// cannot slip into a path meant to go through a relay.
const IP = '127.0.0.1';
const RELAY_IP = '127.0.0.2';
const USER = 'kurento';
const PASS = 'kurento-turn';

/** A free UDP port on IP (coturn listens there). */
function freeUdpPort() {
  return new Promise((resolve, reject) => {
    const s = dgram.createSocket('udp4');
    s.on('error', reject);
    s.bind(0, IP, () => { const p = s.address().port; s.close(() => resolve(p)); });
  });
}

/** coturn on IP:port (UDP and TCP) and IP:tlsPort (TLS, a self-signed
 * certificate made here), long-term credentials, loopback peers allowed;
 * verbose, so its log shows each session's allocation and deletion. */
async function startCoturn() {
  const port = await freeUdpPort();
  let tlsPort = await freeUdpPort();
  while (tlsPort === port) tlsPort = await freeUdpPort();
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'kms-coturn-'));
  const log = path.join(dir, 'turn.log');
  const cert = path.join(dir, 'cert.pem');
  const key = path.join(dir, 'key.pem');
  execFileSync('openssl', ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes',
    '-subj', '/CN=turn.kurento.test', '-days', '1', '-keyout', key, '-out', cert], { stdio: 'ignore' });
  const child = spawn('turnserver', ['-n', '--no-cli', '--no-dtls', `--cert=${cert}`, `--pkey=${key}`,
    `--tls-listening-port=${tlsPort}`, `--listening-ip=${IP}`,
    `--relay-ip=${RELAY_IP}`, `--listening-port=${port}`, '--min-port=49000', '--max-port=49900', '--lt-cred-mech',
    `--user=${USER}:${PASS}`, '--realm=kurento.test', '--allow-loopback-peers', '--no-stdout-log', '--simple-log', '--verbose',
    `--log-file=${log}`, '--pidfile', path.join(dir, 'turn.pid')], { stdio: 'ignore' });
  const text = () => { try { return fs.readFileSync(log, 'utf8'); } catch { return ''; } };
  // Ready once it answers on its TCP listener too (same port).
  await waitFor('coturn listening', 10000, () => new Promise((r) => {
    const c = net.connect(port, IP, () => { c.destroy(); r(true); });
    c.on('error', () => r(false));
  }));
  await waitFor('coturn listening on TLS', 10000, () => new Promise((r) => {
    const c = net.connect(tlsPort, IP, () => { c.destroy(); r(true); });
    c.on('error', () => r(false));
  }));
  return {
    port,
    tlsPort,
    log: text,
    stop: () => { child.kill('SIGTERM'); fs.rmSync(dir, { recursive: true, force: true }); },
  };
}

/** A STUN Binding responder that maps every client to `mappedIp`:(its own
 * port), as a port-preserving NAT would. RFC 5389 requests get
 * XOR-MAPPED-ADDRESS and FINGERPRINT; libnice's discovery requests are RFC
 * 3489's (no magic cookie, a 16-byte id) and get MAPPED-ADDRESS, as coturn
 * answers them. */
async function startFakeNatStun(mappedIp) {
  const sock = dgram.createSocket('udp4');
  const asked = [];
  sock.on('message', (msg, rinfo) => {
    if (msg.length < 20 || msg.readUInt16BE(0) !== 0x0001) return;
    asked.push(`${rinfo.address}:${rinfo.port}`);
    const hdr = Buffer.alloc(20);
    hdr.writeUInt16BE(0x0101, 0);
    msg.copy(hdr, 4, 4, 20); // cookie + id (RFC 5389) or the 16-byte id (RFC 3489)
    const a = Buffer.alloc(12);
    const cookie = msg.readUInt32BE(4) === 0x2112a442;
    a.writeUInt16BE(cookie ? 0x0020 : 0x0001, 0); // XOR-MAPPED-ADDRESS / MAPPED-ADDRESS
    a.writeUInt16BE(8, 2);
    a.writeUInt8(1, 5);
    a.writeUInt16BE(cookie ? rinfo.port ^ 0x2112 : rinfo.port, 6);
    mappedIp.split('.').forEach((b, i) => { a[8 + i] = Number(b) ^ (cookie ? [0x21, 0x12, 0xa4, 0x42][i] : 0); });
    let out;
    if (cookie) {
      hdr.writeUInt16BE(a.length + 8, 2);
      const body = Buffer.concat([hdr, a]);
      const fp = Buffer.alloc(8);
      fp.writeUInt16BE(0x8028, 0); fp.writeUInt16BE(4, 2);
      fp.writeUInt32BE((zlib.crc32(body) ^ 0x5354554e) >>> 0, 4);
      out = Buffer.concat([body, fp]);
    } else {
      hdr.writeUInt16BE(a.length, 2);
      out = Buffer.concat([hdr, a]);
    }
    sock.send(out, rinfo.port, rinfo.address);
  });
  await new Promise((r) => sock.bind(0, IP, r));
  return { port: sock.address().port, asked, close: () => sock.close() };
}

let turn;
let pages;
let browser;

/** An endpoint given `turnUrl` gathers alone (no page): generateOffer,
 * gatherCandidates, then every candidate found once IceGatheringDone
 * comes, within `ms`. */
async function gatherAlone(client, turnUrl, ms) {
  const pipeline = await call(client, 'create', 'MediaPipeline');
  const ep = await call(pipeline, 'create', 'WebRtcEndpoint');
  await call(ep, 'setTurnUrl', turnUrl);
  const found = [];
  let done = false;
  ep.on('IceCandidateFound', (e) => found.push(e.candidate.candidate));
  ep.on('IceGatheringDone', () => { done = true; });
  await call(ep, 'generateOffer');
  await call(ep, 'gatherCandidates');
  await waitFor('IceGatheringDone', ms, () => done);
  return { pipeline, found };
}

test.before(async () => {
  turn = await startCoturn();
  pages = await h.startPageServer();
  browser = await h.launchBrowser();
});

test.after(async () => {
  if (browser) await browser.close();
  if (pages) await pages.close();
  if (turn) turn.stop();
});

for (const transport of ['webrtcbin', 'native']) {
  test.describe(`TURN on the ${transport} transport`, () => {
    let server;
    let client;

    test.before(async () => {
      server = await h.startServer({ env: { KMS_WEBRTC_TRANSPORT: transport, KMS_ICE_LOOPBACK: '1', KMS_LOG: process.env.KMS_TEST_LOG || 'info' } });
      client = await h.connect(server.url);
    });

    test.after(async () => {
      if (client) client.close();
      if (server) {
        const r = await server.stop();
        if (process.env.KMS_TEST_VERBOSE) console.log(server.log());
        assert.ok(r && r.code === 0, `server exited cleanly: ${JSON.stringify(r)}`);
      }
    });

    test(`${transport}: Chromium forced to relay through coturn decodes the loopback`, async () => {
      const pipeline = await call(client, 'create', 'MediaPipeline');
      const ep = await call(pipeline, 'create', 'WebRtcEndpoint');
      await call(ep, 'connect', ep);
      const page = await browser.newPage(pages.url);
      const configuration = {
        iceServers: [{ urls: `turn:${IP}:${turn.port}?transport=udp`, username: USER, credential: PASS }],
        iceTransportPolicy: 'relay',
      };
      const { events } = await negotiate(page, ep, 'sendrecv', { configuration });
      await decodes(page, 30);
      const s = await pageStats(page);
      assert.equal(s.localCandidateType, 'relay', 'the page sends through its coturn allocation');
      const sent = events.pageCandidates || [];
      assert.ok(sent.length > 0 && sent.every((c) => / typ relay /.test(c)),
        `the page's only candidates are its allocations: ${JSON.stringify(sent)}`);
      await page.close();
      await call(pipeline, 'release');
    });

    for (const proto of ['udp', 'tcp', 'tls']) {
      // Over TCP the server reaches coturn on its TCP listener, over TLS on
      // its TLS one (networks that let no UDP out, or only TLS); the
      // relayed address is UDP either way.
      const url = () => ({
        udp: `${USER}:${PASS}@${IP}:${turn.port}`,
        tcp: `${USER}:${PASS}@${IP}:${turn.port}?transport=tcp`,
        tls: `${USER}:${PASS}@${IP}:${turn.tlsPort}?transport=tls`,
      })[proto];
      // libnice (webrtcbin) speaks plain TCP for `transport=tls` (its TLS
      // is Google's pseudo-SSL only), which coturn's TLS port accepts too:
      // nothing of TLS to prove there.
      const skip = proto === 'tls' && transport === 'webrtcbin' && 'libnice does not do TLS to TURN servers';
      test(`${transport}: the endpoint's TURN client (setTurnUrl, ${proto} to coturn) carries the media through coturn`, { skip }, async () => {
        const mark = turn.log().length;
        const pipeline = await call(client, 'create', 'MediaPipeline');
        const ep = await call(pipeline, 'create', 'WebRtcEndpoint');
        await call(ep, 'setTurnUrl', url());
        assert.equal(await call(ep, 'getTurnUrl'), url());
        await call(ep, 'connect', ep);
        const pairs = [];
        ep.on('NewCandidatePairSelected', (e) => pairs.push(e.candidatePair));
        const page = await browser.newPage(pages.url);
        const configuration = {
          iceServers: [{ urls: `turn:${IP}:${turn.port}?transport=udp`, username: USER, credential: PASS }],
          iceTransportPolicy: 'relay',
        };
        const { events } = await negotiate(page, ep, 'sendrecv', { candidateTypes: ['relay'], configuration });
        await waitFor('IceGatheringDone', 15000, () => events.gatheringDone);
        const relays = (events.found || []).filter((c) => / typ relay /.test(c));
        assert.equal(events.found.length, events.foundAtDone, 'the relay candidate came before IceGatheringDone');
        assert.ok(relays.length > 0, `a relay candidate gathered: ${JSON.stringify(events.found)}`);
        assert.ok(relays.some((c) => c.includes(` ${RELAY_IP} `) && / 49\d\d\d typ relay raddr /.test(c)),
          'coturn\'s relayed address');
        await decodes(page, 30);
        const s = await pageStats(page);
        assert.equal(s.remoteCandidateType, 'relay', 'the page reaches the server at its relayed address');
        assert.equal(s.localCandidateType, 'relay');
        await waitFor('NewCandidatePairSelected on the relay', 10000,
          () => pairs.some((p) => / typ relay/.test(p.localCandidate)));
        if (proto !== 'udp') {
          // coturn logs each stream client: the server's allocation came
          // over TCP or TLS (the page's over UDP).
          const since = turn.log().slice(mark);
          assert.match(since, /tcp or tls connected to: 127\.0\.0\.1:\d+/, `a TCP client on coturn: ${since.slice(-3000)}`);
        }
        if (proto === 'tls') {
          // The session coturn opened for it names the TLS cipher.
          const since = turn.log().slice(mark);
          assert.match(since, /new, realm=<kurento\.test>, username=<kurento>, lifetime=\d+, cipher=[^,]+, method=TLSv1\.[23]/,
            `a TLS session on coturn: ${since.slice(-3000)}`);
        }
        await page.close();
        await call(pipeline, 'release');
      });
    }

    test(`${transport}: STUN gives a server-reflexive candidate`, async () => {
      const stun = await startFakeNatStun('203.0.113.7');
      try {
        const pipeline = await call(client, 'create', 'MediaPipeline');
        const ep = await call(pipeline, 'create', 'WebRtcEndpoint');
        await call(ep, 'setStunServerAddress', IP);
        await call(ep, 'setStunServerPort', stun.port);
        await call(ep, 'connect', ep);
        const page = await browser.newPage(pages.url);
        const { events } = await negotiate(page, ep, 'sendrecv');
        await waitFor('IceGatheringDone', 15000, () => events.gatheringDone);
        const srflx = (events.found || []).filter((c) => / typ srflx /.test(c));
        await new Promise((r) => setTimeout(r, 500));
        assert.equal(events.found.length, events.foundAtDone, 'no candidate after IceGatheringDone');
        assert.ok(stun.asked.length > 0, 'the server asked the STUN server');
        assert.ok(srflx.some((c) => / 203\.0\.113\.7 \d+ typ srflx raddr /.test(c)),
          `a srflx candidate with the mapped address: ${JSON.stringify(events.found)}`);
        // The host path still carries the loopback.
        await decodes(page, 10);
        await page.close();
        await call(pipeline, 'release');
      } finally {
        stun.close();
      }
    });

    if (transport === 'native') {
      test('native: a released endpoint\'s TURN allocation is deleted on coturn at once', async () => {
        // Only this endpoint allocates while the test runs (no page).
        const mark = turn.log().length;
        const { pipeline, found } = await gatherAlone(client, `${USER}:${PASS}@${IP}:${turn.port}`, 10000);
        assert.ok(found.some((c) => / typ relay /.test(c)), `a relay candidate: ${JSON.stringify(found)}`);
        const since = () => turn.log().slice(mark);
        const sessions = [...since().matchAll(/session (\d+): realm <[^>]*> user <kurento>: incoming packet ALLOCATE processed, success/g)]
          .map((m) => m[1]);
        assert.equal(sessions.length, 1, `one allocation on coturn: ${since()}`);
        const id = sessions[0];
        assert.ok(!since().includes(`session ${id}: delete:`), 'alive while the endpoint is');
        await call(pipeline, 'release');
        // Deleted (a Refresh with lifetime 0), not left to expire after
        // its lifetime (1800 s).
        await waitFor('coturn deleted the allocation', 5000,
          () => since().includes(`session ${id}: refreshed, realm=<kurento.test>, username=<kurento>, lifetime=0`)
            && since().includes(`session ${id}: delete:`));
      });

      test('native: a TURN server that refuses the TCP connection ends gathering without a relay', async () => {
        // A port nobody listens on: the connect is refused at once.
        const port = await new Promise((resolve) => {
          const srv = net.createServer().listen(0, IP, () => { const p = srv.address().port; srv.close(() => resolve(p)); });
        });
        const { pipeline, found } = await gatherAlone(client, `${USER}:${PASS}@${IP}:${port}?transport=tcp`, 5000);
        assert.ok(found.some((c) => / typ host /.test(c)), `host candidates: ${JSON.stringify(found)}`);
        assert.ok(!found.some((c) => / typ relay /.test(c)), 'no relay candidate');
        await call(pipeline, 'release');
      });

      test('native: wrong TURN credentials end gathering without a relay, and host candidates still connect', async () => {
        const pipeline = await call(client, 'create', 'MediaPipeline');
        const ep = await call(pipeline, 'create', 'WebRtcEndpoint');
        await call(ep, 'setTurnUrl', `${USER}:wrong@${IP}:${turn.port}`);
        await assert.rejects(call(ep, 'setTurnUrl', `${USER}:${PASS}@${IP}:${turn.port}?transport=sctp`),
          (e) => e.code === 40107 && /sctp/.test(e.message));
        await call(ep, 'connect', ep);
        const page = await browser.newPage(pages.url);
        const { events } = await negotiate(page, ep, 'sendrecv');
        // The 401 ends the allocation at once, not after its ~30 s timeouts.
        await waitFor('IceGatheringDone', 10000, () => events.gatheringDone);
        assert.ok(!(events.found || []).some((c) => / typ relay /.test(c)), 'no relay candidate');
        await decodes(page, 10);
        await page.close();
        await call(pipeline, 'release');
      });
    }
  });
}
