//! Footage replayed into mock-kvs over the native PutMedia client, read back with the AWS SDK's
//! GetMedia and checked with ffprobe: every frame arrives once, in order, through faults.

use std::path::Path;
use std::process::Command;

mod common;

use testkit::{gst_clip, probe, ChildGuard};

const KEY: &str = "AKIDKVSREPLAY01";
const SECRET: &str = "kvs-replay-secret";
use common::REGION;

fn start_mock(faults: &[&str]) -> (ChildGuard, String) {
    // GetMedia here runs after the producer is done: end it soon after the last fragment.
    let mut args = vec![
        "--access-key",
        KEY,
        "--secret-key",
        SECRET,
        "--get-media-idle",
        "1s",
    ];
    for f in faults {
        args.extend(["--fault", f]);
    }
    testkit::start_mock_kvs(env!("CARGO_BIN_EXE_telescope"), &args)
}

fn replay(clip: &Path, url: &str, stream: &str, stats: &Path) -> serde_json::Value {
    let args = [clip.to_str().unwrap(), "--virtual-clock", "--create-stream"];
    replay_args(&args, url, stream, stats)
}

/// `telescope replay ARGS --sink kvs://STREAM...` with the test's keys; its counters.
fn replay_args(args: &[&str], url: &str, stream: &str, stats: &Path) -> serde_json::Value {
    let out = Command::new(env!("CARGO_BIN_EXE_telescope"))
        .arg("replay")
        .args(args)
        .arg("--sink")
        .arg(format!("kvs://{stream}?endpoint={url}&region={REGION}"))
        .arg("--stats-json")
        .arg(stats)
        .env("AWS_ACCESS_KEY_ID", KEY)
        .env("AWS_SECRET_ACCESS_KEY", SECRET)
        .env_remove("AWS_SESSION_TOKEN")
        .env_remove("AWS_PROFILE")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "replay failed: {}{stderr}",
        String::from_utf8_lossy(&out.stdout)
    );
    assert!(
        !stderr.contains(SECRET),
        "the secret key never reaches the output"
    );
    serde_json::from_slice(&std::fs::read(stats).unwrap()).unwrap()
}

/// Replay `frames` frames into a mock-kvs with these faults (and faults set at run time
/// through the admin endpoint); returns the replay's counters and the directory holding the
/// GetMedia download `fetched.mkv`.
fn round_trip(
    faults: &[&str],
    runtime_faults: Option<&str>,
    frames: u32,
) -> (serde_json::Value, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let clip = dir.path().join("clip.mkv");
    gst_clip(&clip, 320, 240, "25/1", frames);
    let (_mock, url) = start_mock(faults);
    if let Some(json) = runtime_faults {
        // The admin endpoint is the mock's own control, not a KVS API, but it takes the same
        // credentials: curl signs with SigV4.
        let out = Command::new("curl")
            .args([
                "-sS",
                "--aws-sigv4",
                "aws:amz:us-east-1:kinesisvideo",
                "--user",
                &format!("{KEY}:{SECRET}"),
                "-X",
                "POST",
                "-H",
                "content-type: application/json",
                "-d",
                json,
            ])
            .arg(format!("{url}/_mock/faults"))
            .output()
            .expect("curl runs (ci/setup installs it)");
        let answer = String::from_utf8_lossy(&out.stdout);
        assert!(answer.contains("ResetAfterFragments"), "{answer}");
    }
    let stats = replay(&clip, &url, "lobby", &dir.path().join("stats.json"));
    common::get_media(&url, "lobby", &dir.path().join("fetched.mkv"), KEY, SECRET);
    (stats, dir)
}

fn check_round_trip(faults: &[&str], frames: u32) -> serde_json::Value {
    check_round_trip_with(faults, None, frames)
}

fn check_round_trip_with(
    faults: &[&str],
    runtime_faults: Option<&str>,
    frames: u32,
) -> serde_json::Value {
    let (stats, dir) = round_trip(faults, runtime_faults, frames);
    let kvs = &stats["kvs"][0];
    assert_eq!(
        kvs["persisted"], kvs["fragments"],
        "every fragment persisted: {stats}"
    );
    assert_eq!(kvs["evicted"], 0);
    let fetched = dir.path().join("fetched.mkv");
    let p = probe(&fetched);
    assert_eq!(
        (p.width, p.height, p.codec.as_str()),
        (320, 240, "h264"),
        "{stats}"
    );
    // KVS stores a fragment resent after a cut connection twice, as the real service does:
    // dedupe by timestamp, then every frame is there exactly once.
    let times = testkit::frame_times(&fetched);
    let unique: std::collections::BTreeSet<i64> =
        times.iter().map(|t| (t * 1000.0).round() as i64).collect();
    assert_eq!(unique.len(), frames as usize, "{stats}");
    assert_eq!(
        p.frames as usize,
        times.len(),
        "ffprobe decodes every stored frame"
    );
    // Timestamps: strictly increasing, one frame interval apart (40 ms at 25 fps).
    let unique: Vec<i64> = unique.into_iter().collect();
    for pair in unique.windows(2) {
        assert!(
            (pair[1] - pair[0] - 40).abs() <= 1,
            "frame step {} ms",
            pair[1] - pair[0]
        );
    }
    // Absolute timecodes: the stream is stamped with wall-clock time, not zero.
    assert!(
        unique[0] > 1_700_000_000_000,
        "absolute start {}",
        unique[0]
    );
    stats
}

#[test]
fn a_missing_stream_is_one_line_naming_the_flag_that_creates_it() {
    let (_mock, url) = start_mock(&[]);
    let out = Command::new(env!("CARGO_BIN_EXE_telescope"))
        .args([
            "replay",
            "pattern:smpte@160x120@10",
            "--virtual-clock",
            "--duration",
            "1",
        ])
        .arg("--sink")
        .arg(format!("kvs://nowhere?endpoint={url}&region={REGION}"))
        .env("AWS_ACCESS_KEY_ID", KEY)
        .env("AWS_SECRET_ACCESS_KEY", SECRET)
        .env_remove("AWS_SESSION_TOKEN")
        .env_remove("AWS_PROFILE")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert_eq!(stderr.trim().lines().count(), 1, "{stderr}");
    assert!(
        stderr.contains("`nowhere` does not exist") && stderr.contains("--create-stream"),
        "the library names the concept, the command line its flag: {stderr}"
    );
}

#[test]
fn a_replay_reaches_kvs_frame_for_frame() {
    let stats = check_round_trip(&[], 150);
    let kvs = &stats["kvs"][0];
    assert_eq!(kvs["fragments"], 3, "6 s at 2 s fragments: {stats}");
    assert_eq!(kvs["resent"], 0);
    assert_eq!(kvs["connections"], 1);
}

#[test]
fn dropped_connections_lose_no_frame() {
    // Every connection dies at its second fragment, before acking it: each is resent.
    let stats = check_round_trip(&["reset-after:2"], 200);
    let kvs = &stats["kvs"][0];
    assert!(kvs["resent"].as_u64().unwrap() >= 2, "{stats}");
    assert!(kvs["connections"].as_u64().unwrap() >= 3, "{stats}");
}

#[test]
fn refused_requests_and_slow_acks_are_ridden_out() {
    let stats = check_round_trip(&["refuse:2", "delay-acks:300"], 100);
    let kvs = &stats["kvs"][0];
    assert!(
        kvs["errors"].as_u64().unwrap() >= 2,
        "the two refusals are counted: {stats}"
    );
    assert!(
        kvs["ack_latency_ms_max"].as_u64().unwrap() >= 300,
        "{stats}"
    );
}

#[test]
fn retryable_error_acks_and_expiring_connections_are_resent() {
    let stats = check_round_trip(&["error-ack:5000:2"], 150);
    assert!(stats["kvs"][0]["resent"].as_u64().unwrap() >= 1, "{stats}");
    let stats = check_round_trip(&["delay-acks:400", "expire-connections:1000"], 150);
    assert!(
        stats["kvs"][0]["connections"].as_u64().unwrap() >= 2,
        "{stats}"
    );
}

#[test]
fn non_retryable_error_acks_drop_and_count_the_fragment() {
    let (stats, dir) = round_trip(&["error-ack:4006:2"], None, 150);
    let kvs = &stats["kvs"][0];
    assert_eq!(kvs["rejected"], 1, "{stats}");
    assert_eq!(
        kvs["persisted"].as_u64().unwrap() + 1,
        kvs["fragments"].as_u64().unwrap(),
        "{stats}"
    );
    let p = probe(&dir.path().join("fetched.mkv"));
    assert_eq!(
        p.frames, 100,
        "the rejected 2 s fragment (50 frames) is the only loss"
    );
}

#[test]
fn withheld_persisted_acks_leave_fragments_pending_and_reported() {
    let (stats, _dir) = round_trip(&["withhold-persisted"], None, 75);
    let kvs = &stats["kvs"][0];
    assert_eq!(kvs["persisted"], 0, "{stats}");
    assert_eq!(kvs["received"], kvs["fragments"], "{stats}");
}

#[test]
fn faults_set_at_run_time_through_the_admin_endpoint() {
    let stats = check_round_trip_with(&[], Some(r#"{"faults":["reset-after:2"]}"#), 150);
    assert!(stats["kvs"][0]["resent"].as_u64().unwrap() >= 1, "{stats}");
}

#[test]
fn connections_cut_mid_fragment_lose_no_frame() {
    // About 25 kB per fragment here: the first connection dies inside the third fragment, the
    // next one resends it whole.
    let stats = check_round_trip(&["reset-after-bytes:60000"], 150);
    assert!(
        stats["kvs"][0]["connections"].as_u64().unwrap() >= 2,
        "{stats}"
    );
}

/// GetMedia with NOW, opened before the producer starts, streams each fragment as it is stored
/// (KVS's live read), every chunk a stand-alone MKV segment with KVS's tags (what the KVS
/// consumer libraries split on), in fragment order; the first arrives while the producer is
/// still streaming, and the response ends by itself once fragments stop coming.
#[test]
fn get_media_now_streams_fragments_live_as_tagged_chunks() {
    let dir = tempfile::tempdir().unwrap();
    let (_mock, url) = testkit::start_mock_kvs(
        env!("CARGO_BIN_EXE_telescope"),
        &[
            "--access-key",
            KEY,
            "--secret-key",
            SECRET,
            "--get-media-idle",
            "5s",
        ],
    );
    let rt = common::runtime();
    let media = rt.block_on(common::media_client(&url, "live", KEY, SECRET, true));
    let media_again = media.clone();
    // The reader: every piece of the payload with the time it arrived.
    let reader = rt.spawn(async move {
        use aws_sdk_kinesisvideomedia::types::{StartSelector, StartSelectorType};
        let mut got = media
            .get_media()
            .stream_name("live")
            .start_selector(
                StartSelector::builder()
                    .start_selector_type(StartSelectorType::Now)
                    .build()
                    .unwrap(),
            )
            .send()
            .await
            .unwrap();
        let mut pieces = Vec::new();
        while let Some(piece) = got.payload.next().await {
            pieces.push((std::time::Instant::now(), piece.unwrap()));
        }
        pieces
    });
    let stats_path = dir.path().join("stats.json");
    let stats = replay_args(
        &["pattern:ball@160x120@10", "--duration", "5", "--quiet"],
        &url,
        "live",
        &stats_path,
    );
    let producer_done = std::time::Instant::now();
    let pieces = rt
        .block_on(async { tokio::time::timeout(std::time::Duration::from_secs(30), reader).await })
        .expect("the GetMedia response ends once fragments stop coming")
        .unwrap();
    assert!(
        pieces.first().is_some_and(|(at, _)| *at < producer_done),
        "nothing arrived while the producer was streaming"
    );
    let bytes: Vec<u8> = pieces.iter().flat_map(|(_, b)| b.to_vec()).collect();
    let fragments = stats["kvs"][0]["persisted"].as_u64().unwrap() as usize;
    let numbers = testkit::tag_values(&bytes, "AWS_KINESISVIDEO_FRAGMENT_NUMBER");
    assert!(fragments >= 2, "{stats}");
    assert_eq!(numbers.len(), fragments, "{stats}");
    assert!(numbers.windows(2).all(|w| w[0] < w[1]), "{numbers:?}");
    assert_eq!(
        testkit::tag_values(&bytes, "AWS_KINESISVIDEO_CONTINUATION_TOKEN"),
        numbers
    );
    let ebml_headers = bytes
        .windows(4)
        .filter(|w| *w == [0x1A, 0x45, 0xDF, 0xA3])
        .count();
    assert_eq!(ebml_headers, fragments, "one stand-alone segment per chunk");
    // A reader that stopped resumes after the fragment its last continuation token names.
    let resumed = rt.block_on(async {
        use aws_sdk_kinesisvideomedia::types::{StartSelector, StartSelectorType};
        let got = media_again
            .get_media()
            .stream_name("live")
            .start_selector(
                StartSelector::builder()
                    .start_selector_type(StartSelectorType::ContinuationToken)
                    .continuation_token(&numbers[numbers.len() - 2])
                    .build()
                    .unwrap(),
            )
            .send()
            .await
            .unwrap();
        got.payload.collect().await.unwrap().into_bytes()
    });
    assert_eq!(
        testkit::tag_values(&resumed, "AWS_KINESISVIDEO_FRAGMENT_NUMBER"),
        numbers[numbers.len() - 1..]
    );
    let fetched = dir.path().join("live.mkv");
    std::fs::write(&fetched, &bytes).unwrap();
    let p = probe(&fetched);
    assert_eq!(
        (p.width, p.height, p.frames),
        (160, 120, stats["frames_out"].as_u64().unwrap()),
        "{stats}"
    );
}

/// The AWS CLI, as a reader of the README would use it, reads a replayed stream back from
/// mock-kvs (`kinesisvideo get-data-endpoint`, `kinesis-video-media get-media`), and MKVToolNix's
/// `mkvinfo` parses what it fetched as Matroska (the fragments' segments with KVS's tags).
#[test]
fn the_aws_cli_reads_the_stream_back_and_mkvinfo_parses_it() {
    // `python -m awscli`: the venv's AWS CLI whether pip put it in the venv or found it in the
    // system's site-packages.
    let Some(python) = testkit::venv_tool("python").filter(|py| {
        Command::new(py)
            .args(["-m", "awscli", "--version"])
            .output()
            .is_ok_and(|o| o.status.success())
    }) else {
        assert!(
            std::env::var_os("CI").is_none(),
            "CI must have the AWS CLI (ci/setup installs it)"
        );
        eprintln!("skipped: the AWS CLI is not installed (run ci/setup)");
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let clip = dir.path().join("clip.mkv");
    gst_clip(&clip, 320, 240, "25/1", 100);
    let (_mock, url) = start_mock(&[]);
    let stats = replay(&clip, &url, "porch", &dir.path().join("stats.json"));
    let cli = |args: &[&str]| {
        let out = Command::new(&python)
            .args(["-m", "awscli"])
            .args(args)
            .args(["--region", REGION, "--output", "json"])
            .env("AWS_ACCESS_KEY_ID", KEY)
            .env("AWS_SECRET_ACCESS_KEY", SECRET)
            .env("AWS_CONFIG_FILE", "/dev/null")
            .env("AWS_SHARED_CREDENTIALS_FILE", "/dev/null")
            .env_remove("AWS_PROFILE")
            .env_remove("AWS_SESSION_TOKEN")
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "aws {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        serde_json::from_slice::<serde_json::Value>(&out.stdout).unwrap_or_default()
    };
    let described = cli(&[
        "--endpoint-url",
        &url,
        "kinesisvideo",
        "describe-stream",
        "--stream-name",
        "porch",
    ]);
    assert_eq!(described["StreamInfo"]["Status"], "ACTIVE", "{described}");
    let endpoint = cli(&[
        "--endpoint-url",
        &url,
        "kinesisvideo",
        "get-data-endpoint",
        "--stream-name",
        "porch",
        "--api-name",
        "GET_MEDIA",
    ]);
    let data = endpoint["DataEndpoint"].as_str().unwrap().to_owned();
    let fetched = dir.path().join("cli.mkv");
    cli(&[
        "--endpoint-url",
        &data,
        "kinesis-video-media",
        "get-media",
        "--stream-name",
        "porch",
        "--start-selector",
        "StartSelectorType=EARLIEST",
        fetched.to_str().unwrap(),
    ]);
    let p = probe(&fetched);
    assert_eq!((p.width, p.height, p.frames), (320, 240, 100), "{stats}");
    let text = testkit::mkvinfo(&fetched);
    assert!(text.contains("V_MPEG4/ISO/AVC"), "{text}");
    // mkvinfo describes the first chunk's segment, tags included (it stops at the next EBML
    // header, as with any chain of segments; ffprobe above decoded all of them).
    assert!(text.contains("AWS_KINESISVIDEO_FRAGMENT_NUMBER"), "{text}");
    assert!(
        text.contains("AWS_KINESISVIDEO_PRODUCER_TIMESTAMP"),
        "{text}"
    );
}
