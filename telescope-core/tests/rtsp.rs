//! RTSP sink read by real clients: ffprobe, ffmpeg over TCP, GStreamer rtspsrc over UDP.

mod common;

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
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let thread = std::thread::spawn(move || {
            let begin = Instant::now();
            let mut n = 0u64;
            while !flag.load(Ordering::Relaxed) && n < 900 {
                let due = begin + Duration::from_millis(n * 1000 / 15);
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
