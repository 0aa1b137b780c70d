// Test-side glue around kurento-utils' WebRtcPeer, driven from Node via
// page.evaluate(). Local candidates go to Node through the exposed
// `onLocalCandidate` binding, as a tutorial would send them to its server.
'use strict';

window.kms = (function () {
  let peer = null;
  const received = [];
  let channelOpen = false;

  function filterCodecs(sdp, keep) {
    if (!keep) return sdp;
    const lines = sdp.split('\r\n');
    const out = [];
    let allowed = null;
    for (const l of lines) {
      if (l.startsWith('m=video')) {
        const parts = l.split(' ');
        const pts = parts.slice(3);
        allowed = pts.filter((pt) => {
          const map = lines.find((x) => x.startsWith('a=rtpmap:' + pt + ' '));
          if (!map) return false;
          const name = map.split(' ')[1].split('/')[0].toUpperCase();
          if (name !== keep) return false;
          if (name === 'H264') {
            const fmtp = lines.find((x) => x.startsWith('a=fmtp:' + pt + ' ')) || '';
            return fmtp.includes('packetization-mode=1');
          }
          return true;
        });
        // Retransmission (rtx) payload types of the codecs kept stay.
        const rtx = pts.filter((pt) => {
          const map = lines.find((x) => x.startsWith('a=rtpmap:' + pt + ' '));
          const fmtp = lines.find((x) => x.startsWith('a=fmtp:' + pt + ' ')) || '';
          const apt = /apt=(\d+)/.exec(fmtp);
          return map && / rtx\//i.test(map) && apt && allowed.includes(apt[1]);
        });
        allowed = allowed.concat(rtx);
        out.push(parts.slice(0, 3).concat(allowed).join(' '));
        continue;
      }
      if (l.startsWith('m=')) allowed = null;
      const m = /^a=(rtpmap|fmtp|rtcp-fb):(\d+)/.exec(l);
      if (allowed && m && !allowed.includes(m[2])) continue;
      out.push(l);
    }
    return out.join('\r\n');
  }

  let setPictureImage = null;

  function pictureStream(p) {
    const canvas = document.createElement('canvas');
    canvas.width = p.width || 320;
    canvas.height = p.height || 240;
    const ctx = canvas.getContext('2d');
    let img = null;
    if (p.image) {
      img = new Image();
      img.src = p.image;
    }
    // setPicture(url) swaps the image drawn from the next frame on.
    setPictureImage = (url) => { img = url ? Object.assign(new Image(), { src: url }) : null; };
    let tick = 0;
    const draw = () => {
      ctx.fillStyle = p.color || '#808080';
      ctx.fillRect(0, 0, canvas.width, canvas.height);
      if (p.split) {
        // p.split: [left colour, right colour], one half each.
        ctx.fillStyle = p.split[0];
        ctx.fillRect(0, 0, canvas.width / 2, canvas.height);
        ctx.fillStyle = p.split[1];
        ctx.fillRect(canvas.width / 2, 0, canvas.width / 2, canvas.height);
      }
      if (img && img.complete && img.naturalWidth) ctx.drawImage(img, 0, 0, canvas.width, canvas.height);
      ctx.fillStyle = (tick++ % 2) ? '#000' : '#fff';
      ctx.fillRect(canvas.width - 4, canvas.height - 4, 4, 4);
    };
    draw();
    setInterval(draw, 1000 / 15);
    return canvas.captureStream(15);
  }

  // hz 'silence': a microphone that sends only silence.
  function toneStream(hz) {
    const ac = new AudioContext();
    const dest = ac.createMediaStreamDestination();
    if (hz === 'silence') return dest.stream;
    const osc = ac.createOscillator();
    osc.frequency.value = hz;
    osc.connect(dest);
    osc.start();
    return dest.stream;
  }

  return {
    // Replaces the synthetic camera's image (a data: URL; null = the colour
    // alone), e.g. to show a QR code, take it away and show it again.
    setPicture(url) {
      if (setPictureImage) setPictureImage(url);
    },
    // Average colour [r, g, b] of each rectangle of the remote video's
    // current frame; rectangles are [x, y, w, h] in fractions of the frame.
    regionColors(rects) {
      const v = document.getElementById('remote');
      const w = v.videoWidth;
      const h = v.videoHeight;
      if (!w || !h) return null;
      const c = document.createElement('canvas');
      c.width = w;
      c.height = h;
      const ctx = c.getContext('2d', { willReadFrequently: true });
      ctx.drawImage(v, 0, 0, w, h);
      return rects.map(([x, y, rw, rh]) => {
        const px = Math.floor(x * w);
        const py = Math.floor(y * h);
        const d = ctx.getImageData(px, py, Math.max(1, Math.floor(rw * w)), Math.max(1, Math.floor(rh * h))).data;
        const sum = [0, 0, 0];
        for (let i = 0; i < d.length; i += 4) { sum[0] += d[i]; sum[1] += d[i + 1]; sum[2] += d[i + 2]; }
        const n = d.length / 4;
        return sum.map((s) => Math.round(s / n));
      });
    },
    // mode: 'sendrecv' | 'sendonly' | 'recvonly'; opts.videoCodec keeps only
    // that codec in the offer; opts.dataChannels adds kurento-utils' channel;
    // opts.video replaces the camera constraints (320x240, 15 fps).
    start(mode, opts) {
      opts = opts || {};
      return new Promise((resolve, reject) => {
        const options = {
          localVideo: mode === 'recvonly' ? undefined : document.getElementById('local'),
          remoteVideo: mode === 'sendonly' ? undefined : document.getElementById('remote'),
          onicecandidate: (c) => window.onLocalCandidate(JSON.parse(JSON.stringify(c))),
          // opts.configuration: the RTCPeerConnection configuration
          // (iceServers, iceTransportPolicy: 'relay' for the TURN tests).
          configuration: opts.configuration || { iceServers: [] },
          mediaConstraints: { audio: true, video: opts.video || { width: 320, height: 240, frameRate: 15 } },
        };
        // opts.libraryConstraints: kurento-utils' own default constraints
        // (640 wide; its `framerate: 15` is not a constraint name, so the
        // camera's rate), as a tutorial application gets them.
        if (opts.libraryConstraints) delete options.mediaConstraints;
        // opts.picture: a synthetic camera (canvas) instead of the fake
        // device, so tests can send distinguishable pictures: { color,
        // split ([left, right] colours, half the picture each),
        // image (a data: URL drawn over the colour, scaled to fill), width,
        // height (default 320x240) }. A 4x4 corner square changes every
        // frame so the encoder never idles.
        if (opts.picture && mode !== 'recvonly') {
          options.videoStream = pictureStream(opts.picture);
          options.mediaConstraints = { audio: !opts.tone, video: false };
        }
        // opts.tone: a sine of that many Hz (WebAudio) as the microphone,
        // or 'silence'.
        if (opts.tone && mode !== 'recvonly') {
          options.audioStream = toneStream(opts.tone);
          if (!opts.picture) options.mediaConstraints = { audio: false, video: options.mediaConstraints.video };
        }
        if (opts.dataChannels) {
          options.dataChannels = true;
          options.dataChannelConfig = {
            id: 'kurento-test',
            onopen: () => { channelOpen = true; },
            onmessage: (ev) => received.push(ev.data),
          };
        }
        const ctor = { sendrecv: 'WebRtcPeerSendrecv', sendonly: 'WebRtcPeerSendonly', recvonly: 'WebRtcPeerRecvonly' }[mode];
        peer = window.kurentoUtils.WebRtcPeer[ctor](options, function (err) {
          if (err) return reject(String(err));
          this.generateOffer((e, offer) => (e ? reject(String(e)) : resolve(filterCodecs(offer, opts.videoCodec))));
        });
      });
    },
    processAnswer(answer) {
      return new Promise((resolve, reject) => peer.processAnswer(answer, (e) => (e ? reject(String(e)) : resolve())));
    },
    addCandidate(c) {
      return new Promise((resolve, reject) => peer.addIceCandidate(c, (e) => (e ? reject(String(e)) : resolve())));
    },
    async stats() {
      const pc = peer.peerConnection;
      const report = await pc.getStats();
      const out = { framesDecoded: 0, videoPacketsReceived: 0, audioPacketsReceived: 0, videoCodec: null, framesSent: 0 };
      const codecs = {};
      report.forEach((s) => { if (s.type === 'codec') codecs[s.id] = s.mimeType; });
      report.forEach((s) => {
        if (s.type === 'inbound-rtp' && s.kind === 'video') {
          out.framesDecoded += s.framesDecoded || 0;
          out.videoPacketsReceived += s.packetsReceived || 0;
          out.videoCodec = codecs[s.codecId] || out.videoCodec;
          // Loss recovery seen by the receiver: NACKs it sent, packets lost.
          out.videoNacksSent = (out.videoNacksSent || 0) + (s.nackCount || 0);
          out.videoPacketsLost = (out.videoPacketsLost || 0) + (s.packetsLost || 0);
          out.retransmittedPacketsReceived = (out.retransmittedPacketsReceived || 0) + (s.retransmittedPacketsReceived || 0);
        }
        if (s.type === 'inbound-rtp' && s.kind === 'audio') {
          out.audioPacketsReceived += s.packetsReceived || 0;
          // Energy of the audio played out (silence stays near 0).
          out.audioLevel = s.audioLevel || 0;
          out.totalAudioEnergy = s.totalAudioEnergy || 0;
        }
        if (s.type === 'outbound-rtp' && s.kind === 'video') {
          out.framesSent += s.framesEncoded || 0;
          // NACKs the sender got and the packets it sent again.
          out.videoNacksReceived = (out.videoNacksReceived || 0) + (s.nackCount || 0);
          out.retransmittedPacketsSent = (out.retransmittedPacketsSent || 0) + (s.retransmittedPacketsSent || 0);
          out.sentWidth = s.frameWidth;
          out.sentHeight = s.frameHeight;
          out.sentFps = s.framesPerSecond;
        }
      });
      // The certificate the server presented in the DTLS handshake.
      const certs = {};
      report.forEach((s) => { if (s.type === 'certificate') certs[s.id] = s.base64Certificate; });
      report.forEach((s) => {
        if (s.type === 'transport' && s.remoteCertificateId) out.remoteCertificate = certs[s.remoteCertificateId];
      });
      // The selected pair's candidate types ('host', 'relay', ...).
      report.forEach((s) => {
        if (s.type !== 'transport' || !s.selectedCandidatePairId) return;
        const pair = report.get(s.selectedCandidatePairId);
        const local = pair && report.get(pair.localCandidateId);
        const remote = pair && report.get(pair.remoteCandidateId);
        out.localCandidateType = local && local.candidateType;
        out.remoteCandidateType = remote && remote.candidateType;
        // 'udp' or 'tcp' (ICE-TCP).
        out.localProtocol = local && local.protocol;
        out.remoteProtocol = remote && remote.protocol;
      });
      const v = document.getElementById('remote');
      out.width = v.videoWidth;
      out.height = v.videoHeight;
      out.iceState = pc.iceConnectionState;
      return out;
    },
    // Video bitrate (bps) over `ms`: sent (outbound) or received (inbound).
    async videoBitrate(direction, ms) {
      const pc = peer.peerConnection;
      const bytes = async () => {
        let n = 0;
        (await pc.getStats()).forEach((s) => {
          if (s.type === direction && s.kind === 'video') n += direction === 'outbound-rtp' ? s.bytesSent : s.bytesReceived;
        });
        return n;
      };
      const b0 = await bytes();
      const t0 = performance.now();
      await new Promise((r) => setTimeout(r, ms));
      return ((await bytes()) - b0) * 8000 / (performance.now() - t0);
    },
    channelOpen() { return channelOpen; },
    send(text) { peer.send(text); },
    received() { return received.slice(); },
    stop() { if (peer) peer.dispose(); peer = null; },
  };
})();
