//! Reports: a real-time replay into mock-kvs and RTSP whose report matches what the sinks
//! received; the page and the comparison; budgets; the JSON schema as a snapshot.

mod common;

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};

use testkit::{probe, ChildGuard};

const KEY: &str = "AKIDREPORTTEST01";
const SECRET: &str = "report-test-secret";

fn json(path: &std::path::Path) -> serde_json::Value {
    serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap()
}

#[test]
fn a_replay_report_matches_what_kvs_and_rtsp_received() {
    let dir = tempfile::tempdir().unwrap();
    let (_mock, url) = testkit::start_mock_kvs(
        env!("CARGO_BIN_EXE_telescope"),
        &["--access-key", KEY, "--secret-key", SECRET],
    );
    let port = testkit::free_port();
    let rtsp = format!("rtsp://127.0.0.1:{port}/cam");
    let report_dir = dir.path().join("run");
    let child = Command::new(env!("CARGO_BIN_EXE_telescope"))
        .args(["replay", "pattern:ball@320x240@15", "--duration", "8s"])
        .args(["--create-stream", "--sample-ms", "250", "--sink", &rtsp])
        .arg("--sink")
        .arg(format!(
            "kvs://cam?endpoint={url}&region={}",
            common::REGION
        ))
        .arg("--report")
        .arg(&report_dir)
        .env("AWS_ACCESS_KEY_ID", KEY)
        .env("AWS_SECRET_ACCESS_KEY", SECRET)
        .env_remove("AWS_SESSION_TOKEN")
        .env_remove("AWS_PROFILE")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut replay = ChildGuard(child);
    let mut stdout = BufReader::new(replay.0.stdout.take().unwrap());
    let mut first = String::new();
    stdout.read_line(&mut first).unwrap();
    assert!(first.starts_with(&format!("serving {rtsp}")), "{first}");
    // One viewer decodes 30 frames while the replay runs (bounded by timeout).
    let viewer = Command::new("timeout")
        .args([
            "30",
            "ffmpeg",
            "-v",
            "error",
            "-rtsp_transport",
            "tcp",
            "-i",
            &rtsp,
        ])
        .args(["-frames:v", "30", "-f", "rawvideo", "-pix_fmt", "gray", "-"])
        .output()
        .unwrap();
    assert_eq!(
        viewer.stdout.len(),
        30 * 320 * 240,
        "the viewer decoded 30 frames"
    );
    let status = replay.0.wait().unwrap();
    assert!(status.success(), "replay exit {status:?}");

    let report = json(&report_dir.join("report.json"));
    let cam = &report["cameras"][0];
    let frames_out = cam["frames_out"].as_u64().unwrap();
    assert!(frames_out >= 100, "8 s at 15 fps: {cam}");

    // KVS: every fragment persisted, and GetMedia returns exactly the frames the report says.
    let kvs = &cam["kvs"][0];
    assert_eq!(kvs["persisted"], kvs["fragments"], "{kvs}");
    let fetched = dir.path().join("fetched.mkv");
    common::get_media(&url, "cam", &fetched, KEY, SECRET);
    assert_eq!(probe(&fetched).frames, frames_out, "{cam}");

    // RTSP: one viewer; the media got at least what it decoded, at most what was encoded.
    assert_eq!(cam["rtsp_clients"], 1, "{cam}");
    let delivered = cam["rtsp_delivered"].as_u64().unwrap();
    assert!(
        (30..=frames_out).contains(&delivered),
        "{delivered} of {frames_out}"
    );

    // The timeline: samples every 250 ms; the output rate over time adds up to the frames out.
    let timeline = report["timeline"].as_array().unwrap();
    assert!(timeline.len() >= 20, "{} samples", timeline.len());
    let mut integral = 0.0;
    let mut last_t = 0.0;
    for s in timeline {
        let t = s["t"].as_f64().unwrap();
        integral += s["cameras"][0]["output_fps"].as_f64().unwrap() * (t - last_t);
        last_t = t;
        assert!(s["rss_mib"].as_f64().unwrap() > 1.0);
    }
    assert!(
        integral <= frames_out as f64 + 0.5 && integral >= frames_out as f64 * 0.6,
        "sampled {integral:.1} of {frames_out} frames"
    );
    let persisted_then = timeline.last().unwrap()["cameras"][0]["kvs_persisted"]
        .as_u64()
        .unwrap();
    assert!(persisted_then <= kvs["persisted"].as_u64().unwrap());
    let process = &report["process"];
    assert!(
        process["cpu_percent_mean"].as_f64().unwrap() > 0.0,
        "{process}"
    );
    // The CPU split by thread group: the encoder's threads did work, and the groups add up to
    // the process's CPU (the threads that ended included).
    let groups = process["threads"].as_array().unwrap();
    let encode = groups
        .iter()
        .find(|g| g["group"].as_str().unwrap().starts_with("encode"))
        .unwrap_or_else(|| panic!("no encode group: {process}"));
    assert!(
        encode["threads"].as_u64().unwrap() >= 1 && encode["cpu_percent"].as_f64().unwrap() > 0.0
    );
    let sum: f64 = groups
        .iter()
        .map(|g| g["cpu_percent"].as_f64().unwrap())
        .sum();
    let total = process["cpu_percent_mean"].as_f64().unwrap();
    assert!(sum <= total * 1.05 + 0.5, "{sum} of {total}: {process}");

    // The page, then a comparison of the run with itself.
    let page = std::fs::read_to_string(report_dir.join("report.html")).unwrap();
    assert!(page.contains("<svg") && page.contains("Resident memory"));
    assert!(page.contains("CPU by thread group"));
    let compare = Command::new(env!("CARGO_BIN_EXE_telescope"))
        .arg("report")
        .args([&report_dir, &report_dir])
        .output()
        .unwrap();
    assert!(compare.status.success());
    let text = String::from_utf8_lossy(&compare.stdout);
    assert!(text.contains("CPU % per stream"), "{text}");
    let both = std::fs::read_to_string(report_dir.join("compare.html")).unwrap();
    assert!(both.contains(" vs "));
}

#[test]
fn a_broken_budget_is_exit_code_1_with_the_verdicts_in_the_report() {
    let dir = tempfile::tempdir().unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_telescope"))
        .args(["replay", "pattern:smpte@160x120@10", "--virtual-clock"])
        .args([
            "--duration",
            "3",
            "--budget-cpu",
            "0.0001",
            "--budget-rss",
            "100000",
        ])
        .arg("--sink")
        .arg(format!("file:{}", dir.path().join("b.mkv").display()))
        .arg("--report")
        .arg(dir.path())
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(1),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains("budget CPU per stream") && stdout.contains("FAIL"),
        "{stdout}"
    );
    let report = json(&dir.path().join("report.json"));
    let verdicts: Vec<(String, bool)> = report["verdicts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| {
            (
                v["name"].as_str().unwrap().to_owned(),
                v["pass"].as_bool().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        verdicts,
        vec![
            ("CPU per stream".to_owned(), false),
            ("RSS max".to_owned(), true)
        ]
    );
    // --json prints the same report on stdout, and --quiet nothing else.
    let quiet = Command::new(env!("CARGO_BIN_EXE_telescope"))
        .args([
            "replay",
            "pattern:smpte@160x120@10",
            "--virtual-clock",
            "--duration",
            "1",
        ])
        .args(["--quiet", "--json", "--sink"])
        .arg(format!("file:{}", dir.path().join("q.mkv").display()))
        .output()
        .unwrap();
    assert!(quiet.status.success());
    let parsed: serde_json::Value = serde_json::from_slice(&quiet.stdout).unwrap();
    assert_eq!(parsed["schema_version"], 1);
}

#[test]
fn the_report_schema_is_stable() {
    let dir = tempfile::tempdir().unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_telescope"))
        .args([
            "replay",
            "pattern:smpte@160x120@10",
            "--virtual-clock",
            "--duration",
            "3",
        ])
        .args([
            "--seed",
            "7",
            "--jitter-ms",
            "20",
            "--drop",
            "0.05",
            "--quiet",
        ])
        .arg("--sink")
        .arg(format!("file:{}", dir.path().join("s.mkv").display()))
        .arg("--report")
        .arg(dir.path())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mut report = json(&dir.path().join("report.json"));
    // File paths differ per run.
    report["cameras"][0]["source"] = "pattern:smpte@160x120@10".into();
    // Keys sorted: serde_json keeps insertion order when another crate of the build enables
    // its `preserve_order` feature (`cargo test --workspace`), and not otherwise.
    insta::with_settings!({ sort_maps => true }, {
        insta::assert_json_snapshot!(report, {
            ".wall_seconds" => "[wall]",
            ".process" => "[process: machine-dependent]",
            ".timeline" => "[timeline: machine-dependent]",
            ".cameras[].put_latency_us" => "[put latency]",
            ".cameras[].put_latency_histogram_us" => "[put latency]",
        });
    });
}
