//! RTSP sink read by real clients: ffprobe, ffmpeg over TCP, GStreamer rtspsrc over UDP.

mod common;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::process::{Command, Output, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use common::bgr_frame;
use telescope::{
    BasicAuth, Rate, RtspServer, RtspServerConfig, SinkConfig, Telescope, TelescopeConfig,
};

const W: u32 = 320;
const H: u32 = 240;

fn server(auth: Option<BasicAuth>) -> RtspServer {
    RtspServer::start(RtspServerConfig {
        address: "127.0.0.1".into(),
        port: 0,
        auth,
    })
    .unwrap()
}

fn telescope(sink: SinkConfig) -> Arc<Telescope> {
    let config = TelescopeConfig::builder()
        .fps(Rate::whole(15).unwrap())
        .size(W, H)
        .sink(sink)
        .build();
    Arc::new(Telescope::new(config).unwrap())
}

/// A camera: puts frames at 15 fps until told to stop, at most 60 s.
struct Camera {
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<u64>>,
}

impl Camera {
    fn start(t: Arc<Telescope>) -> Camera {
        Camera::paced(t, |n| Duration::from_millis(n * 1000 / 15))
    }

    /// A camera whose frame `n` is due `due(n)` after it starts (at most 900 frames).
    fn paced(t: Arc<Telescope>, mut due: impl FnMut(u64) -> Duration + Send + 'static) -> Camera {
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let thread = std::thread::spawn(move || {
            let begin = Instant::now();
            let mut n = 0u64;
            while !flag.load(Ordering::Relaxed) && n < 900 {
                let due = begin + due(n);
                if let Some(wait) = due.checked_duration_since(Instant::now()) {
                    std::thread::sleep(wait); // paces the simulated camera, not a synchronisation
                }
                t.put(bgr_frame(W, H, n, begin.elapsed()));
                n += 1;
            }
            n
        });
        Camera {
            stop,
            thread: Some(thread),
        }
    }

    fn finish(mut self) -> u64 {
        self.stop.store(true, Ordering::Relaxed);
        self.thread.take().map(|t| t.join().unwrap()).unwrap_or(0)
    }
}

impl Drop for Camera {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Decode `frames` frames over TCP with ffmpeg into raw gray pixels; returns the bytes.
fn ffmpeg_tcp(url: &str, frames: u32) -> std::process::Child {
    Command::new("timeout")
        .args([
            "60",
            "ffmpeg",
            "-v",
            "error",
            "-nostdin",
            "-rtsp_transport",
            "tcp",
            "-i",
            url,
        ])
        .args([
            "-frames:v",
            &frames.to_string(),
            "-f",
            "rawvideo",
            "-pix_fmt",
            "gray",
            "-",
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

/// Decode `frames` frames over UDP with GStreamer; the caps filter fails unless they are WxH.
fn gst_udp(url: &str, frames: u32) -> std::process::Child {
    Command::new("timeout")
        .args(["60", "gst-launch-1.0", "rtspsrc"])
        .arg(format!("location={url}"))
        .args([
            "protocols=udp",
            "!",
            "rtph264depay",
            "!",
            "h264parse",
            "!",
            "avdec_h264",
            "!",
            "videoconvert",
            "!",
        ])
        .arg(format!("video/x-raw,width={W},height={H}"))
        .args(["!", "fakesink", &format!("num-buffers={frames}")])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

fn ffprobe(url: &str) -> Output {
    Command::new("timeout")
        .args([
            "60",
            "ffprobe",
            "-v",
            "error",
            "-rtsp_transport",
            "tcp",
            "-select_streams",
            "v:0",
        ])
        .args([
            "-show_entries",
            "stream=codec_name,width,height",
            "-of",
            "csv=p=0",
            url,
        ])
        .output()
        .unwrap()
}

/// A GStreamer client that reached end of stream decoded all its frames (the caps filter fails
/// the pipeline on any other size). rtspsrc sometimes finds the control connection already
/// closed when it sends its teardown after EOS; that late error does not undo the frames.
fn decoded(output: &Output, what: &str) {
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    let late_teardown =
        stdout.contains("Got EOS from element") && stderr.contains("Received end-of-file");
    assert!(
        output.status.success() || late_teardown,
        "{what} failed: {stdout}{stderr}"
    );
}

fn ok(output: &Output, what: &str) {
    assert!(
        output.status.success(),
        "{what} failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
}

#[test]
fn several_clients_over_tcp_and_udp_decode_frames_of_the_right_size() {
    let server = server(None);
    // No leading slash: normalised to /cam.
    let mount = server.mount("cam").unwrap();
    assert_eq!(mount.path(), "/cam");
    assert_eq!(
        mount.url(),
        format!("rtsp://127.0.0.1:{}/cam", server.port())
    );
    assert!(server.mount("/cam/").is_err(), "a mount path is taken once");
    let t = telescope(SinkConfig::rtsp(mount.clone()));
    t.start().unwrap();
    let camera = Camera::start(t.clone());

    let probe = ffprobe(mount.url());
    ok(&probe, "ffprobe");
    assert_eq!(
        String::from_utf8_lossy(&probe.stdout).trim(),
        format!("h264,{W},{H}")
    );

    let clients = [
        ffmpeg_tcp(mount.url(), 20),
        ffmpeg_tcp(mount.url(), 20),
        gst_udp(mount.url(), 20),
        gst_udp(mount.url(), 20),
    ];
    let outputs: Vec<Output> = clients
        .into_iter()
        .map(|c| c.wait_with_output().unwrap())
        .collect();
    for (i, out) in outputs.iter().enumerate() {
        if i < 2 {
            ok(out, &format!("client {i}"));
        } else {
            decoded(out, &format!("client {i}"));
        }
    }
    for out in &outputs[..2] {
        assert_eq!(
            out.stdout.len(),
            (20 * W * H) as usize,
            "ffmpeg decoded 20 frames of {W}x{H}"
        );
    }
    let stats = server.stats();
    assert!(stats.clients_total >= 5, "{stats:?}");
    assert_eq!(stats.mounts.len(), 1);
    assert!(
        stats.mounts[0].delivered > 0,
        "access units reached the media"
    );
    assert!(
        stats.mounts[0].medias <= 1,
        "one shared media for every viewer: {stats:?}"
    );
    let frames = camera.finish();
    assert!(frames > 0);
    t.stop().unwrap();
}

#[test]
fn basic_auth_refuses_missing_and_wrong_credentials() {
    let server = server(Some(BasicAuth::new("viewer", "s3cret-pass")));
    let mount = server.mount("/secure").unwrap();
    let t = telescope(SinkConfig::rtsp(mount.clone()));
    t.start().unwrap();
    let camera = Camera::start(t.clone());
    let port = server.port();

    let none = ffprobe(mount.url());
    assert!(!none.status.success(), "no credentials must be refused");
    let wrong = ffprobe(&format!("rtsp://viewer:guess@127.0.0.1:{port}/secure"));
    assert!(!wrong.status.success(), "wrong credentials must be refused");
    assert!(
        String::from_utf8_lossy(&wrong.stderr).contains("401"),
        "{}",
        String::from_utf8_lossy(&wrong.stderr)
    );
    let right = ffprobe(&format!(
        "rtsp://viewer:s3cret-pass@127.0.0.1:{port}/secure"
    ));
    ok(&right, "ffprobe with the right credentials");
    assert_eq!(
        String::from_utf8_lossy(&right.stdout).trim(),
        format!("h264,{W},{H}")
    );

    let stats = server.stats();
    assert!(stats.auth_failures >= 1, "{stats:?}");
    assert!(stats.auth_challenges >= 1, "{stats:?}");
    assert!(!format!("{server:?} {:?}", BasicAuth::new("u", "s3cret-pass")).contains("s3cret"));
    camera.finish();
    t.stop().unwrap();
}

#[test]
fn viewers_stay_connected_while_the_telescope_restarts() {
    let server = server(None);
    let mount = server.mount("/restart").unwrap();
    let t = telescope(SinkConfig::rtsp(mount.clone()));
    t.start().unwrap();
    let camera = Camera::start(t.clone());
    // The client needs 60 frames (4 s at 15 fps); the Telescope restarts while it reads.
    let client = gst_udp(mount.url(), 60);
    assert!(telescope::wait_for(&t, Duration::from_secs(30), |_| server
        .stats()
        .mounts[0]
        .medias
        == 1));
    let before = server.stats().mounts[0].delivered;
    assert!(telescope::wait_for(&t, Duration::from_secs(30), |_| server
        .stats()
        .mounts[0]
        .delivered
        >= before + 10));
    t.stop().unwrap();
    t.start().unwrap();
    let out = client.wait_with_output().unwrap();
    decoded(&out, "client across a restart");
    // The viewer may have left by now (its media then goes), but no second media was made.
    assert_eq!(
        server.stats().mounts[0].medias_total,
        1,
        "the same media kept serving"
    );
    camera.finish();
    t.stop().unwrap();
}

#[test]
fn a_busy_port_is_a_clear_error_and_mounts_come_and_go() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let err = RtspServer::start(RtspServerConfig {
        address: "127.0.0.1".into(),
        port,
        auth: None,
    })
    .unwrap_err();
    assert!(err.to_string().contains(&port.to_string()), "{err}");

    let server = server(None);
    let a = server.mount("/a").unwrap();
    server.unmount("a").unwrap();
    assert!(server.unmount("/a").is_err());
    assert!(server.mount("").is_err());
    let t = telescope(SinkConfig::rtsp(a));
    assert!(t.start().is_err(), "a removed mount cannot be streamed to");
    let probe = ffprobe(&server.url("/a"));
    assert!(!probe.status.success(), "a removed mount is not served");
}

/// RTP timestamps step by exactly one frame period (6000 ticks of 90 kHz at 15 fps), whatever
/// the delay of each frame through the encoder: players pace by them.
#[test]
fn rtp_timestamps_step_by_the_frame_period() {
    let server = server(None);
    let mount = server.mount("/even").unwrap();
    let t = telescope(SinkConfig::rtsp(mount.clone()));
    t.start().unwrap();
    let _camera = Camera::start(t.clone());
    let probe = Command::new("timeout")
        .args(["60", "ffprobe", "-v", "error", "-rtsp_transport", "tcp"])
        .args(["-select_streams", "v:0", "-read_intervals", "%+#30"])
        .args(["-show_entries", "packet=pts", "-of", "csv=p=0", mount.url()])
        .output()
        .unwrap();
    ok(&probe, "ffprobe");
    let pts: Vec<i64> = String::from_utf8_lossy(&probe.stdout)
        .lines()
        .filter_map(|l| l.split(',').next()?.trim().parse().ok())
        .collect();
    assert!(pts.len() >= 20, "packets: {pts:?}");
    // ffmpeg's RTSP demuxer reports its first packets with a repeated time (seen with the
    // old arrival stamping too, and not by GStreamer's rtspsrc); from the third on it reports
    // the RTP timestamps as sent.
    let steps: Vec<i64> = pts[2..].windows(2).map(|w| w[1] - w[0]).collect();
    assert!(
        steps.iter().all(|&s| s == 6000),
        "steps: {steps:?} pts {pts:?}"
    );
}

/// A viewer starting to play one mount asks that mount's encoder for a key frame, not the
/// others' (whose files and KVS fragments would get needless key frames).
#[test]
fn a_viewer_asks_only_its_own_mount_for_a_key_frame() {
    let server = server(None);
    let (a, b) = (server.mount("/a").unwrap(), server.mount("/b").unwrap());
    let (ta, tb) = (
        telescope(SinkConfig::rtsp(a.clone())),
        telescope(SinkConfig::rtsp(b.clone())),
    );
    ta.start().unwrap();
    tb.start().unwrap();
    let _cameras = (Camera::start(ta.clone()), Camera::start(tb.clone()));
    // Once streaming, each pipeline has asked for its first key frame.
    for t in [&ta, &tb] {
        assert!(telescope::wait_for(t, Duration::from_secs(30), |s| s
            .frames_pushed
            > 3));
    }
    let requests = |path: &str| {
        server
            .stats()
            .mounts
            .iter()
            .find(|m| m.path == path)
            .map(|m| m.key_frame_requests)
            .unwrap()
    };
    let (a_before, b_before) = (requests("/a"), requests("/b"));
    let probe = ffprobe(a.url());
    ok(&probe, "ffprobe");
    assert!(
        requests("/a") > a_before,
        "the played mount got no key frame request"
    );
    assert_eq!(requests("/b"), b_before, "the other mount was asked too");
}

/// A minimal RTSP client on one TCP connection, RTP interleaved on it: what a player does,
/// with every byte visible to the test. Reads time out (so a silent server fails the test
/// instead of hanging it).
struct RawRtsp {
    reader: BufReader<TcpStream>,
    writer: TcpStream,
    cseq: u32,
    session: Option<String>,
}

/// One RTSP response: status code, headers (names lower-cased) and body.
#[derive(Debug)]
struct Response {
    status: u16,
    headers: Vec<(String, String)>,
    body: String,
}

impl Response {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }
}

/// One interleaved RTP packet's header fields.
#[derive(Debug, Clone, Copy)]
struct Rtp {
    marker: bool,
    timestamp: u32,
    /// The H.264 NAL unit types the packet starts (a fragment counts at its start).
    nals: [Option<u8>; 8],
}

impl Rtp {
    fn parse(packet: &[u8]) -> Option<Rtp> {
        if packet.len() < 13 || packet[0] >> 6 != 2 {
            return None;
        }
        let csrc = usize::from(packet[0] & 0x0f);
        let mut at = 12 + 4 * csrc;
        if packet[0] & 0x10 != 0 {
            let len = usize::from(u16::from_be_bytes([
                *packet.get(at + 2)?,
                *packet.get(at + 3)?,
            ]));
            at += 4 + 4 * len;
        }
        let payload = packet.get(at..)?;
        let nal = |b: u8| b & 0x1f;
        let mut nals = [None; 8];
        let mut n = 0;
        let mut add = |t: u8| {
            if let Some(slot) = nals.get_mut(n) {
                *slot = Some(t);
                n += 1;
            }
        };
        let first = *payload.first()?;
        match nal(first) {
            // FU-A: the unit's type, counted on its first fragment.
            28 => {
                if let Some(&h) = payload.get(1).filter(|&&h| h & 0x80 != 0) {
                    add(nal(h));
                }
            }
            // STAP-A: 16-bit sizes, each followed by a NAL unit.
            24 => {
                let mut i = 1;
                while let (Some(&h), Some(&l)) = (payload.get(i), payload.get(i + 1)) {
                    if let Some(&b) = payload.get(i + 2) {
                        add(nal(b));
                    }
                    i += 2 + usize::from(u16::from_be_bytes([h, l]));
                }
            }
            t => add(t),
        }
        Some(Rtp {
            marker: packet[1] & 0x80 != 0,
            timestamp: u32::from_be_bytes([packet[4], packet[5], packet[6], packet[7]]),
            nals,
        })
    }
}

impl RawRtsp {
    fn connect(port: u16, timeout: Duration) -> RawRtsp {
        let stream = TcpStream::connect(("127.0.0.1", port)).unwrap();
        stream.set_read_timeout(Some(timeout)).unwrap();
        stream.set_write_timeout(Some(timeout)).unwrap();
        RawRtsp {
            reader: BufReader::new(stream.try_clone().unwrap()),
            writer: stream,
            cseq: 0,
            session: None,
        }
    }

    fn send(&mut self, method: &str, url: &str, headers: &[String]) -> std::io::Result<()> {
        self.cseq += 1;
        let mut text = format!("{method} {url} RTSP/1.0\r\nCSeq: {}\r\n", self.cseq);
        if let Some(s) = &self.session {
            text.push_str(&format!("Session: {s}\r\n"));
        }
        for h in headers {
            text.push_str(h);
            text.push_str("\r\n");
        }
        text.push_str("\r\n");
        self.writer.write_all(text.as_bytes())
    }

    /// The next response, skipping interleaved data in front of it.
    fn response(&mut self) -> std::io::Result<Response> {
        loop {
            let first = self.reader.fill_buf()?.first().copied();
            match first {
                None => return Err(std::io::ErrorKind::UnexpectedEof.into()),
                Some(b'$') => {
                    self.frame()?;
                }
                Some(_) => break,
            }
        }
        let mut status_line = String::new();
        self.reader.read_line(&mut status_line)?;
        let status = status_line
            .split_whitespace()
            .nth(1)
            .and_then(|s| s.parse().ok())
            .ok_or_else(|| std::io::Error::other(format!("bad status line `{status_line}`")))?;
        let mut headers = Vec::new();
        loop {
            let mut line = String::new();
            if self.reader.read_line(&mut line)? == 0 {
                return Err(std::io::ErrorKind::UnexpectedEof.into());
            }
            let line = line.trim_end();
            if line.is_empty() {
                break;
            }
            if let Some((n, v)) = line.split_once(':') {
                headers.push((n.trim().to_ascii_lowercase(), v.trim().to_owned()));
            }
        }
        let len: usize = headers
            .iter()
            .find(|(n, _)| n == "content-length")
            .and_then(|(_, v)| v.parse().ok())
            .unwrap_or(0);
        let mut body = vec![0; len];
        self.reader.read_exact(&mut body)?;
        Ok(Response {
            status,
            headers,
            body: String::from_utf8_lossy(&body).into_owned(),
        })
    }

    fn request(
        &mut self,
        method: &str,
        url: &str,
        headers: &[String],
    ) -> std::io::Result<Response> {
        self.send(method, url, headers)?;
        self.response()
    }

    /// One interleaved frame: channel and data.
    fn frame(&mut self) -> std::io::Result<(u8, Vec<u8>)> {
        let mut head = [0u8; 4];
        self.reader.read_exact(&mut head)?;
        if head[0] != b'$' {
            return Err(std::io::Error::other(format!(
                "not interleaved data: {head:?}"
            )));
        }
        let mut data = vec![0; usize::from(u16::from_be_bytes([head[2], head[3]]))];
        self.reader.read_exact(&mut data)?;
        Ok((head[1], data))
    }

    /// DESCRIBE, SETUP over TCP (interleaved 0-1), PLAY; panics naming the failing step.
    fn play(&mut self, url: &str) {
        let describe = self
            .request("DESCRIBE", url, &["Accept: application/sdp".into()])
            .unwrap();
        assert_eq!(describe.status, 200, "DESCRIBE: {describe:?}");
        let base = describe
            .header("content-base")
            .unwrap_or(url)
            .trim_end_matches('/')
            .to_owned();
        let control = describe
            .body
            .lines()
            .filter_map(|l| l.trim().strip_prefix("a=control:"))
            .find(|c| *c != "*")
            .expect("a stream control in the SDP")
            .to_owned();
        let track = if control.starts_with("rtsp://") {
            control
        } else {
            format!("{base}/{control}")
        };
        let setup = self
            .request(
                "SETUP",
                &track,
                &["Transport: RTP/AVP/TCP;unicast;interleaved=0-1".into()],
            )
            .unwrap();
        assert_eq!(setup.status, 200, "SETUP: {setup:?}");
        self.session = setup
            .header("session")
            .map(|s| s.split(';').next().unwrap_or(s).trim().to_owned());
        let play = self
            .request("PLAY", url, &["Range: npt=0-".into()])
            .unwrap();
        assert_eq!(play.status, 200, "PLAY: {play:?}");
    }

    /// The next RTP packet of channel 0.
    fn rtp(&mut self) -> std::io::Result<Rtp> {
        loop {
            let (channel, data) = self.frame()?;
            if channel == 0 {
                if let Some(rtp) = Rtp::parse(&data) {
                    return Ok(rtp);
                }
            }
        }
    }
}

/// One access unit as the RTP stream delimits it (its last packet has the marker bit).
#[derive(Debug, Clone)]
struct Unit {
    timestamp: u32,
    key: bool,
    /// NAL unit types in order.
    nals: Vec<u8>,
}

/// Read access units until `key_frames` key frames have been seen (0: no such bound) or `max`
/// units.
fn read_units(client: &mut RawRtsp, key_frames: usize, max: usize) -> Vec<Unit> {
    let mut units = Vec::new();
    let mut current: Option<Unit> = None;
    while units.len() < max
        && (key_frames == 0 || units.iter().filter(|u: &&Unit| u.key).count() < key_frames)
    {
        let rtp = client
            .rtp()
            .unwrap_or_else(|e| panic!("after {units:?}: {e}"));
        let unit = current.get_or_insert(Unit {
            timestamp: rtp.timestamp,
            key: false,
            nals: Vec::new(),
        });
        assert_eq!(
            unit.timestamp, rtp.timestamp,
            "one access unit, one timestamp: {units:?}"
        );
        unit.nals.extend(rtp.nals.iter().flatten());
        unit.key |= rtp.nals.iter().flatten().any(|&t| t == 5);
        if rtp.marker {
            units.extend(current.take());
        }
    }
    units
}

/// The RTP timestamp step of one frame period at `rate` (90 kHz clock), rounded: at
/// 24000/1001 the steps are 3753 or 3754.
fn frame_steps(rate: Rate) -> std::ops::RangeInclusive<u32> {
    let exact = 90_000.0 * f64::from(rate.den()) / f64::from(rate.num());
    (exact.floor() as u32)..=(exact.ceil() as u32)
}

/// RTP timestamps, read off the wire by a player, step by exactly one frame period from one
/// access unit to the next, across key frames (the encoder's periodic ones, and the one a
/// viewer starting to play asks for): a repeated timestamp makes players warn about
/// non-monotonic DTS and drop or mistime the frame.
#[test]
fn rtp_timestamps_step_by_one_frame_period_across_key_frames() {
    let server = server(None);
    let mount = server.mount("/steps").unwrap();
    let t = telescope(SinkConfig::rtsp(mount.clone()));
    t.start().unwrap();
    let _camera = Camera::start(t.clone());
    let mut client = RawRtsp::connect(server.port(), Duration::from_secs(30));
    client.play(mount.url());
    // 15 fps with a key frame every 2 s: 4 key frames take about 5 s.
    let units = read_units(&mut client, 4, 200);
    let keys = units.iter().filter(|u| u.key).count();
    assert!(keys >= 4, "key frames: {keys} in {units:?}");
    let steps: Vec<(u32, bool)> = units
        .windows(2)
        .map(|w| (w[1].timestamp.wrapping_sub(w[0].timestamp), w[1].key))
        .collect();
    // H.264 7.4.1.2.3: a parameter set or delimiter after a slice starts a new access unit, so
    // one repeated in the middle of a key frame (before its second slice) splits it in two for
    // players (ffmpeg: two frames with one timestamp, "non monotonically increasing dts").
    let split: Vec<_> = units
        .iter()
        .filter(|u| {
            let first_slice = u.nals.iter().position(|t| (1..=5).contains(t));
            first_slice.is_some_and(|i| u.nals[i..].iter().any(|t| matches!(t, 6..=9)))
        })
        .collect();
    assert!(split.is_empty(), "access units a player splits: {split:?}");
    let period = frame_steps(Rate::whole(15).unwrap());
    let bad: Vec<_> = steps.iter().filter(|(s, _)| !period.contains(s)).collect();
    assert!(
        bad.is_empty(),
        "steps off the frame period {period:?}: {bad:?} of {steps:?}"
    );
}

/// A viewer that connects before the first frame of a slow camera with irregular intervals
/// (about 2 fps, frames 0.33-0.67 s apart, no rate configured so the stream waits for the
/// warmup) is answered and gets pictures before a player gives up (rtspsrc and ffmpeg wait
/// about 20 s for DESCRIBE): the warmup ends within its time bound and DESCRIBE is answered
/// with the first key frame.
#[test]
fn a_viewer_early_on_a_slow_irregular_camera_gets_pictures_before_it_gives_up() {
    use rand::{Rng, SeedableRng};
    let server = server(None);
    let mount = server.mount("/slow").unwrap();
    let config = TelescopeConfig::builder()
        .size(W, H)
        .sink(SinkConfig::rtsp(mount.clone()))
        .build();
    let t = Arc::new(Telescope::new(config).unwrap());
    t.start().unwrap();
    // The first frame comes 0.5 s after the viewer has asked.
    let mut rng = rand::rngs::StdRng::seed_from_u64(16);
    let mut at = Duration::from_millis(500);
    let camera = Camera::paced(t.clone(), move |_| {
        let due = at;
        at += Duration::from_millis(rng.random_range(330..=670));
        due
    });
    let mut client = RawRtsp::connect(server.port(), Duration::from_secs(15));
    client.play(mount.url());
    let units = read_units(&mut client, 1, 20);
    assert!(units.iter().any(|u| u.key), "a key frame: {units:?}");
    let more = read_units(&mut client, 0, 3);
    assert_eq!(more.len(), 3, "the stream goes on: {more:?}");
    assert!(
        more.windows(2).all(|w| w[1].timestamp != w[0].timestamp),
        "distinct timestamps: {more:?}"
    );
    assert!(camera.finish() > 0);
}

/// Runs the test `name` again, alone, in a fresh process of this test binary (so that what it
/// measures, RSS or log lines, is its own) and returns that run's output; `None` in that run.
fn alone(name: &str) -> Option<Output> {
    if std::env::var_os("TELESCOPE_TEST_ALONE").is_some() {
        return None;
    }
    let exe = std::env::current_exe().unwrap();
    let out = Command::new("timeout")
        .arg("300")
        .arg(exe)
        .args([name, "--exact", "--nocapture", "--test-threads", "1"])
        .env("TELESCOPE_TEST_ALONE", "1")
        .output()
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "{name} alone: {text}");
    println!("{text}");
    Some(out)
}

/// A figure of /proc/self/status in KiB (`VmRSS`, `VmHWM`).
fn proc_status_kib(field: &str) -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .unwrap()
        .lines()
        .find_map(|l| l.strip_prefix(field)?.strip_prefix(':'))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .unwrap_or_else(|| panic!("no {field} in /proc/self/status"))
}

/// OPTIONS on a new connection is answered 200 within a second.
fn options_answered_within_a_second(port: u16) {
    let begin = Instant::now();
    let mut client = RawRtsp::connect(port, Duration::from_secs(1));
    let options = client.request("OPTIONS", "*", &[]).unwrap();
    assert_eq!(options.status, 200, "{options:?}");
    assert!(
        begin.elapsed() < Duration::from_secs(1),
        "{:?}",
        begin.elapsed()
    );
}

/// Send `total` bytes of header lines (or a body `Content-Length` announced that large) on a
/// new connection, until the server closes it; returns the bytes the server took.
fn flood(port: u16, total: usize, as_body: bool) -> usize {
    let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.set_write_timeout(Some(Duration::from_secs(30))).unwrap();
    let head = if as_body {
        format!("ANNOUNCE rtsp://127.0.0.1:{port}/x RTSP/1.0\r\nCSeq: 1\r\nContent-Length: {total}\r\n\r\n")
    } else {
        "DESCRIBE rtsp://127.0.0.1/x RTSP/1.0\r\nCSeq: 1\r\n".to_owned()
    };
    if s.write_all(head.as_bytes()).is_err() {
        return 0;
    }
    let line = if as_body {
        vec![b'a'; 1000]
    } else {
        format!("X-Pad: {}\r\n", "a".repeat(990)).into_bytes()
    };
    let mut sent = 0;
    while sent < total {
        if s.write_all(&line).is_err() {
            break;
        }
        sent += line.len();
    }
    sent
}

/// Unauthenticated requests with huge headers (64 MiB in all, from 8 connections at once) or a
/// huge body cost the server a bounded amount of memory, and it answers OPTIONS within a second
/// afterwards. Before, the server parsed every header line into memory (RSS +268 MB for
/// 64 MiB, kept by malloc afterwards).
#[test]
fn a_flood_of_huge_request_headers_leaves_memory_bounded_and_options_answered() {
    if alone("a_flood_of_huge_request_headers_leaves_memory_bounded_and_options_answered").is_some()
    {
        return;
    }
    let server = server(Some(BasicAuth::new("viewer", "s3cret-pass")));
    let port = server.port();
    options_answered_within_a_second(port);
    let before = proc_status_kib("VmRSS");
    let floods: Vec<JoinHandle<usize>> = (0..9)
        .map(|i| std::thread::spawn(move || flood(port, 8 << 20, i == 8)))
        .collect();
    let sent: Vec<usize> = floods.into_iter().map(|f| f.join().unwrap()).collect();
    options_answered_within_a_second(port);
    let after = proc_status_kib("VmRSS");
    let peak = proc_status_kib("VmHWM");
    let stats = server.stats();
    println!(
        "RSS before {before} KiB, after {after} KiB, peak {peak} KiB; accepted of 8 MiB each: {sent:?}; {stats:?}"
    );
    assert!(
        after.saturating_sub(before) < 16 * 1024,
        "RSS grew from {before} to {after} KiB"
    );
    assert_eq!(stats.requests_refused, 9, "{stats:?}");
    assert!(
        sent.iter().all(|&n| n < 8 << 20),
        "every flood was cut off: {sent:?}"
    );
}

/// Standard base64 (RFC 4648), for Basic credentials.
fn base64(data: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::new();
    for chunk in data.chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = u32::from_be_bytes([0, b[0], b[1], b[2]]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(ALPHABET[(n >> (18 - 6 * i) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// 200 wrong passwords from one address as fast as it can send them: after a few the address is
/// refused for a while without its passwords being checked (even the right one), each answer a
/// 401 naming how long to wait; after the wait the right password works. The refusals are
/// counted and logged as a few summary lines naming the address, not one line each, and no
/// password reaches the log.
#[test]
fn repeated_wrong_passwords_from_one_address_are_throttled_and_summarised() {
    if let Some(out) =
        alone("repeated_wrong_passwords_from_one_address_are_throttled_and_summarised")
    {
        let log = String::from_utf8_lossy(&out.stdout).into_owned()
            + &String::from_utf8_lossy(&out.stderr);
        let lines: Vec<&str> = log
            .lines()
            .filter(|l| l.contains("RTSP clients refused"))
            .collect();
        assert!((1..=3).contains(&lines.len()), "summary lines: {lines:#?}");
        assert!(
            lines.iter().any(|l| l.contains("127.0.0.1 (")),
            "{lines:#?}"
        );
        assert!(!log.contains("guess-") && !log.contains("s3cret"), "{log}");
        return;
    }
    let _ = tracing_subscriber::fmt()
        .with_ansi(false)
        .with_writer(std::io::stderr)
        .try_init();
    let server = server(Some(BasicAuth::new("viewer", "s3cret-pass")));
    let port = server.port();
    let mount = server.mount("/secure").unwrap();
    let t = telescope(SinkConfig::rtsp(mount.clone()));
    t.start().unwrap();
    let _camera = Camera::start(t.clone());
    let url = mount.url().to_owned();
    let credentials = |pass: &str| {
        format!(
            "Authorization: Basic {}",
            base64(format!("viewer:{pass}").as_bytes())
        )
    };
    let mut client = RawRtsp::connect(port, Duration::from_secs(5));
    let begin = Instant::now();
    let mut last = None;
    for i in 0..200 {
        let r = client
            .request("DESCRIBE", &url, &[credentials(&format!("guess-{i}"))])
            .unwrap();
        assert_eq!(r.status, 401, "attempt {i}: {r:?}");
        last = Some(r);
    }
    let took = begin.elapsed();
    let last = last.unwrap();
    assert!(last.header("retry-after").is_some(), "{last:?}");
    let stats = server.stats();
    println!("200 wrong passwords in {took:?}: {stats:?}");
    assert_eq!(stats.auth_failures + stats.auth_throttled, 200, "{stats:?}");
    assert!(
        (5..=8).contains(&stats.auth_failures),
        "only the first few passwords are checked: {stats:?}"
    );

    // The right password while the address is refused: refused too, with the wait.
    let mut fresh = RawRtsp::connect(port, Duration::from_secs(5));
    let r = fresh
        .request("DESCRIBE", &url, &[credentials("s3cret-pass")])
        .unwrap();
    assert_eq!(r.status, 401, "{r:?}");
    let mut wait: u64 = r.header("retry-after").unwrap().parse().unwrap();
    assert!((1..=16).contains(&wait), "{r:?}");
    let mut status = r.status;
    for _ in 0..3 {
        // Waits out the period the server announced (a protocol time, not a synchronisation).
        std::thread::sleep(Duration::from_secs(wait));
        let mut fresh = RawRtsp::connect(port, Duration::from_secs(5));
        let r = fresh
            .request("DESCRIBE", &url, &[credentials("s3cret-pass")])
            .unwrap();
        status = r.status;
        match r.header("retry-after") {
            Some(w) if status == 401 => wait = w.parse().unwrap(),
            _ => break,
        }
    }
    assert_eq!(status, 200, "the right password works after the wait");
    let after = server.stats();
    assert_eq!(after.auth_failures, stats.auth_failures, "{after:?}");
    t.stop().unwrap();
    drop(server);
}
