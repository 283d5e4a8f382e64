//! `telescope replay --sink rtsp://...` serves the replay to a real RTSP client until Ctrl-C.

use std::io::{BufRead, BufReader, Read};
use std::process::{Command, Stdio};

use testkit::{gst_clip, ChildGuard};

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
