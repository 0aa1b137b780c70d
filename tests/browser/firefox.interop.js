// Interop with Firefox (issue 13, opt-in; not in CI, see README): Debian's
// firefox-esr driven over WebDriver BiDi by puppeteer-core (playwright-core
// cannot drive a stock Firefox), fake camera and microphone, the official
// kurento-utils in the page and kurento-client in Node. On both WebRTC
// transports: the tutorials' loopback decodes in Firefox, and the endpoint
// reports one selected pair and READY without going back.
//
//   apt-get install firefox-esr && node --test firefox.interop.js
'use strict';

const test = require('node:test');
const assert = require('node:assert/strict');
const puppeteer = require('puppeteer-core');
const h = require('./lib/harness');
const { decodes, call, negotiate, pageStats } = h;

const FIREFOX = process.env.FIREFOX_BIN || '/usr/bin/firefox-esr';

let pages;
let firefox;

test.before(async () => {
  pages = await h.startPageServer();
  firefox = await puppeteer.launch({
    browser: 'firefox',
    executablePath: FIREFOX,
    headless: true,
    extraPrefsFirefox: {
      'media.navigator.streams.fake': true,
      'media.navigator.permission.disabled': true,
      // Host candidates as addresses, not mDNS names (as Chromium's
      // --disable-features=WebRtcHideLocalIpsWithMdns in the harness).
      'media.peerconnection.ice.obfuscate_host_addresses': false,
    },
  });
});

test.after(async () => {
  if (firefox) await firefox.close();
  if (pages) await pages.close();
});

for (const transport of ['webrtcbin', 'native']) {
  test(`${transport}: Firefox decodes the loopback; one selected pair, READY kept`, async () => {
    const server = await h.startServer({ env: { KMS_WEBRTC_TRANSPORT: transport, KMS_LOG: process.env.KMS_TEST_LOG || 'info' } });
    const client = await h.connect(server.url);
    try {
      const page = await firefox.newPage();
      await page.goto(pages.url);
      const pipeline = await call(client, 'create', 'MediaPipeline');
      const ep = await call(pipeline, 'create', 'WebRtcEndpoint');
      await call(ep, 'connect', ep);
      const { events } = await negotiate(page, ep, 'sendrecv');
      const s = await decodes(page, 30);
      assert.ok(s.width > 0 && s.audioPacketsReceived > 0, `video and audio in Firefox: ${JSON.stringify(s)}`);
      const types = events.all.map((e) => e.type);
      assert.equal(types.filter((t) => t === 'NewCandidatePairSelected').length, 1,
        `one selected pair: ${JSON.stringify(types)}`);
      const ice = events.all.filter((e) => e.type === 'IceComponentStateChanged').map((e) => e.state);
      assert.ok(ice.includes('READY') || ice.includes('CONNECTED'), `ICE connected: ${ice}`);
      if (ice.includes('READY')) {
        assert.ok(!ice.slice(ice.indexOf('READY')).includes('CONNECTED'), `no CONNECTED after READY: ${ice}`);
      }
      assert.ok(types.includes('DtlsConnectionStateChange'));
      const stats = Object.values(await call(ep, 'getStats', 'VIDEO'));
      assert.ok(stats.some((x) => x.type === 'inboundrtp' && x.packetsReceived > 0), 'the endpoint receives Firefox\'s video');
      assert.ok((await pageStats(page)).framesDecoded > 30);
      await page.close();
      await call(pipeline, 'release');
    } finally {
      client.close();
      const r = await server.stop();
      assert.ok(r && r.code === 0, `server exited cleanly: ${JSON.stringify(r)}`);
    }
  });
}
