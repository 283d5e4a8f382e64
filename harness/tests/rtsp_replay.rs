//! `telescope replay --sink rtsp://...` serves the replay to a real RTSP client until Ctrl-C.

use std::io::{BufRead, BufReader, Read};
use std::process::{Command, Stdio};

use testkit::{gst_clip, probe, ChildGuard};

#[test]
fn replay_serves_rtsp_until_interrupted() {
    let dir = tempfile::tempdir().unwrap();
    let clip = dir.path().join("clip.mkv");
    gst_clip(&clip, 320, 240, "15/1", 30);
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let url = format!("rtsp://127.0.0.1:{port}/lobby");
    let child = Command::new(env!("CARGO_BIN_EXE_telescope"))
        .args([
            "replay",
            clip.to_str().unwrap(),
            "--sink",
            &url,
            "--loops",
            "0",
        ])
        .args(["--rtsp-user", "ops", "--rtsp-pass", "door-code-1234"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut guard = ChildGuard(child);
    let mut stdout = BufReader::new(guard.0.stdout.take().unwrap());
    let mut first = String::new();
    stdout.read_line(&mut first).unwrap();
    assert!(first.starts_with(&format!("serving {url}")), "{first}");

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
    let clip = dir.path().join("clip.mkv");
    gst_clip(&clip, 320, 240, "15/1", 30);
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let url = format!("rtsp://127.0.0.1:{port}/camera");
    let camera = Command::new(env!("CARGO_BIN_EXE_telescope"))
        .args(["replay", clip.to_str().unwrap(), "--sink", &url])
        .args(["--loops", "0", "--quiet"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut camera = ChildGuard(camera);
    // Kept open until the end: the camera replay may still write to it.
    let mut camera_out = BufReader::new(camera.0.stdout.take().unwrap());
    let mut first = String::new();
    camera_out.read_line(&mut first).unwrap();
    assert!(first.starts_with(&format!("serving {url}")), "{first}");

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
    drop(camera_out);
}
