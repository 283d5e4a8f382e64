//! `telescope replay --sink rtsp://...` serves the replay to a real RTSP client until Ctrl-C.

use std::io::{BufRead, BufReader, Read};
use std::path::Path;
use std::process::{ChildStdout, Command, Stdio};

use testkit::{gst_clip, probe, ChildGuard};

/// A replay serving a looping 320x240 15 fps clip at `rtsp://127.0.0.1:PORT/PATH` (with
/// `extra` arguments), once it has said so on its first line of output.
struct Served {
    guard: ChildGuard,
    /// The rest of its output, kept open: it may still write.
    stdout: BufReader<ChildStdout>,
    url: String,
    port: u16,
}

fn serve_clip(dir: &Path, path: &str, extra: &[&str], stderr: Stdio) -> Served {
    let clip = dir.join("clip.mkv");
    gst_clip(&clip, 320, 240, "15/1", 30);
    let port = testkit::free_port();
    let url = format!("rtsp://127.0.0.1:{port}{path}");
    let child = Command::new(env!("CARGO_BIN_EXE_telescope"))
        .args(["replay", clip.to_str().unwrap(), "--sink", &url])
        .args(["--loops", "0"])
        .args(extra)
        .stdout(Stdio::piped())
        .stderr(stderr)
        .spawn()
        .unwrap();
    let mut guard = ChildGuard(child);
    let mut stdout = BufReader::new(guard.0.stdout.take().unwrap());
    let mut first = String::new();
    stdout.read_line(&mut first).unwrap();
    assert!(first.starts_with(&format!("serving {url}")), "{first}");
    Served {
        guard,
        stdout,
        url,
        port,
    }
}

#[test]
fn replay_serves_rtsp_until_interrupted() {
    let dir = tempfile::tempdir().unwrap();
    let Served {
        mut guard,
        mut stdout,
        port,
        ..
    } = serve_clip(
        dir.path(),
        "/lobby",
        &["--rtsp-user", "ops", "--rtsp-pass", "door-code-1234"],
        Stdio::piped(),
    );

    let authed = format!("rtsp://ops:door-code-1234@127.0.0.1:{port}/lobby");
    let probe = Command::new("timeout")
        .args([
            "60",
            "ffprobe",
            "-v",
            "error",
            "-rtsp_transport",
            "tcp",
            "-show_entries",
        ])
        .args(["stream=codec_name,width,height", "-of", "csv=p=0", &authed])
        .output()
        .unwrap();
    assert!(
        probe.status.success(),
        "{}",
        String::from_utf8_lossy(&probe.stderr)
    );
    assert_eq!(
        String::from_utf8_lossy(&probe.stdout).trim(),
        "h264,320,240"
    );

    let pid = guard.0.id().to_string();
    assert!(Command::new("kill")
        .args(["-INT", &pid])
        .status()
        .unwrap()
        .success());
    let status = guard.0.wait().unwrap();
    let mut rest = String::new();
    stdout.read_to_string(&mut rest).unwrap();
    let mut stderr = String::new();
    guard
        .0
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut stderr)
        .unwrap();
    assert!(status.success(), "exit {status:?}: {stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
    assert!(rest.contains(&format!("RTSP on port {port}")), "{rest}");
    assert!(
        !rest.contains("door-code") && !stderr.contains("door-code"),
        "the password is never printed"
    );
}

/// A live camera: one replay serves a looping clip over RTSP, a second replay takes that
/// stream as its camera (`rtsp://` source) for 4 s of real time into a file. The warmup finds
/// the camera's 15 fps and its size from the live frames; the file holds every frame streamed.
#[test]
fn a_live_rtsp_camera_is_a_source() {
    let dir = tempfile::tempdir().unwrap();
    let camera = serve_clip(dir.path(), "/camera", &["--quiet"], Stdio::null());
    let url = camera.url.clone();

    let out = dir.path().join("live.mkv");
    let report = dir.path().join("report");
    let app = Command::new("timeout")
        .args(["120", env!("CARGO_BIN_EXE_telescope"), "replay", &url])
        .args(["--duration", "4", "--quiet", "--sink"])
        .arg(format!("file:{}", out.display()))
        .arg("--report")
        .arg(&report)
        .output()
        .unwrap();
    assert!(
        app.status.success(),
        "{}",
        String::from_utf8_lossy(&app.stderr)
    );
    let json: serde_json::Value =
        serde_json::from_slice(&std::fs::read(report.join("report.json")).unwrap()).unwrap();
    let cam = &json["cameras"][0];
    assert_eq!(cam["rate"], "15", "{cam}");
    assert_eq!(
        (cam["width"].as_u64(), cam["height"].as_u64()),
        (Some(320), Some(240))
    );
    let frames_out = cam["frames_out"].as_u64().unwrap();
    assert!(frames_out >= 40, "{cam}");
    let p = probe(&out);
    assert_eq!(
        (p.width, p.height, p.frames),
        (320, 240, frames_out),
        "{p:?}"
    );
    drop(camera);
}
