// networkInterfaces per endpoint (set before gathering, as in KMS): the
// endpoint's host candidates, trickled and in its SDP, are only on the
// named interface's address, and the loopback still decodes over it. Runs
// on the transport under test (KMS_WEBRTC_TRANSPORT; CI runs the suite on
// both).
'use strict';

const test = require('node:test');
const assert = require('node:assert/strict');
const os = require('node:os');
const h = require('./lib/harness');
const { call, waitFor, negotiate, decodes } = h;

// Loopback among the addresses the server may gather on: the native
// transport's shared sockets are bound once, on the module config's
// interfaces (KMS_ICE_LOOPBACK adds 127.0.0.1), and an endpoint picks
// among them.
const env = h.suite({ server: { env: { KMS_ICE_LOOPBACK: '1' } } });

/** Each up interface's IPv4 address and all its addresses, by name. */
function interfaces() {
  const out = {};
  for (const [name, addrs] of Object.entries(os.networkInterfaces())) {
    const v4 = (addrs || []).find((x) => x.family === 'IPv4');
    if (v4) out[name] = { ip: v4.address, all: addrs.map((x) => x.address) };
  }
  return out;
}

const hostIps = (lines) => lines.filter((c) => / typ host/.test(c)).map((c) => c.replace(/^a=/, '').split(' ')[4]);

const ifs = interfaces();
const external = Object.keys(ifs).find((n) => !ifs[n].ip.startsWith('127.'));
// The suite's servers gather on loopback too (KMS_ICE_LOOPBACK=1).
const cases = ['lo', external].filter(Boolean).filter((n) => ifs[n]);

for (const name of cases) {
  test(`networkInterfaces '${name}': host candidates only on ${ifs[name].ip} (and its IPv6), the loopback decodes`, async () => {
    const { client, browser, pages } = env;
    const pipeline = await call(client, 'create', 'MediaPipeline');
    const ep = await call(pipeline, 'create', 'WebRtcEndpoint');
    await call(ep, 'setNetworkInterfaces', name);
    assert.equal(await call(ep, 'getNetworkInterfaces'), name);
    await call(ep, 'connect', ep);
    const page = await browser.newPage(pages.url);
    const { events, answer } = await negotiate(page, ep, 'sendrecv');
    await waitFor('IceGatheringDone', 10000, () => events.gatheringDone);
    const found = hostIps(events.found || []);
    const inSdp = hostIps((answer || '').split(/\r?\n/).filter((l) => l.startsWith('a=candidate:')));
    assert.ok(found.length > 0, `host candidates trickled: ${JSON.stringify(events.found)}`);
    const all = [...found, ...inSdp];
    assert.ok(found.includes(ifs[name].ip), `a candidate on ${ifs[name].ip}: ${JSON.stringify(found)}`);
    assert.ok(all.every((ip) => ifs[name].all.includes(ip)), `only ${name}'s addresses: ${JSON.stringify(all)}`);
    await decodes(page, 10);
    await page.close();
    await call(pipeline, 'release');
  });
}

const native = (process.env.KMS_WEBRTC_TRANSPORT || 'native') === 'native';
test('native: networkInterfaces naming an interface its shared sockets are not on answers 40006',
  { skip: !native && 'native transport only (webrtcbin binds per endpoint)' }, async () => {
    const { client } = env;
    const pipeline = await call(client, 'create', 'MediaPipeline');
    const ep = await call(pipeline, 'create', 'WebRtcEndpoint');
    // The loops' sockets are bound at start: an explicit error, not an
    // endpoint without candidates.
    await assert.rejects(call(ep, 'setNetworkInterfaces', 'no-such-if0'), (e) => {
      assert.equal(e.code, 40006);
      assert.match(e.message, /no-such-if0/);
      return true;
    });
    assert.equal(await call(ep, 'getNetworkInterfaces'), '', 'unchanged');
    await call(pipeline, 'release');
  });
