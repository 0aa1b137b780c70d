//! WebRTC load generator and benchmark driver for `ci/bench-webrtc.sh`.
//!
//! Cheap on purpose: a pre-encoded file (VP8 + Opus) is read into memory
//! once and replayed in real time from one thread into every session's
//! `webrtcbin`, so the generator spends no CPU encoding. Each session talks
//! the Kurento Protocol to the server under test like an application would
//! (create, connect, processOffer, gatherCandidates, trickle ICE).
//!
//! ```text
//! webrtc_loadgen --url ws://127.0.0.1:8888/kurento --pid <server pid>[,pid...] --file media.webm \
//!     latency [runs] | ramp <n,n,...> | transcode <n,n,...>
//! ```
//!
//! `latency`: create(MediaPipeline) → first RTP packet back, and → first
//! decoded frame, for one loopback session at a time. `ramp`: loopback
//! sessions (WebRtcEndpoint connected to itself) added step by step; per
//! step the server's CPU, RSS and threads and the received/sent ratio.
//! `transcode`: the same with sessions of two endpoints, VP8 in and H.264
//! out. `record <n,...> --dir <media root>` (`ci/bench-record.sh`): n
//! sessions sending to a WebRtcEndpoint each, measured without and then
//! with a WEBM RecorderEndpoint per session; then every recording is
//! stopped (`stopAndWait`) and its file checked with ffprobe. Results are
//! printed as Markdown table rows and JSON lines.
//!
//! `--pid` takes one pid or a comma-separated list (the nodes of a cluster,
//! `ci/bench-cluster.sh capacity`): CPU (% of one core), RSS and threads are
//! then the sums over those processes.

use parking_lot::Mutex;
use std::collections::HashMap;
use std::io::Write;
use std::net::TcpStream;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::{Receiver, Sender, channel};
use std::time::{Duration, Instant};

use gst::prelude::*;
use gst_webrtc::prelude::*;
use serde_json::{Value, json};

type Ws = tungstenite::WebSocket<tungstenite::stream::MaybeTlsStream<TcpStream>>;

// ---------------------------------------------------------------- signalling

/// A minimal Kurento Protocol client: requests by id, events by object.
struct Rpc {
    ws: Arc<Mutex<Ws>>,
    next_id: AtomicU64,
    pending: Arc<Mutex<HashMap<u64, Sender<Value>>>>,
    events: Arc<Mutex<HashMap<String, Sender<Value>>>>,
    session: Mutex<Option<String>>,
}

impl Rpc {
    fn connect(url: &str) -> Arc<Rpc> {
        let (ws, _) = tungstenite::connect(url).expect("connect to the server");
        if let tungstenite::stream::MaybeTlsStream::Plain(s) = ws.get_ref() {
            s.set_read_timeout(Some(Duration::from_millis(20))).unwrap();
            s.set_nodelay(true).unwrap();
        }
        let rpc = Arc::new(Rpc {
            ws: Arc::new(Mutex::new(ws)),
            next_id: AtomicU64::new(1),
            pending: Arc::default(),
            events: Arc::default(),
            session: Mutex::new(None),
        });
        let r = rpc.clone();
        std::thread::spawn(move || r.read_loop());
        rpc
    }

    fn read_loop(&self) {
        loop {
            let msg = {
                let mut ws = self.ws.lock();
                match ws.read() {
                    Ok(m) => m,
                    Err(tungstenite::Error::Io(e))
                        if e.kind() == std::io::ErrorKind::WouldBlock || e.kind() == std::io::ErrorKind::TimedOut =>
                    {
                        drop(ws);
                        std::thread::sleep(Duration::from_millis(1));
                        continue;
                    }
                    Err(_) => return,
                }
            };
            let text = match msg {
                tungstenite::Message::Text(t) => t.to_string(),
                tungstenite::Message::Binary(b) => String::from_utf8_lossy(&b).to_string(),
                _ => continue,
            };
            let Ok(v) = serde_json::from_str::<Value>(&text) else { continue };
            if v["method"] == "onEvent" {
                let obj = v["params"]["value"]["object"].as_str().unwrap_or_default().to_string();
                if let Some(tx) = self.events.lock().get(&obj) {
                    let _ = tx.send(v["params"]["value"].clone());
                }
                continue;
            }
            if let Some(id) = v["id"].as_u64()
                && let Some(tx) = self.pending.lock().remove(&id)
            {
                let _ = tx.send(v);
            }
        }
    }

    fn call(&self, method: &str, mut params: Value) -> Result<Value, String> {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        if let Some(s) = self.session.lock().clone() {
            params["sessionId"] = json!(s);
        }
        let (tx, rx) = channel();
        self.pending.lock().insert(id, tx);
        let req = json!({"jsonrpc": "2.0", "id": id, "method": method, "params": params});
        self.ws.lock().send(tungstenite::Message::Text(req.to_string().into())).map_err(|e| e.to_string())?;
        let resp = rx.recv_timeout(Duration::from_secs(30)).map_err(|_| format!("{method}: no response"))?;
        if let Some(e) = resp.get("error") {
            return Err(format!("{method}: {e}"));
        }
        if let Some(s) = resp["result"]["sessionId"].as_str() {
            *self.session.lock() = Some(s.to_string());
        }
        Ok(resp["result"]["value"].clone())
    }

    fn create(&self, ty: &str, ctor: Value) -> String {
        self.call("create", json!({"type": ty, "constructorParams": ctor})).unwrap().as_str().unwrap().to_string()
    }

    fn invoke(&self, obj: &str, op: &str, params: Value) -> Value {
        self.call("invoke", json!({"object": obj, "operation": op, "operationParams": params}))
            .unwrap_or_else(|e| panic!("{op}: {e}"))
    }

    fn subscribe(&self, obj: &str, ty: &str) -> Receiver<Value> {
        let (tx, rx) = channel();
        self.events.lock().insert(obj.to_string(), tx);
        self.call("subscribe", json!({"object": obj, "type": ty})).unwrap();
        rx
    }
}

// ------------------------------------------------------------------- media

/// The pre-encoded media, in memory: (duration, buffer) per frame/packet.
struct Media {
    video: Vec<(gst::ClockTime, gst::Buffer)>,
    audio: Vec<(gst::ClockTime, gst::Buffer)>,
    /// Caps of the file's video (VP8, or H.264 with its codec data).
    video_caps: gst::Caps,
}

impl Media {
    /// RTP encoding name of the file's video.
    fn codec(&self) -> &'static str {
        match self.video_caps.structure(0).map(|s| s.name().as_str()) {
            Some("video/x-h264") => "H264",
            _ => "VP8",
        }
    }
}

fn load_media(path: &str) -> Media {
    let p = gst::parse::launch(&format!(
        "filesrc location={path} ! matroskademux name=d \
         d.video_0 ! queue ! appsink name=v sync=false \
         d.audio_0 ! queue ! appsink name=a sync=false"
    ))
    .expect("demux pipeline")
    .downcast::<gst::Pipeline>()
    .unwrap();
    let bin = p.clone().upcast::<gst::Bin>();
    let pull = |name: &str| {
        let sink = bin.by_name(name).unwrap().downcast::<gst_app::AppSink>().unwrap();
        std::thread::spawn(move || {
            let mut out = vec![];
            let mut caps = None;
            while let Ok(s) = sink.pull_sample() {
                caps = caps.or_else(|| s.caps_owned());
                out.push(s.buffer_owned().unwrap());
            }
            (out, caps)
        })
    };
    p.set_state(gst::State::Playing).unwrap();
    let (v, a) = (pull("v"), pull("a"));
    let ((v, video_caps), (a, _)) = (v.join().unwrap(), a.join().unwrap());
    p.set_state(gst::State::Null).unwrap();
    let with_durations = |bufs: Vec<gst::Buffer>, default: gst::ClockTime| {
        let mut out = vec![];
        for (i, b) in bufs.iter().enumerate() {
            let d = match (b.pts(), bufs.get(i + 1).and_then(|n| n.pts())) {
                (Some(a), Some(n)) if n > a => n - a,
                _ => b.duration().unwrap_or(default),
            };
            out.push((d, b.clone()));
        }
        out
    };
    let media = Media {
        video: with_durations(v, gst::ClockTime::from_mseconds(33)),
        audio: with_durations(a, gst::ClockTime::from_mseconds(20)),
        video_caps: video_caps.expect("video caps"),
    };
    assert!(!media.video.is_empty(), "no video in {path}");
    media
}

/// Replays the media in a loop, in real time, into two appsrcs whose tees
/// feed every session.
fn start_feeder(
    media: Arc<Media>,
    vsrc: gst_app::AppSrc,
    asrc: gst_app::AppSrc,
    stop: Arc<AtomicBool>,
    keyframe: Arc<AtomicBool>,
) {
    std::thread::spawn(move || {
        let start = Instant::now();
        let (mut vi, mut ai) = (0usize, 0usize);
        let (mut vt, mut at) = (Duration::ZERO, Duration::ZERO);
        let clock = gst::SystemClock::obtain();
        let base = vsrc.base_time().unwrap_or(gst::ClockTime::ZERO);
        while !stop.load(Ordering::Relaxed) {
            let (is_video, due) = if vt <= at { (true, vt) } else { (false, at) };
            let now = start.elapsed();
            if due > now {
                std::thread::sleep(due - now);
            }
            let running = clock.time().saturating_sub(base);
            if is_video {
                // A receiver asked for a keyframe (PLI): like a live encoder,
                // answer with one now — the file's first frame.
                if keyframe.swap(false, Ordering::Relaxed) {
                    vi = vi.div_ceil(media.video.len()) * media.video.len();
                }
                let (d, b) = &media.video[vi % media.video.len()];
                let mut b = b.copy();
                {
                    let b = b.get_mut().unwrap();
                    b.set_pts(running);
                    b.set_dts(running);
                    b.set_duration(*d);
                }
                let _ = vsrc.push_buffer(b);
                vi += 1;
                vt += Duration::from_nanos(d.nseconds());
            } else {
                let (d, b) = &media.audio[ai % media.audio.len().max(1)];
                let mut b = b.copy();
                {
                    let b = b.get_mut().unwrap();
                    b.set_pts(running);
                    b.set_dts(running);
                    b.set_duration(*d);
                }
                let _ = asrc.push_buffer(b);
                ai += 1;
                at += Duration::from_nanos(d.nseconds());
            }
        }
    });
}

/// The generator's pipeline: shared sources plus one webrtcbin per peer.
struct Gen {
    pipeline: gst::Pipeline,
    vtee: gst::Element,
    atee: gst::Element,
    stop: Arc<AtomicBool>,
    keyframe: Arc<AtomicBool>,
    last_keyframe: Arc<Mutex<Option<Instant>>>,
    /// RTP encoding name of the video sent.
    codec: &'static str,
}

impl Gen {
    fn new(media: Arc<Media>) -> Gen {
        let pipeline = gst::Pipeline::new();
        let mk_src = |caps: &str| {
            gst_app::AppSrc::builder()
                .caps(&caps.parse::<gst::Caps>().unwrap())
                .is_live(true)
                .format(gst::Format::Time)
                .max_bytes(0)
                .block(false)
                .build()
        };
        let codec = media.codec();
        let vsrc = mk_src(&media.video_caps.to_string());
        let asrc = mk_src("audio/x-opus,channel-mapping-family=0,channels=2,rate=48000");
        let vtee = gst::ElementFactory::make("tee").property("allow-not-linked", true).build().unwrap();
        let atee = gst::ElementFactory::make("tee").property("allow-not-linked", true).build().unwrap();
        pipeline.add_many([vsrc.upcast_ref(), asrc.upcast_ref(), &vtee, &atee]).unwrap();
        vsrc.link(&vtee).unwrap();
        asrc.link(&atee).unwrap();
        pipeline.set_state(gst::State::Playing).unwrap();
        let stop = Arc::new(AtomicBool::new(false));
        let keyframe = Arc::new(AtomicBool::new(false));
        start_feeder(media, vsrc, asrc, stop.clone(), keyframe.clone());
        Gen { pipeline, vtee, atee, stop, keyframe, last_keyframe: Arc::default(), codec }
    }
}

impl Drop for Gen {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        let _ = self.pipeline.set_state(gst::State::Null);
    }
}

#[derive(Default)]
struct Counters {
    sent_packets: AtomicU64,
    recv_packets: AtomicU64,
    sent_frames: AtomicU64,
    recv_frames: AtomicU64,
}

fn count_probe(
    pad: &gst::Pad,
    packets: impl Fn(&Counters) -> &AtomicU64 + Send + Sync + 'static,
    frames: impl Fn(&Counters) -> &AtomicU64 + Send + Sync + 'static,
    counters: Arc<Counters>,
    video: bool,
) {
    pad.add_probe(gst::PadProbeType::BUFFER | gst::PadProbeType::BUFFER_LIST, move |_, info| {
        let one = |b: &gst::BufferRef| {
            packets(&counters).fetch_add(1, Ordering::Relaxed);
            if video
                && let Ok(m) = b.map_readable()
                && m.len() > 1
                && m[1] & 0x80 != 0
            {
                frames(&counters).fetch_add(1, Ordering::Relaxed);
            }
        };
        match &info.data {
            Some(gst::PadProbeData::Buffer(b)) => one(b),
            Some(gst::PadProbeData::BufferList(l)) => l.iter().for_each(one),
            _ => {}
        }
        gst::PadProbeReturn::Ok
    });
}

/// One WebRTC peer of the generator: sends (if `send`) the shared media,
/// receives into counting sinks (decoding video if `decode`).
struct Peer {
    webrtcbin: gst::Element,
    bin: gst::Bin,
    /// The generator's tee branches feeding this peer.
    tee_pads: Vec<(gst::Element, gst::Pad)>,
    first_packet: Arc<Mutex<Option<Instant>>>,
    first_frame: Arc<Mutex<Option<Instant>>>,
}

fn promise_reply(w: &gst::Element, signal: &str, arg: &dyn ToValue) -> Option<gst::Structure> {
    let (tx, rx) = channel();
    let p = gst::Promise::with_change_func(move |r| {
        let _ = tx.send(r.ok().flatten().map(|s| s.to_owned()));
    });
    w.emit_by_name::<()>(signal, &[arg, &p]);
    rx.recv_timeout(Duration::from_secs(10)).ok().flatten()
}

impl Peer {
    fn new(g: &Gen, send: bool, recv_codec: &str, decode: bool, counters: Arc<Counters>) -> Peer {
        let bin = gst::Bin::new();
        let w = gst::ElementFactory::make("webrtcbin")
            .property_from_str("bundle-policy", "max-bundle")
            .property("latency", 0u32)
            .build()
            .unwrap();
        if std::env::var_os("KMS_ICE_LOOPBACK_ONLY").is_some() {
            let ice = w.property::<gst_webrtc::WebRTCICE>("ice-agent");
            ice.emit_add_local_ip_address("127.0.0.1");
        }
        bin.add(&w).unwrap();
        g.pipeline.add(&bin).unwrap();
        let dir = if send {
            gst_webrtc::WebRTCRTPTransceiverDirection::Sendrecv
        } else {
            gst_webrtc::WebRTCRTPTransceiverDirection::Recvonly
        };
        let vcaps = format!(
            "application/x-rtp,media=video,encoding-name={recv_codec},payload=96,clock-rate=90000,\
             rtcp-fb-nack=true,rtcp-fb-nack-pli=true,rtcp-fb-ccm-fir=true,rtcp-fb-goog-remb=true{}",
            if recv_codec == "H264" { ",packetization-mode=(string)1,profile-level-id=(string)42e01f" } else { "" }
        );
        let acaps =
            "application/x-rtp,media=audio,encoding-name=OPUS,payload=111,clock-rate=48000,encoding-params=(string)2";
        // Senders: a requested sink pad per stream (its transceiver comes
        // with it); receivers: recvonly transceivers.
        let send_pads: Vec<gst::Pad> = [vcaps.as_str(), acaps]
            .iter()
            .filter_map(|caps| {
                let caps: gst::Caps = caps.parse().unwrap();
                if send {
                    let templ = w.pad_template("sink_%u").unwrap();
                    let pad = w.request_pad(&templ, None, Some(&caps)).unwrap();
                    let t = pad.property::<gst_webrtc::WebRTCRTPTransceiver>("transceiver");
                    t.set_direction(dir);
                    t.set_codec_preferences(Some(&caps));
                    Some(pad)
                } else {
                    w.emit_by_name::<gst_webrtc::WebRTCRTPTransceiver>("add-transceiver", &[&dir, &caps]);
                    None
                }
            })
            .collect();
        let first_packet: Arc<Mutex<Option<Instant>>> = Arc::default();
        let first_frame: Arc<Mutex<Option<Instant>>> = Arc::default();
        let (fp, ff, c, b) = (first_packet.clone(), first_frame.clone(), counters.clone(), bin.clone());
        let codec = recv_codec.to_string();
        w.connect_pad_added(move |_, pad| {
            if pad.direction() != gst::PadDirection::Src {
                return;
            }
            let caps = pad.current_caps().or_else(|| Some(pad.query_caps(None)));
            let video =
                caps.as_ref().and_then(|c| c.structure(0)).and_then(|s| s.get::<&str>("media").ok()) == Some("video");
            let fp2 = fp.clone();
            pad.add_probe(gst::PadProbeType::BUFFER | gst::PadProbeType::BUFFER_LIST, move |_, _| {
                fp2.lock().get_or_insert_with(Instant::now);
                if std::env::var_os("LOADGEN_DEBUG").is_some() {
                    eprintln!("first {} packet at {:?}", if video { "video" } else { "audio" }, Instant::now());
                }
                gst::PadProbeReturn::Remove
            });
            count_probe(pad, |c| &c.recv_packets, |c| &c.recv_frames, c.clone(), video);
            let sink = if video && decode {
                let desc = if codec == "H264" {
                    "rtph264depay ! avdec_h264 ! fakesink name=s async=false sync=false"
                } else {
                    "rtpvp8depay ! vp8dec ! fakesink name=s async=false sync=false"
                };
                let d = gst::parse::bin_from_description(desc, true).unwrap();
                let ff2 = ff.clone();
                d.by_name("s").unwrap().static_pad("sink").unwrap().add_probe(
                    gst::PadProbeType::BUFFER,
                    move |_, _| {
                        ff2.lock().get_or_insert_with(Instant::now);
                        if std::env::var_os("LOADGEN_DEBUG").is_some() {
                            eprintln!("first frame at {:?}", Instant::now());
                        }
                        gst::PadProbeReturn::Remove
                    },
                );
                d.upcast::<gst::Element>()
            } else {
                gst::ElementFactory::make("fakesink").property("async", false).property("sync", false).build().unwrap()
            };
            b.add(&sink).unwrap();
            sink.sync_state_with_parent().unwrap();
            let _ = pad.link(&sink.static_pad("sink").unwrap());
        });
        bin.sync_state_with_parent().unwrap();
        let mut tee_pads = vec![];
        if send {
            // A live encoder starts with a keyframe once the transport is up.
            let kf = g.keyframe.clone();
            let t0 = Instant::now();
            w.connect_notify(Some("connection-state"), move |w, _| {
                if w.property::<gst_webrtc::WebRTCPeerConnectionState>("connection-state")
                    == gst_webrtc::WebRTCPeerConnectionState::Connected
                {
                    if std::env::var_os("LOADGEN_DEBUG").is_some() {
                        eprintln!("connected after {:?}", t0.elapsed());
                    }
                    kf.store(true, Ordering::Relaxed);
                }
            });
            let vpay = if g.codec == "H264" {
                "h264parse config-interval=-1 ! video/x-h264,stream-format=byte-stream,alignment=au ! rtph264pay config-interval=-1 aggregate-mode=zero-latency"
            } else {
                "rtpvp8pay picture-id-mode=15-bit"
            };
            for (tee, pay, pt, idx) in [(&g.vtee, vpay, 96u32, 0u32), (&g.atee, "rtpopuspay", 111, 1)] {
                // Short and leaky: while webrtcbin holds its input (until
                // negotiated), stale frames are dropped, not bunched up.
                let q = gst::ElementFactory::make("queue")
                    .property("max-size-buffers", 3u32)
                    .property("max-size-bytes", 0u32)
                    .property("max-size-time", 0u64)
                    .property_from_str("leaky", "downstream")
                    .build()
                    .unwrap();
                let pay = gst::parse::bin_from_description(&format!("{pay} pt={pt} mtu=1200"), true).unwrap();
                bin.add_many([&q, pay.upcast_ref()]).unwrap();
                q.link(&pay).unwrap();
                let sinkpad = &send_pads[idx as usize];
                let pay_src = pay.static_pad("src").unwrap();
                pay_src.link(sinkpad).unwrap();
                count_probe(&pay_src, |c| &c.sent_packets, |c| &c.sent_frames, counters.clone(), idx == 0);
                if idx == 0 {
                    let (kf, last) = (g.keyframe.clone(), g.last_keyframe.clone());
                    pay_src.add_probe(gst::PadProbeType::EVENT_UPSTREAM, move |_, info| {
                        if let Some(gst::PadProbeData::Event(ev)) = &info.data
                            && ev.structure().is_some_and(|s| s.name() == "GstForceKeyUnit")
                        {
                            let mut l = last.lock();
                            if l.is_none_or(|t| t.elapsed() > Duration::from_millis(300)) {
                                *l = Some(Instant::now());
                                kf.store(true, Ordering::Relaxed);
                            }
                        }
                        gst::PadProbeReturn::Ok
                    });
                }
                q.sync_state_with_parent().unwrap();
                pay.sync_state_with_parent().unwrap();
                let ghost = gst::GhostPad::builder_with_target(&q.static_pad("sink").unwrap())
                    .unwrap()
                    .name(format!("in_{idx}"))
                    .build();
                ghost.set_active(true).unwrap();
                bin.add_pad(&ghost).unwrap();
                let tee_pad = tee.request_pad_simple("src_%u").unwrap();
                tee_pad.link(&ghost).unwrap();
                tee_pads.push((tee.clone(), tee_pad));
            }
        }
        Peer { webrtcbin: w, bin, tee_pads, first_packet, first_frame }
    }

    /// Offer, answer from the endpoint, trickle ICE both ways.
    fn negotiate(&self, rpc: &Arc<Rpc>, ep: &str) {
        let w = &self.webrtcbin;
        let events = rpc.subscribe(ep, "IceCandidateFound");
        let (r, e) = (rpc.clone(), ep.to_string());
        w.connect("on-ice-candidate", false, move |a| {
            let idx = a[1].get::<u32>().unwrap();
            let cand = a[2].get::<String>().unwrap();
            let (r, e) = (r.clone(), e.clone());
            // Off webrtcbin's thread: the call waits for the server.
            std::thread::spawn(move || {
                let _ = r.call(
                    "invoke",
                    json!({"object": e, "operation": "addIceCandidate", "operationParams":
                        {"candidate": {"candidate": cand, "sdpMid": idx.to_string(), "sdpMLineIndex": idx}}}),
                );
            });
            None
        });
        let offer = promise_reply(w, "create-offer", &None::<gst::Structure>)
            .unwrap()
            .get::<gst_webrtc::WebRTCSessionDescription>("offer")
            .unwrap();
        let text = offer.sdp().as_text().unwrap();
        promise_reply(w, "set-local-description", &offer);
        let answer = rpc.invoke(ep, "processOffer", json!({"offer": text}));
        let sdp = gst_sdp::SDPMessage::parse_buffer(answer.as_str().unwrap().as_bytes()).unwrap();
        let desc = gst_webrtc::WebRTCSessionDescription::new(gst_webrtc::WebRTCSDPType::Answer, sdp);
        promise_reply(w, "set-remote-description", &desc);
        rpc.invoke(ep, "gatherCandidates", json!({}));
        let w2 = w.clone();
        std::thread::spawn(move || {
            while let Ok(ev) = events.recv_timeout(Duration::from_secs(60)) {
                let c = &ev["data"]["candidate"];
                let idx = c["sdpMLineIndex"].as_u64().unwrap_or(0) as u32;
                let cand = c["candidate"].as_str().unwrap_or_default().to_string();
                w2.emit_by_name::<()>("add-ice-candidate", &[&idx, &cand]);
            }
        });
    }

    fn close(&self, g: &Gen) {
        // Off the shared tees first: a push into a bin going to NULL
        // returns FLUSHING, which would stop the generator for every peer.
        for (tee, pad) in &self.tee_pads {
            tee.release_request_pad(pad);
        }
        let _ = self.bin.set_state(gst::State::Null);
        let _ = g.pipeline.remove(&self.bin);
    }
}

// ------------------------------------------------------------ measurements

#[derive(Debug, Clone, Copy)]
struct Proc {
    cpu_ticks: u64,
    rss_kib: u64,
    threads: u64,
}

/// The sum over `pids` (CPU ticks, RSS, threads).
fn proc_sample(pids: &[u32]) -> Proc {
    pids.iter().map(|&p| proc_sample_one(p)).fold(Proc { cpu_ticks: 0, rss_kib: 0, threads: 0 }, |a, b| Proc {
        cpu_ticks: a.cpu_ticks + b.cpu_ticks,
        rss_kib: a.rss_kib + b.rss_kib,
        threads: a.threads + b.threads,
    })
}

fn proc_sample_one(pid: u32) -> Proc {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let after = stat.rsplit(')').next().unwrap_or_default();
    let f: Vec<&str> = after.split_whitespace().collect();
    let cpu_ticks = f.get(11).and_then(|v| v.parse::<u64>().ok()).unwrap_or(0)
        + f.get(12).and_then(|v| v.parse::<u64>().ok()).unwrap_or(0);
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let field = |k: &str| {
        status
            .lines()
            .find(|l| l.starts_with(k))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|v| v.parse::<u64>().ok())
            .unwrap_or(0)
    };
    Proc { cpu_ticks, rss_kib: field("VmRSS:"), threads: field("Threads:") }
}

fn ticks_per_sec() -> f64 {
    // SAFETY: sysconf has no preconditions.
    (unsafe { libc::sysconf(libc::_SC_CLK_TCK) }) as f64
}

fn percentile(v: &mut [f64], p: f64) -> f64 {
    v.sort_by(|a, b| a.partial_cmp(b).unwrap());
    v[((v.len() as f64 - 1.0) * p).round() as usize]
}

// --------------------------------------------------------------- scenarios

struct Session {
    pipeline: String,
    peers: Vec<Peer>,
}

fn loopback_session(rpc: &Arc<Rpc>, g: &Gen, counters: &Arc<Counters>, decode: bool) -> Session {
    let p = rpc.create("MediaPipeline", json!({}));
    let ep = rpc.create("WebRtcEndpoint", json!({"mediaPipeline": p}));
    rpc.invoke(&ep, "connect", json!({"sink": ep}));
    let peer = Peer::new(g, true, g.codec, decode, counters.clone());
    peer.negotiate(rpc, &ep);
    Session { pipeline: p, peers: vec![peer] }
}

fn transcode_session(rpc: &Arc<Rpc>, g: &Gen, counters: &Arc<Counters>) -> Session {
    let p = rpc.create("MediaPipeline", json!({}));
    let a = rpc.create("WebRtcEndpoint", json!({"mediaPipeline": p}));
    let b = rpc.create("WebRtcEndpoint", json!({"mediaPipeline": p}));
    rpc.invoke(&a, "connect", json!({"sink": b}));
    let sender = Peer::new(g, true, g.codec, false, counters.clone());
    sender.negotiate(rpc, &a);
    // The receiver accepts only the other codec: the server transcodes.
    let other = if g.codec == "H264" { "VP8" } else { "H264" };
    let receiver = Peer::new(g, false, other, false, counters.clone());
    receiver.negotiate(rpc, &b);
    Session { pipeline: p, peers: vec![sender, receiver] }
}

fn release(rpc: &Arc<Rpc>, g: &Gen, s: Session) {
    let _ = rpc.call("release", json!({"object": s.pipeline}));
    for p in s.peers {
        p.close(g);
    }
}

fn latency(rpc: &Arc<Rpc>, g: &Gen, runs: usize) {
    let (mut pkt, mut frame) = (vec![], vec![]);
    for _ in 0..runs {
        let counters = Arc::new(Counters::default());
        let t0 = Instant::now();
        let s = loopback_session(rpc, g, &counters, true);
        let deadline = Instant::now() + Duration::from_secs(10);
        let peer = &s.peers[0];
        while Instant::now() < deadline && peer.first_frame.lock().is_none() {
            std::thread::sleep(Duration::from_millis(2));
        }
        if let Some(t) = *peer.first_packet.lock() {
            pkt.push((t - t0).as_secs_f64() * 1000.0);
        }
        if let Some(t) = *peer.first_frame.lock() {
            frame.push((t - t0).as_secs_f64() * 1000.0);
        }
        if std::env::var_os("LOADGEN_DEBUG").is_some() {
            eprintln!(
                "run: sent {} pkts/{} frames, received {} pkts/{} frames",
                counters.sent_packets.load(Ordering::Relaxed),
                counters.sent_frames.load(Ordering::Relaxed),
                counters.recv_packets.load(Ordering::Relaxed),
                counters.recv_frames.load(Ordering::Relaxed)
            );
        }
        release(rpc, g, s);
        std::thread::sleep(Duration::from_millis(200));
    }
    let report = |name: &str, v: &mut Vec<f64>| {
        if v.is_empty() {
            println!("| {name} | no data | | |");
            return;
        }
        let (p50, p90, max) = (percentile(v, 0.5), percentile(v, 0.9), percentile(v, 1.0));
        println!("| {name} | {p50:.0} ms | {p90:.0} ms | {max:.0} ms | {}/{runs} |", v.len());
        println!("{}", json!({"metric": name, "p50_ms": p50, "p90_ms": p90, "max_ms": max, "runs": v.len()}));
    };
    println!("| setup latency (create MediaPipeline →) | p50 | p90 | max | ok runs |");
    println!("| --- | --- | --- | --- | --- |");
    report("first returned RTP packet", &mut pkt);
    report("first decoded frame", &mut frame);
}

fn ramp(rpc: &Arc<Rpc>, g: &Gen, pid: &[u32], steps: &[usize], transcode: bool, window: Duration) {
    let tps = ticks_per_sec();
    let idle = proc_sample(pid);
    println!(
        "| {} sessions | server CPU (% of one core) | per session | RSS MiB | per session | threads | per session | received/sent |",
        if transcode { "transcoding" } else { "loopback" }
    );
    println!("| --- | --- | --- | --- | --- | --- | --- | --- |");
    let counters = Arc::new(Counters::default());
    let mut sessions: Vec<Session> = vec![];
    for &n in steps {
        while sessions.len() < n {
            let s = if transcode {
                transcode_session(rpc, g, &counters)
            } else {
                loopback_session(rpc, g, &counters, false)
            };
            sessions.push(s);
        }
        // Let ICE/DTLS settle and keyframes arrive before measuring.
        std::thread::sleep(Duration::from_secs(4));
        let load = |c: &Counters| {
            if transcode {
                (c.sent_frames.load(Ordering::Relaxed), c.recv_frames.load(Ordering::Relaxed))
            } else {
                (c.sent_packets.load(Ordering::Relaxed), c.recv_packets.load(Ordering::Relaxed))
            }
        };
        let before = proc_sample(pid);
        let (s0, r0) = load(&counters);
        let t0 = Instant::now();
        std::thread::sleep(window);
        let after = proc_sample(pid);
        let (s1, r1) = load(&counters);
        let secs = t0.elapsed().as_secs_f64();
        let cpu = (after.cpu_ticks - before.cpu_ticks) as f64 / tps / secs * 100.0;
        let idle_cpu = 0.0;
        let rss = after.rss_kib as f64 / 1024.0;
        let ratio = if s1 > s0 { (r1 - r0) as f64 / (s1 - s0) as f64 } else { 0.0 };
        let nf = n as f64;
        println!(
            "| {n} | {cpu:.1} | {:.2} | {rss:.0} | {:.2} | {} | {:.1} | {ratio:.3} |",
            (cpu - idle_cpu) / nf,
            (after.rss_kib.saturating_sub(idle.rss_kib)) as f64 / 1024.0 / nf,
            after.threads,
            (after.threads.saturating_sub(idle.threads)) as f64 / nf,
        );
        println!(
            "{}",
            json!({"mode": if transcode {"transcode"} else {"loopback"}, "sessions": n, "cpu_pct": cpu,
                "cpu_pct_per_session": cpu / nf, "rss_mib": rss,
                "rss_mib_per_session": (after.rss_kib.saturating_sub(idle.rss_kib)) as f64 / 1024.0 / nf,
                "threads": after.threads, "threads_per_session": (after.threads.saturating_sub(idle.threads)) as f64 / nf,
                "ratio": ratio})
        );
        let _ = std::io::stdout().flush();
    }
    for s in sessions {
        release(rpc, g, s);
    }
}

/// Server CPU (% of one core) over `window`, and the process at its end.
fn measure(pid: &[u32], window: Duration) -> (f64, Proc) {
    let before = proc_sample(pid);
    let t0 = Instant::now();
    std::thread::sleep(window);
    let after = proc_sample(pid);
    let cpu = (after.cpu_ticks - before.cpu_ticks) as f64 / ticks_per_sec() / t0.elapsed().as_secs_f64() * 100.0;
    (cpu, after)
}

/// Duration (s) in a file's header, per ffprobe.
fn probed_duration(path: &str) -> Option<f64> {
    let out = std::process::Command::new("ffprobe")
        .args(["-v", "error", "-show_entries", "format=duration", "-of", "csv=p=0", path])
        .output()
        .ok()?;
    String::from_utf8_lossy(&out.stdout).trim().parse().ok()
}

fn record(rpc: &Arc<Rpc>, g: &Gen, pid: &[u32], steps: &[usize], window: Duration, dir: &str) {
    println!(
        "| recordings | server CPU, streams only (% of one core) | with recording | per recording | RSS MiB per recording | threads per recording | stopAndWait p50 / max | finalized |"
    );
    println!("| --- | --- | --- | --- | --- | --- | --- | --- |");
    for &n in steps {
        let counters = Arc::new(Counters::default());
        let mut sessions = vec![];
        let mut endpoints = vec![];
        for _ in 0..n {
            let p = rpc.create("MediaPipeline", json!({}));
            let ep = rpc.create("WebRtcEndpoint", json!({"mediaPipeline": p}));
            let peer = Peer::new(g, true, g.codec, false, counters.clone());
            peer.negotiate(rpc, &ep);
            endpoints.push((p.clone(), ep));
            sessions.push(Session { pipeline: p, peers: vec![peer] });
        }
        std::thread::sleep(Duration::from_secs(4));
        let (base_cpu, base) = measure(pid, window);
        let mut recs = vec![];
        for (i, (p, ep)) in endpoints.iter().enumerate() {
            let path = format!("{dir}/bench-{n}-{i}.webm");
            let r = rpc.create(
                "RecorderEndpoint",
                json!({"mediaPipeline": p, "uri": format!("file://{path}"), "mediaProfile": "WEBM"}),
            );
            rpc.invoke(ep, "connect", json!({"sink": r}));
            recs.push((r, path));
        }
        for (r, _) in &recs {
            rpc.invoke(r, "record", json!({}));
        }
        std::thread::sleep(Duration::from_secs(4));
        let (cpu, after) = measure(pid, window);
        let mut waits = vec![];
        for (r, _) in &recs {
            let t0 = Instant::now();
            rpc.invoke(r, "stopAndWait", json!({}));
            waits.push(t0.elapsed().as_secs_f64() * 1000.0);
        }
        let min_len = window.as_secs_f64();
        let finalized = recs.iter().filter(|(_, p)| probed_duration(p).is_some_and(|d| d >= min_len)).count();
        let nf = n as f64;
        let per_cpu = (cpu - base_cpu) / nf;
        let per_rss = after.rss_kib.saturating_sub(base.rss_kib) as f64 / 1024.0 / nf;
        let per_threads = (after.threads as f64 - base.threads as f64) / nf;
        let (p50, max) = (percentile(&mut waits.clone(), 0.5), percentile(&mut waits, 1.0));
        println!(
            "| {n} | {base_cpu:.1} | {cpu:.1} | {per_cpu:.2} | {per_rss:.2} | {per_threads:.1} | {p50:.0} ms / {max:.0} ms | {finalized}/{n} |"
        );
        println!(
            "{}",
            json!({"mode": "record", "recordings": n, "cpu_pct_streams": base_cpu, "cpu_pct": cpu,
                "cpu_pct_per_recording": per_cpu, "rss_mib_per_recording": per_rss,
                "threads_per_recording": per_threads, "stop_ms_p50": p50, "stop_ms_max": max, "finalized": finalized})
        );
        let _ = std::io::stdout().flush();
        for s in sessions {
            release(rpc, g, s);
        }
        for (_, p) in &recs {
            let _ = std::fs::remove_file(p);
        }
    }
}

/// `one2many <n,...>` (`ci/bench-dispatcher.sh`): one sending session into
/// a WebRtcEndpoint, broadcast to `n` receiving sessions through a
/// DispatcherOneToMany (a HubPort and a WebRtcEndpoint per viewer) or, with
/// `--direct`, by connecting the source endpoint to each viewer's endpoint
/// (the plain one-to-many baseline). Per step: server CPU, RSS, threads,
/// received/sent packets per viewer and the decoders in the pipeline's
/// GStreamer graph.
fn one_to_many(rpc: &Arc<Rpc>, g: &Gen, pid: &[u32], steps: &[usize], window: Duration, direct: bool) {
    let idle = proc_sample(pid);
    let counters = Arc::new(Counters::default());
    let p = rpc.create("MediaPipeline", json!({}));
    let src = rpc.create("WebRtcEndpoint", json!({"mediaPipeline": p}));
    let hub = (!direct).then(|| rpc.create("DispatcherOneToMany", json!({"mediaPipeline": p})));
    if let Some(hub) = &hub {
        let port = rpc.create("HubPort", json!({"hub": hub}));
        rpc.invoke(&src, "connect", json!({"sink": port}));
        rpc.invoke(hub, "setSource", json!({"source": port}));
    }
    let sender = Peer::new(g, true, g.codec, false, counters.clone());
    sender.negotiate(rpc, &src);
    std::thread::sleep(Duration::from_secs(2));
    let (base_cpu, base) = measure(pid, window);
    println!(
        "| viewers ({}) | server CPU (% of one core) | per viewer | RSS MiB | per viewer | threads | per viewer | received/sent per viewer | decoders |",
        if direct { "direct connect" } else { "DispatcherOneToMany" }
    );
    println!("| --- | --- | --- | --- | --- | --- | --- | --- | --- |");
    println!("| 0 (source only) | {base_cpu:.1} | | {:.0} | | {} | | | |", base.rss_kib as f64 / 1024.0, base.threads);
    let mut viewers: Vec<Peer> = vec![];
    for &n in steps {
        while viewers.len() < n {
            let ep = rpc.create("WebRtcEndpoint", json!({"mediaPipeline": p}));
            match &hub {
                Some(hub) => {
                    let port = rpc.create("HubPort", json!({"hub": hub}));
                    rpc.invoke(&port, "connect", json!({"sink": ep}));
                }
                None => {
                    rpc.invoke(&src, "connect", json!({"sink": ep}));
                }
            }
            let peer = Peer::new(g, false, g.codec, false, counters.clone());
            peer.negotiate(rpc, &ep);
            viewers.push(peer);
        }
        std::thread::sleep(Duration::from_secs(4));
        let (s0, r0) = (counters.sent_packets.load(Ordering::Relaxed), counters.recv_packets.load(Ordering::Relaxed));
        let (cpu, after) = measure(pid, window);
        let (s1, r1) = (counters.sent_packets.load(Ordering::Relaxed), counters.recv_packets.load(Ordering::Relaxed));
        let nf = n as f64;
        let ratio = if s1 > s0 { (r1 - r0) as f64 / (s1 - s0) as f64 / nf } else { 0.0 };
        let dot = rpc.invoke(&p, "getGstreamerDot", json!({}));
        let decoder_types = decoders_in(dot.as_str().unwrap_or_default());
        let decoders = decoder_types.len();
        let per_cpu = (cpu - base_cpu) / nf;
        let per_rss = after.rss_kib.saturating_sub(base.rss_kib) as f64 / 1024.0 / nf;
        let per_threads = (after.threads as f64 - base.threads as f64) / nf;
        println!(
            "| {n} | {cpu:.1} | {per_cpu:.2} | {:.0} | {per_rss:.2} | {} | {per_threads:.1} | {ratio:.3} | {} |",
            after.rss_kib as f64 / 1024.0,
            after.threads,
            decoders
        );
        println!(
            "{}",
            json!({"mode": if direct {"one2many-direct"} else {"one2many-hub"}, "viewers": n, "cpu_pct": cpu,
                "cpu_pct_per_viewer": per_cpu, "rss_mib": after.rss_kib as f64 / 1024.0, "rss_mib_per_viewer": per_rss,
                "threads": after.threads, "threads_per_viewer": per_threads, "ratio": ratio,
                "decoders": decoders, "decoder_types": decoder_types, "idle_rss_mib": idle.rss_kib as f64 / 1024.0})
        );
        let _ = std::io::stdout().flush();
    }
    release(rpc, g, Session { pipeline: p, peers: std::iter::once(sender).chain(viewers).collect() });
}

/// Media decoder elements in a GStreamer dot graph: each element is a cluster
/// labelled `"<type>\\n<name>"`.
fn decoders_in(dot: &str) -> Vec<String> {
    dot.lines()
        .filter_map(|l| l.trim().strip_prefix("label=\""))
        .filter_map(|l| l.split("\\n").next())
        // Media decoders, not webrtcbin's DTLS/SRTP and FEC/RED "decoders".
        .filter(|ty| {
            ty.starts_with("avdec_")
                || ty.ends_with("Dec") && !ty.starts_with("GstRtp") && !ty.contains("Srtp") && !ty.contains("Dtls")
        })
        .map(str::to_string)
        .collect()
}

fn main() {
    gst::init().unwrap();
    let args: Vec<String> = std::env::args().skip(1).collect();
    let opt = |k: &str| args.iter().position(|a| a == k).and_then(|i| args.get(i + 1)).cloned();
    let url = opt("--url").unwrap_or_else(|| "ws://127.0.0.1:8888/kurento".into());
    let pid: Vec<u32> = opt("--pid")
        .and_then(|p| p.split(',').map(|p| p.trim().parse().ok()).collect::<Option<Vec<u32>>>())
        .filter(|p| !p.is_empty())
        .expect("--pid <server pid>[,pid...]");
    let file = opt("--file").expect("--file <vp8+opus webm>");
    let window = Duration::from_secs(opt("--window").and_then(|w| w.parse().ok()).unwrap_or(10));
    let mode_at = args
        .iter()
        .position(|a| ["latency", "ramp", "transcode", "record", "one2many"].contains(&a.as_str()))
        .expect("mode");
    let mode = args[mode_at].as_str();
    let param = args.get(mode_at + 1).cloned().unwrap_or_default();
    let steps: Vec<usize> = param.split(',').filter_map(|s| s.parse().ok()).collect();
    let media = Arc::new(load_media(&file));
    let g = Gen::new(media);
    let rpc = Rpc::connect(&url);
    match mode {
        "latency" => latency(&rpc, &g, steps.first().copied().unwrap_or(20)),
        "ramp" => ramp(&rpc, &g, &pid, &steps, false, window),
        "record" => record(&rpc, &g, &pid, &steps, window, &opt("--dir").expect("--dir <media root>")),
        "one2many" => one_to_many(&rpc, &g, &pid, &steps, window, args.iter().any(|a| a == "--direct")),
        _ => ramp(&rpc, &g, &pid, &steps, true, window),
    }
}
