//! `telescope soak`: real-time runs under scheduled faults against the built-in mock-kvs,
//! judged at the end (exit 0 with every verdict passing, 1 otherwise).

use std::process::Command;

fn soak(dir: &std::path::Path, extra: &[&str]) -> (std::process::Output, serde_json::Value) {
    let out = Command::new(env!("CARGO_BIN_EXE_telescope"))
        .args(["soak", "pattern:ball@320x240@15", "--quiet", "--report"])
        .arg(dir)
        .args(extra)
        .output()
        .unwrap();
    let report = serde_json::from_slice(&std::fs::read(dir.join("report.json")).unwrap())
        .unwrap_or(serde_json::Value::Null);
    (out, report)
}

fn verdicts(report: &serde_json::Value) -> Vec<(String, f64, bool)> {
    report["verdicts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| {
            (
                v["name"].as_str().unwrap().to_owned(),
                v["measured"].as_f64().unwrap(),
                v["pass"].as_bool().unwrap(),
            )
        })
        .collect()
}

#[test]
fn credential_expiry_and_two_connection_resets_lose_no_frame() {
    let dir = tempfile::tempdir().unwrap();
    let (out, report) = soak(
        dir.path(),
        &[
            "--duration",
            "40s",
            // Resets at 17 s and 34 s; credentials expire at 20 s (and are renewed at half-life,
            // every 10 s): no reset coincides with a renewal's reconnection.
            "--fault",
            "credential-expiry:20s",
            "--fault",
            "connection-reset:17s",
        ],
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stderr}\n{report}");
    let v = verdicts(&report);
    assert!(v.iter().all(|(_, _, pass)| *pass), "{v:?}");
    assert!(
        v.contains(&("frames lost".to_owned(), 0.0, true)),
        "the store holds every frame encoded: {v:?}"
    );
    let cam = &report["cameras"][0];
    assert!(
        cam["frames_out"].as_u64().unwrap() >= 500,
        "40 s at 15 fps: {cam}"
    );
    let soak: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.path().join("soak.json")).unwrap()).unwrap();
    let faults: Vec<(String, String)> = soak["faults"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| {
            (
                f["fault"].as_str().unwrap().to_owned(),
                f["detail"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    let resets: Vec<&(String, String)> = faults
        .iter()
        .filter(|(f, _)| f == "connection-reset")
        .collect();
    assert_eq!(resets.len(), 2, "{faults:?}");
    for (_, detail) in &resets {
        assert!(
            !detail.starts_with("0 "),
            "a reset met an open connection: {faults:?}"
        );
    }
    assert_eq!(
        faults
            .iter()
            .filter(|(f, _)| f == "credential-expiry")
            .count(),
        1
    );
    // Each cut connection came back: at least one per fault, plus the first.
    assert!(cam["kvs"][0]["connections"].as_u64().unwrap() >= 4, "{cam}");
    assert!(soak["credentials_issued"].as_u64().unwrap() >= 2, "{soak}");
}

#[test]
fn a_cut_link_and_stalled_acks_on_a_slow_uplink_lose_no_frame() {
    let dir = tempfile::tempdir().unwrap();
    let (out, report) = soak(
        dir.path(),
        &[
            "--duration",
            "20s",
            "--network",
            "latency=40ms,jitter=20ms,bandwidth=4mbit",
            "--fault",
            "link-cut:3s",
            "--fault",
            "ack-stall:2s",
        ],
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stderr}\n{report}");
    let v = verdicts(&report);
    assert!(v.contains(&("frames lost".to_owned(), 0.0, true)), "{v:?}");
    let soak: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.path().join("soak.json")).unwrap()).unwrap();
    assert!(soak["proxy"]["resets"].as_u64().unwrap() >= 1, "{soak}");
}

#[test]
fn a_broken_bound_fails_the_soak_with_exit_code_1() {
    let dir = tempfile::tempdir().unwrap();
    // No growth at all is allowed below -100 %: the verdict must fail.
    let (out, report) = soak(dir.path(), &["--duration", "4s", "--max-rss-growth=-100"]);
    assert_eq!(out.status.code(), Some(1));
    let v = verdicts(&report);
    assert!(
        v.iter()
            .any(|(name, _, pass)| name == "RSS growth" && !pass),
        "{v:?}"
    );
    // And a fault that needs the built-in endpoint is refused with another sink.
    let bad = Command::new(env!("CARGO_BIN_EXE_telescope"))
        .args(["soak", "pattern:ball@64x64@5", "--duration", "2s"])
        .args([
            "--sink",
            "file:/tmp/never.mkv",
            "--fault",
            "connection-reset",
        ])
        .output()
        .unwrap();
    testkit::assert_one_line_error(&bad, "omit --sink");
}
