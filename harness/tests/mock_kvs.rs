//! `telescope mock-kvs` driven by the real AWS SDK client and by Telescope's control code; the
//! same control code run against moto's server as a second, independent implementation.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use aws_sdk_kinesisvideo::error::ProvideErrorMetadata;
use aws_sdk_kinesisvideo::types::{ApiName, UpdateDataRetentionOperation};
use telescope::credentials::CredentialSource;
use telescope::kvs::{CreateStreamOptions, DataApi, KvsConfig, KvsControl, KvsError};
use testkit::ChildGuard;

const KEY: &str = "AKIDMOCKKVS0001";
const SECRET: &str = "mock-secret-key-for-tests";

/// Start `telescope mock-kvs` on a free loopback port; returns the guard and its URL.
fn start_mock(keys: bool) -> (ChildGuard, String) {
    let args: &[&str] = if keys {
        &["--access-key", KEY, "--secret-key", SECRET]
    } else {
        &[]
    };
    testkit::start_mock_kvs(env!("CARGO_BIN_EXE_telescope"), args)
}

fn config(url: &str, key: &str, secret: &str) -> KvsConfig {
    KvsConfig {
        region: "us-west-2".into(),
        endpoint: Some(url.to_owned()),
        credentials: CredentialSource::Static {
            access_key_id: key.into(),
            secret_access_key: secret.into(),
            session_token: None,
        },
    }
}

fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap()
}

#[test]
fn the_sdk_drives_every_control_plane_operation() {
    let (_guard, url) = start_mock(true);
    rt().block_on(async {
        let control = KvsControl::new(&config(&url, KEY, SECRET)).await.unwrap();
        let sdk = control.client().clone();

        // Typed errors from Telescope's control code.
        let missing = control.describe("lobby").await.unwrap_err();
        assert!(matches!(&missing, KvsError::StreamNotFound { stream, region } if stream == "lobby" && region == "us-west-2"));
        assert!(missing.to_string().contains("lobby") && missing.to_string().contains("us-west-2"));
        assert!(matches!(control.ensure_stream("lobby", None).await, Err(KvsError::StreamNotFound { .. })));

        // Create when asked, then everything the SDK can do with it.
        let described = control.ensure_stream("lobby", Some(&CreateStreamOptions::default())).await.unwrap();
        assert_eq!((described.status.as_str(), described.media_type.as_deref(), described.retention_hours), ("ACTIVE", Some("video/h264"), 24));
        assert!(matches!(control.create("lobby", &CreateStreamOptions::default()).await, Err(KvsError::AlreadyExists { .. })));
        let err = sdk.create_stream().stream_name("lobby").send().await.unwrap_err();
        assert_eq!(err.code(), Some("ResourceInUseException"));
        assert_eq!(control.data_endpoint("lobby", DataApi::PutMedia).await.unwrap(), url);
        assert_eq!(control.data_endpoint("lobby", DataApi::GetMedia).await.unwrap(), url);

        control.create("dock", &CreateStreamOptions { retention_hours: 0, media_type: "video/h264".into() }).await.unwrap();
        let listed = sdk.list_streams().send().await.unwrap();
        let names: Vec<_> = listed.stream_info_list().iter().filter_map(|s| s.stream_name()).collect();
        assert_eq!(names, vec!["dock", "lobby"]);
        let page = sdk.list_streams().max_results(1).send().await.unwrap();
        assert_eq!(page.stream_info_list().len(), 1);
        let next = sdk.list_streams().max_results(1).next_token(page.next_token().unwrap()).send().await.unwrap();
        assert_eq!(next.stream_info_list()[0].stream_name(), Some("lobby"));

        let version = sdk.describe_stream().stream_name("lobby").send().await.unwrap().stream_info().unwrap().version().unwrap().to_owned();
        sdk.update_data_retention()
            .stream_name("lobby")
            .current_version(&version)
            .operation(UpdateDataRetentionOperation::IncreaseDataRetention)
            .data_retention_change_in_hours(24)
            .send()
            .await
            .unwrap();
        assert_eq!(control.describe("lobby").await.unwrap().retention_hours, 48);
        let stale = sdk
            .update_data_retention()
            .stream_name("lobby")
            .current_version(&version)
            .operation(UpdateDataRetentionOperation::IncreaseDataRetention)
            .data_retention_change_in_hours(1)
            .send()
            .await
            .unwrap_err();
        assert_eq!(stale.code(), Some("VersionMismatchException"));

        sdk.tag_stream().stream_name("lobby").tags("site", "north").send().await.unwrap();
        let tags = sdk.list_tags_for_stream().stream_name("lobby").send().await.unwrap();
        assert_eq!(tags.tags().and_then(|t| t.get("site")).map(String::as_str), Some("north"));

        let bad = sdk.create_stream().stream_name("no spaces allowed").send().await.unwrap_err();
        assert_eq!(bad.code(), Some("InvalidArgumentException"));
        let bad_api = sdk.get_data_endpoint().stream_name("lobby").api_name(ApiName::from("NOPE")).send().await.unwrap_err();
        assert_eq!(bad_api.code(), Some("InvalidArgumentException"));

        control.delete("dock").await.unwrap();
        assert!(matches!(control.describe("dock").await, Err(KvsError::StreamNotFound { .. })));
    });
}

#[test]
fn bad_signatures_and_unknown_keys_are_refused() {
    let (_guard, url) = start_mock(true);
    rt().block_on(async {
        for (key, secret) in [(KEY, "not-the-secret"), ("AKIDSOMEONEELSE", SECRET)] {
            let control = KvsControl::new(&config(&url, key, secret)).await.unwrap();
            let err = control.describe("lobby").await.unwrap_err();
            assert!(matches!(err, KvsError::NotAuthorized { .. }), "{err}");
            let raw = control.client().list_streams().send().await.unwrap_err();
            assert_eq!(raw.code(), Some("NotAuthorizedException"));
            assert!(!err.to_string().contains(secret));
        }
        let good = KvsControl::new(&config(&url, KEY, SECRET)).await.unwrap();
        assert!(good.client().list_streams().send().await.is_ok());
    });
}

#[test]
fn streams_persist_in_the_store_across_restarts() {
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().to_str().unwrap().to_owned();
    let start = || testkit::start_mock_kvs(env!("CARGO_BIN_EXE_telescope"), &["--store", &store]);
    let (first, url) = start();
    rt().block_on(async {
        let control = KvsControl::new(&config(&url, KEY, SECRET)).await.unwrap();
        control
            .create("kept", &CreateStreamOptions::default())
            .await
            .unwrap();
    });
    drop(first);
    let (_second, url) = start();
    rt().block_on(async {
        let control = KvsControl::new(&config(&url, KEY, SECRET)).await.unwrap();
        assert_eq!(control.describe("kept").await.unwrap().status, "ACTIVE");
    });
}

#[test]
fn the_same_control_code_works_against_moto() {
    let Some(moto) = testkit::venv_tool("moto_server") else {
        assert!(
            std::env::var_os("CI").is_none(),
            "CI must have moto_server (ci/setup installs it)"
        );
        eprintln!("skipped: moto_server not installed (run ci/setup)");
        return;
    };
    let port = testkit::free_port();
    let _guard = ChildGuard(
        Command::new(moto)
            .args(["-H", "127.0.0.1", "-p", &port.to_string()])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let deadline = Instant::now() + Duration::from_secs(60);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(
            Instant::now() < deadline,
            "moto_server did not start within 60 s"
        );
        std::thread::sleep(Duration::from_millis(100)); // polling a port, bounded by the deadline
    }
    let url = format!("http://127.0.0.1:{port}");
    rt().block_on(async {
        let control = KvsControl::new(&config(&url, "testing", "testing"))
            .await
            .unwrap();
        let missing = control.describe("moto-cam").await;
        assert!(
            matches!(missing, Err(KvsError::StreamNotFound { .. })),
            "{missing:?}"
        );
        let arn = control
            .create("moto-cam", &CreateStreamOptions::default())
            .await
            .unwrap();
        assert!(arn.contains("moto-cam"), "{arn}");
        let endpoint = control
            .data_endpoint("moto-cam", DataApi::PutMedia)
            .await
            .unwrap();
        assert!(endpoint.starts_with("http"), "{endpoint}");
        // moto answers DescribeStream and ListStreams with CreationTime as a zone-less ISO
        // string where KVS sends epoch seconds; the AWS SDK for Rust follows the KVS model and
        // rejects it, so the stream is deleted by the ARN CreateStream returned.
        control
            .client()
            .delete_stream()
            .stream_arn(&arn)
            .send()
            .await
            .unwrap();
        let gone = control.describe("moto-cam").await;
        assert!(
            matches!(gone, Err(KvsError::StreamNotFound { .. })),
            "{gone:?}"
        );
    });
}

#[test]
fn localstack_runs_where_docker_answers() {
    let docker = Command::new("docker")
        .args(["info", "--format", "{{.ServerVersion}}"])
        .output();
    match docker {
        Ok(out) if out.status.success() => {}
        _ => {
            eprintln!(
                "skipped: no Docker engine answers here, so the LocalStack container cannot run"
            );
            return;
        }
    }
    let name = format!("telescope-localstack-{}", std::process::id());
    let started = Command::new("docker")
        .args([
            "run",
            "-d",
            "--rm",
            "--name",
            &name,
            "-p",
            "127.0.0.1::4566",
            "localstack/localstack",
        ])
        .output()
        .unwrap();
    assert!(
        started.status.success(),
        "{}",
        String::from_utf8_lossy(&started.stderr)
    );
    struct Stop(String);
    impl Drop for Stop {
        fn drop(&mut self) {
            let _ = Command::new("docker").args(["rm", "-f", &self.0]).output();
        }
    }
    let _stop = Stop(name.clone());
    let port = Command::new("docker")
        .args(["port", &name, "4566/tcp"])
        .output()
        .unwrap();
    let mapped = String::from_utf8_lossy(&port.stdout)
        .trim()
        .rsplit(':')
        .next()
        .unwrap_or_default()
        .to_owned();
    let url = format!("http://127.0.0.1:{mapped}");
    rt().block_on(async {
        let control = KvsControl::new(&config(&url, "test", "test"))
            .await
            .unwrap();
        let deadline = Instant::now() + Duration::from_secs(120);
        loop {
            match control
                .ensure_stream("ls-cam", Some(&CreateStreamOptions::default()))
                .await
            {
                Ok(d) => {
                    assert_eq!(d.status, "ACTIVE");
                    break;
                }
                Err(KvsError::Transport { .. }) if Instant::now() < deadline => {
                    tokio::time::sleep(Duration::from_millis(500)).await;
                }
                Err(e) => panic!("LocalStack: {e}"),
            }
        }
    });
}

// ---------------------------------------------------------------------------------------------
// Fidelity to the service's data plane, driven by curl (PutMedia, raw JSON), the AWS SDK
// (GetMedia) and boto3 (GetMediaForFragmentList), with mkvinfo parsing what comes back.

use telescope::kvs::mkv::{cluster, header, Block, TrackInfo};

/// `curl` with `args`; (HTTP status, body).
fn curl(args: &[&str]) -> (u16, String) {
    let out = Command::new("curl")
        .args(["-sS", "--max-time", "60", "-w", "\n%{http_code}"])
        .args(args)
        .output()
        .expect("curl runs (ci/setup installs it)");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let (body, status) = text.rsplit_once('\n').unwrap_or(("", &text));
    (status.trim().parse().unwrap_or(0), body.to_owned())
}

/// POST a JSON body to an unsigned mock's control plane.
fn post_json(url: &str, op: &str, body: &str) -> (u16, String) {
    curl(&[
        "-X",
        "POST",
        "-H",
        "content-type: application/json",
        "-d",
        body,
        &format!("{url}/{op}"),
    ])
}

/// PutMedia `mkv` with curl into `stream` (RELATIVE timecodes from `start` seconds when given);
/// (HTTP status, the acks).
fn put_media(
    url: &str,
    stream: &str,
    mkv: &[u8],
    start: Option<&str>,
) -> (u16, Vec<serde_json::Value>) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("body.mkv");
    std::fs::write(&path, mkv).unwrap();
    let mut args = vec![
        "-X".to_owned(),
        "POST".into(),
        "-H".into(),
        format!("x-amzn-stream-name: {stream}"),
        "--data-binary".into(),
        format!("@{}", path.display()),
    ];
    if let Some(start) = start {
        args.extend([
            "-H".into(),
            "x-amzn-fragment-timecode-type: RELATIVE".into(),
            "-H".into(),
            format!("x-amzn-producer-start-timestamp: {start}"),
        ]);
    }
    args.push(format!("{url}/putMedia"));
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let (status, body) = curl(&args);
    let acks = body
        .lines()
        .filter(|l| l.starts_with('{'))
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    (status, acks)
}

fn events(acks: &[serde_json::Value]) -> Vec<&str> {
    acks.iter()
        .filter_map(|a| a["EventType"].as_str())
        .collect()
}

fn stats(url: &str) -> serde_json::Value {
    let (status, body) = post_json(url, "_mock/stats", "{}");
    assert_eq!(status, 200, "{body}");
    serde_json::from_str(&body).unwrap()
}

fn track() -> Vec<u8> {
    header(
        &TrackInfo {
            width: 64,
            height: 48,
            codec_private: vec![1, 0x42, 0, 0x1e],
            frame_duration_ns: Some(40_000_000),
        },
        [5; 16],
    )
}

/// A fragment at `tc` with frames at the given offsets (the first a key frame when `key`).
fn fragment(tc: u64, offsets: &[i16], key: bool) -> Vec<u8> {
    let blocks: Vec<Block> = offsets
        .iter()
        .enumerate()
        .map(|(i, o)| Block {
            offset_ms: *o,
            key: key && i == 0,
            data: vec![0, 0, 0, 2, 0x65, i as u8],
        })
        .collect();
    cluster(tc, &blocks)
}

fn create(url: &str, stream: &str) {
    let (status, body) = post_json(
        url,
        "createStream",
        &format!(r#"{{"StreamName":"{stream}","DataRetentionInHours":24}}"#),
    );
    assert_eq!(status, 200, "{body}");
}

#[test]
fn fragments_not_starting_with_a_key_frame_are_stored_and_counted() {
    // ffmpeg's Matroska muxer with time-limited clusters and a long GOP: most clusters start
    // with a frame that is not a key frame, as users stream such files to KVS.
    let dir = tempfile::tempdir().unwrap();
    let clip = dir.path().join("gop.mkv");
    testkit::ffmpeg(&[
        "-f",
        "lavfi",
        "-i",
        "testsrc=size=160x120:rate=10",
        "-t",
        "4",
        "-c:v",
        "libx264",
        "-g",
        "100",
        "-bf",
        "0",
        "-pix_fmt",
        "yuv420p",
        "-cluster_time_limit",
        "500",
        clip.to_str().unwrap(),
    ]);
    let (_mock, url) = testkit::start_mock_kvs(env!("CARGO_BIN_EXE_telescope"), &[]);
    create(&url, "gop");
    let (status, acks) = put_media(
        &url,
        "gop",
        &std::fs::read(&clip).unwrap(),
        Some("1700000000"),
    );
    assert_eq!(status, 200);
    let kinds = events(&acks);
    assert!(!kinds.contains(&"ERROR"), "{acks:?}");
    let persisted = kinds.iter().filter(|k| **k == "PERSISTED").count();
    assert!(persisted >= 4, "{acks:?}");
    let s = stats(&url);
    assert_eq!(s["fragments"], persisted as u64, "{s}");
    assert_eq!(
        s["fragments_not_key_start"],
        persisted as u64 - 1,
        "every cluster after the first starts mid-GOP: {s}"
    );
    // BUFFERING already names the fragment, as the service's does.
    assert!(
        acks[0]["FragmentNumber"]
            .as_str()
            .is_some_and(|n| n.len() == 47),
        "{acks:?}"
    );
}

#[test]
fn a_fragment_must_start_after_the_previous_fragments_last_frame() {
    let (_mock, url) = testkit::start_mock_kvs(env!("CARGO_BIN_EXE_telescope"), &[]);
    create(&url, "order");
    // The second fragment starts after the first's timecode but before its last frame (1040):
    // ERROR 4004, then the connection is closed (the third fragment is never acked).
    let mut body = track();
    body.extend(fragment(1000, &[0, 20, 40], true));
    body.extend(fragment(1020, &[0, 20], true));
    body.extend(fragment(5000, &[0], true));
    let (_, acks) = put_media(&url, "order", &body, Some("1700000000"));
    assert_eq!(
        events(&acks),
        ["BUFFERING", "RECEIVED", "PERSISTED", "ERROR"],
        "{acks:?}"
    );
    let error = &acks[3];
    assert_eq!(error["ErrorId"], 4004);
    assert_eq!(error["ErrorCode"], "FRAGMENT_TIMECODE_LESSER_THAN_PREVIOUS");
    assert!(
        error["FragmentNumber"]
            .as_str()
            .is_some_and(|n| n.len() == 47 && n > acks[0]["FragmentNumber"].as_str().unwrap()),
        "{error}"
    );
    // Equal to the last frame is refused too (strictly after).
    let mut body = track();
    body.extend(fragment(1000, &[0, 40], true));
    body.extend(fragment(1040, &[0], true));
    let (_, acks) = put_media(&url, "order", &body, Some("1700000000"));
    assert_eq!(acks.last().unwrap()["ErrorId"], 4004, "{acks:?}");
    // Just after it is accepted; and the rule is per connection: a new one may start over.
    let mut body = track();
    body.extend(fragment(1000, &[0, 40], true));
    body.extend(fragment(1041, &[0], true));
    let (_, acks) = put_media(&url, "order", &body, Some("1700000000"));
    assert_eq!(
        events(&acks).iter().filter(|k| **k == "PERSISTED").count(),
        2,
        "{acks:?}"
    );
}

#[test]
fn an_injected_error_ack_ends_the_connection() {
    let (_mock, url) = testkit::start_mock_kvs(
        env!("CARGO_BIN_EXE_telescope"),
        &["--fault", "error-ack:5000:1"],
    );
    create(&url, "errs");
    let mut body = track();
    body.extend(fragment(1000, &[0], true));
    body.extend(fragment(3000, &[0], true));
    let (_, acks) = put_media(&url, "errs", &body, Some("1700000000"));
    assert_eq!(events(&acks), ["ERROR"], "{acks:?}");
    assert!(acks[0]["ErrorCode"].is_string() && acks[0]["FragmentNumber"].is_string());
}

/// The SDK's GetMedia client for an unsigned mock (any keys pass).
fn media_client(url: &str) -> aws_sdk_kinesisvideomedia::Client {
    let conf = aws_sdk_kinesisvideomedia::Config::builder()
        .behavior_version(aws_sdk_kinesisvideomedia::config::BehaviorVersion::latest())
        .region(aws_sdk_kinesisvideomedia::config::Region::new("us-east-1"))
        .credentials_provider(aws_sdk_kinesisvideomedia::config::Credentials::new(
            KEY, SECRET, None, None, "test",
        ))
        .endpoint_url(url)
        .build();
    aws_sdk_kinesisvideomedia::Client::from_conf(conf)
}

/// The value of every `name` tag (a TagString of under 127 bytes follows its TagName).
fn tag_values(bytes: &[u8], name: &str) -> Vec<String> {
    let mut out = Vec::new();
    let needle = name.as_bytes();
    let mut i = 0;
    while let Some(at) = bytes[i..].windows(needle.len()).position(|w| w == needle) {
        let v = i + at + needle.len();
        if bytes.get(v..v + 2) == Some(&[0x44, 0x87]) {
            let len = usize::from(bytes[v + 2] & 0x7f);
            out.push(String::from_utf8_lossy(&bytes[v + 3..v + 3 + len]).into_owned());
        }
        i = v;
    }
    out
}

/// Three two-second fragments of 50 frames (40 ms apart) at 1700000000 s + 0, 2, 4 s, put
/// into a new `stream`; their numbers.
fn three_fragments(url: &str, stream: &str) -> Vec<String> {
    create(url, stream);
    let offsets: Vec<i16> = (0..50).map(|i| i * 40).collect();
    let mut body = track();
    for i in 0..3 {
        body.extend(fragment(i * 2000, &offsets, true));
    }
    let (_, acks) = put_media(url, stream, &body, Some("1700000000"));
    let numbers: Vec<String> = acks
        .iter()
        .filter(|a| a["EventType"] == "PERSISTED")
        .map(|a| a["FragmentNumber"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(numbers.len(), 3, "{acks:?}");
    numbers
}

#[test]
fn get_media_from_a_timestamp_starts_with_the_fragment_containing_it() {
    let (_mock, url) = testkit::start_mock_kvs(
        env!("CARGO_BIN_EXE_telescope"),
        &["--get-media-idle", "200ms"],
    );
    let numbers = three_fragments(&url, "clock");
    let media = media_client(&url);
    rt().block_on(async {
        use aws_sdk_kinesisvideomedia::primitives::DateTime;
        use aws_sdk_kinesisvideomedia::types::{StartSelector, StartSelectorType};
        // 3.5 s in: inside the second fragment (2.0 to 4.0 s).
        for (at, first) in [
            (1_700_000_003.5, 1),
            (1_700_000_002.0, 1),
            (1_699_999_999.0, 0),
        ] {
            let got = media
                .get_media()
                .stream_name("clock")
                .start_selector(
                    StartSelector::builder()
                        .start_selector_type(StartSelectorType::ProducerTimestamp)
                        .start_timestamp(DateTime::from_secs_f64(at))
                        .build()
                        .unwrap(),
                )
                .send()
                .await
                .unwrap();
            let bytes = got.payload.collect().await.unwrap().into_bytes();
            assert_eq!(
                tag_values(&bytes, "AWS_KINESISVIDEO_FRAGMENT_NUMBER"),
                numbers[first..],
                "from {at}"
            );
        }
    });
}

#[test]
fn get_media_after_an_unknown_fragment_number_answers_with_an_error_chunk() {
    let (_mock, url) = testkit::start_mock_kvs(env!("CARGO_BIN_EXE_telescope"), &[]);
    let numbers = three_fragments(&url, "gone");
    let unknown = format!("{}9", &numbers[0][..46]);
    assert!(!numbers.contains(&unknown));
    let media = media_client(&url);
    let dir = tempfile::tempdir().unwrap();
    let bytes = rt().block_on(async {
        use aws_sdk_kinesisvideomedia::operation::RequestId;
        use aws_sdk_kinesisvideomedia::types::{StartSelector, StartSelectorType};
        let got = media
            .get_media()
            .stream_name("gone")
            .start_selector(
                StartSelector::builder()
                    .start_selector_type(StartSelectorType::FragmentNumber)
                    .after_fragment_number(&unknown)
                    .build()
                    .unwrap(),
            )
            .send()
            .await
            .expect("HTTP 200, the error comes in the payload");
        assert!(
            got.request_id().is_some_and(|id| id.len() == 36),
            "GetMedia carries a request id"
        );
        got.payload.collect().await.unwrap().into_bytes()
    });
    assert_eq!(tag_values(&bytes, "AWS_KINESISVIDEO_ERROR_ID"), ["4000"]);
    assert_eq!(
        tag_values(&bytes, "AWS_KINESISVIDEO_FRAGMENT_NUMBER"),
        [unknown]
    );
    let file = dir.path().join("error.mkv");
    std::fs::write(&file, &bytes).unwrap();
    let text = testkit::mkvinfo(&file);
    assert!(text.contains("AWS_KINESISVIDEO_ERROR_CODE"), "{text}");
}

/// Split a media payload into its chunks (each starts with an EBML header).
fn chunks(bytes: &[u8]) -> Vec<&[u8]> {
    let magic = [0x1A, 0x45, 0xDF, 0xA3];
    let starts: Vec<usize> = (0..bytes.len().saturating_sub(3))
        .filter(|i| bytes[*i..*i + 4] == magic)
        .collect();
    assert_eq!(
        starts.first(),
        Some(&0),
        "the payload starts with an EBML header"
    );
    starts
        .iter()
        .zip(starts.iter().skip(1).chain(std::iter::once(&bytes.len())))
        .map(|(a, b)| &bytes[*a..*b])
        .collect()
}

#[test]
fn get_media_for_fragment_list_reports_an_unknown_fragment_in_a_chunk_of_its_own() {
    let Some(python) = testkit::venv_tool("python").filter(|py| {
        Command::new(py)
            .args(["-c", "import boto3"])
            .output()
            .is_ok_and(|o| o.status.success())
    }) else {
        assert!(
            std::env::var_os("CI").is_none(),
            "CI must have boto3 (ci/setup installs it)"
        );
        eprintln!("skipped: boto3 is not installed (run ci/setup)");
        return;
    };
    let (_mock, url) = testkit::start_mock_kvs(env!("CARGO_BIN_EXE_telescope"), &[]);
    let numbers = three_fragments(&url, "list");
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("payload.mkv");
    // The unknown number first (where it once came without any EBML header), then two known.
    let script = r#"
import boto3, json, sys
url, out, numbers = sys.argv[1], sys.argv[2], json.loads(sys.argv[3])
s = boto3.session.Session(aws_access_key_id="k", aws_secret_access_key="s", region_name="us-east-1")
a = s.client("kinesis-video-archived-media", endpoint_url=url)
got = a.get_media_for_fragment_list(StreamName="list", Fragments=numbers)
open(out, "wb").write(got["Payload"].read())
"#;
    let asked = serde_json::json!(["7", numbers[0], numbers[2]]).to_string();
    let run = Command::new(python)
        .args(["-c", script, &url, out.to_str().unwrap(), &asked])
        .output()
        .unwrap();
    assert!(
        run.status.success(),
        "{}",
        String::from_utf8_lossy(&run.stderr)
    );
    let payload = std::fs::read(&out).unwrap();
    let parts = chunks(&payload);
    assert_eq!(parts.len(), 3, "one chunk per fragment asked");
    for (i, part) in parts.iter().enumerate() {
        let file = dir.path().join(format!("chunk{i}.mkv"));
        std::fs::write(&file, part).unwrap();
        let text = testkit::mkvinfo(&file);
        assert!(
            text.contains("EBML head") || text.contains("EBML-Kopf") || text.contains("+ EBML"),
            "{text}"
        );
        // The mock's own parser reads each chunk: a header and a cluster, or neither.
        let events = mock_kvs::mkv::MkvParser::new().push(part);
        assert!(events.iter().all(Result::is_ok), "chunk {i}: {events:?}");
        if i == 0 {
            assert!(events.is_empty(), "an error chunk has no Tracks or Cluster");
            assert_eq!(
                tag_values(part, "AWS_KINESISVIDEO_ERROR_CODE"),
                ["FRAGMENT_NOT_FOUND"]
            );
            assert_eq!(tag_values(part, "AWS_KINESISVIDEO_ERROR_ID"), ["3000"]);
            assert_eq!(tag_values(part, "AWS_KINESISVIDEO_FRAGMENT_NUMBER"), ["7"]);
        } else {
            assert_eq!(events.len(), 2, "chunk {i}: header and cluster");
            assert_eq!(
                tag_values(part, "AWS_KINESISVIDEO_FRAGMENT_NUMBER"),
                [numbers[if i == 1 { 0 } else { 2 }].clone()]
            );
            assert!(text.contains("Cluster"), "{text}");
        }
    }
}

#[test]
fn live_get_media_waits_for_a_producer_that_starts_late() {
    let (_mock, url) = testkit::start_mock_kvs(
        env!("CARGO_BIN_EXE_telescope"),
        &["--get-media-idle", "500ms"],
    );
    create(&url, "late");
    let media = media_client(&url);
    rt().block_on(async {
        use aws_sdk_kinesisvideomedia::types::{StartSelector, StartSelectorType};
        let mut got = media
            .get_media()
            .stream_name("late")
            .start_selector(
                StartSelector::builder()
                    .start_selector_type(StartSelectorType::Now)
                    .build()
                    .unwrap(),
            )
            .send()
            .await
            .unwrap();
        // Four idle periods pass with nothing to send: the response stays open.
        let waited = tokio::time::timeout(Duration::from_secs(2), got.payload.next()).await;
        assert!(
            waited.is_err(),
            "the response ended before any data: {waited:?}"
        );
        // The slow producer's first fragment arrives, then the producer goes away.
        let url = url.clone();
        let producer = tokio::task::spawn_blocking(move || {
            let mut body = track();
            body.extend(fragment(0, &[0, 40], true));
            put_media(&url, "late", &body, Some("1700000000"))
        });
        let mut bytes = Vec::new();
        let read = tokio::time::timeout(Duration::from_secs(30), async {
            while let Some(piece) = got.payload.next().await {
                bytes.extend_from_slice(&piece.unwrap());
            }
        })
        .await;
        assert!(read.is_ok(), "the response ends once the producer has gone");
        let (_, acks) = producer.await.unwrap();
        let number = acks[0]["FragmentNumber"].as_str().unwrap().to_owned();
        assert_eq!(
            tag_values(&bytes, "AWS_KINESISVIDEO_FRAGMENT_NUMBER"),
            [number]
        );
    });
}

#[test]
fn refused_requests_change_nothing_and_wrong_types_are_serialization_errors() {
    let (_mock, url) = testkit::start_mock_kvs(env!("CARGO_BIN_EXE_telescope"), &[]);
    create(&url, "tags");
    let fifty: serde_json::Map<String, serde_json::Value> =
        (0..50).map(|i| (format!("k{i}"), "v".into())).collect();
    let tag = |tags: serde_json::Value| {
        post_json(
            &url,
            "tagStream",
            &serde_json::json!({"StreamName": "tags", "Tags": tags}).to_string(),
        )
    };
    assert_eq!(tag(fifty.into()).0, 200);
    let (status, body) = tag(serde_json::json!({"one-too-many": "v", "k0": "changed"}));
    assert_eq!(status, 400, "{body}");
    let (_, listed) = post_json(&url, "listTagsForStream", r#"{"StreamName":"tags"}"#);
    let listed: serde_json::Value = serde_json::from_str(&listed).unwrap();
    let listed = listed["Tags"].as_object().unwrap();
    assert_eq!(
        (listed.len(), listed["k0"].as_str()),
        (50, Some("v")),
        "a refused TagStream applies nothing"
    );

    for (retention, kind) in [
        (r#""24""#, "SerializationException"),
        ("1e18", "SerializationException"),
        ("2.5", "SerializationException"),
        ("87601", "InvalidArgumentException"),
        ("-1", "InvalidArgumentException"),
    ] {
        let out = Command::new("curl")
            .args([
                "-sS",
                "-i",
                "-X",
                "POST",
                "-H",
                "content-type: application/json",
                "-d",
            ])
            .arg(format!(
                r#"{{"StreamName":"r{}","DataRetentionInHours":{retention}}}"#,
                retention.len()
            ))
            .arg(format!("{url}/createStream"))
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&out.stdout).to_lowercase();
        assert!(text.starts_with("http/1.1 400"), "{retention}: {text}");
        assert!(
            text.contains(&format!("x-amzn-errortype: {}", kind.to_lowercase())),
            "{retention}: {text}"
        );
        assert!(text.contains("x-amzn-requestid: "), "{text}");
    }
    assert_eq!(
        post_json(
            &url,
            "createStream",
            r#"{"StreamName":"ten-years","DataRetentionInHours":87600}"#
        )
        .0,
        200
    );

    // A producer start time that is no time is refused, not wrapped into one.
    let mut body = track();
    body.extend(fragment(0, &[0], true));
    for start in ["1e300", "-5", "inf", "nan"] {
        let (status, acks) = put_media(&url, "tags", &body, Some(start));
        assert_eq!(status, 400, "{start}: {acks:?}");
        assert!(events(&acks).is_empty(), "{start}: {acks:?}");
    }
}

#[test]
fn the_admin_endpoint_takes_the_same_credentials_as_the_apis() {
    let (_mock, url) = start_mock(true);
    let faults = format!("{url}/_mock/faults");
    let body = r#"{"faults":["reset-after:2"]}"#;
    let unsigned = curl(&[
        "-X",
        "POST",
        "-H",
        "content-type: application/json",
        "-d",
        body,
        &faults,
    ]);
    assert_eq!(unsigned.0, 401, "{unsigned:?}");
    let sigv4 = "aws:amz:us-east-1:kinesisvideo";
    let wrong = curl(&[
        "--aws-sigv4",
        sigv4,
        "--user",
        &format!("{KEY}:nope"),
        "-X",
        "POST",
        "-H",
        "content-type: application/json",
        "-d",
        body,
        &faults,
    ]);
    assert_eq!(wrong.0, 401, "{wrong:?}");
    let signed = curl(&[
        "--aws-sigv4",
        sigv4,
        "--user",
        &format!("{KEY}:{SECRET}"),
        "-X",
        "POST",
        "-H",
        "content-type: application/json",
        "-d",
        body,
        &faults,
    ]);
    assert_eq!(signed.0, 200, "{signed:?}");
    assert!(signed.1.contains("ResetAfterFragments"), "{signed:?}");
}

// ---------------------------------------------------------------------------------------------
// Hostile input, over raw sockets: the server keeps answering and its memory stays bounded.

/// Resident memory of a process, MiB.
fn rss_mib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let kib: u64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .unwrap();
    kib / 1024
}

/// DescribeStream over a fresh socket; how long the answer took (it must be a 200).
fn describe_within(addr: &str, limit: Duration) -> Duration {
    use std::io::{Read, Write};
    let started = Instant::now();
    let mut s = std::net::TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(limit)).unwrap();
    let body = r#"{"StreamName":"flood"}"#;
    write!(
        s,
        "POST /describeStream HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/json\r\n\
         Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    let mut answer = String::new();
    let _ = s.read_to_string(&mut answer);
    let took = started.elapsed();
    assert!(
        answer.starts_with("HTTP/1.1 200"),
        "after {took:?}: {answer:?}"
    );
    assert!(took < limit, "DescribeStream took {took:?}");
    took
}

/// Whether the server closes `s` within `limit` (a read returns end of file or an error).
fn closed_within(s: &mut std::net::TcpStream, limit: Duration) -> bool {
    use std::io::Read;
    let deadline = Instant::now() + limit;
    let mut buf = [0u8; 4096];
    while Instant::now() < deadline {
        s.set_read_timeout(Some(Duration::from_millis(200)))
            .unwrap();
        match s.read(&mut buf) {
            Ok(0) => return true,
            Ok(_) => {}
            Err(e)
                if e.kind() == std::io::ErrorKind::WouldBlock
                    || e.kind() == std::io::ErrorKind::TimedOut => {}
            Err(_) => return true,
        }
    }
    false
}

/// The PutMedia request line and headers for `stream`, with a body of `len` bytes.
fn put_media_head(addr: &str, stream: &str, len: usize) -> String {
    format!(
        "POST /putMedia HTTP/1.1\r\nHost: {addr}\r\nx-amzn-stream-name: {stream}\r\n\
         x-amzn-fragment-timecode-type: RELATIVE\r\nx-amzn-producer-start-timestamp: 1700000000\r\n\
         Content-Length: {len}\r\n\r\n"
    )
}

#[test]
fn floods_neither_exhaust_the_server_nor_shut_out_describe_stream() {
    use std::io::Write;
    // 256 descriptors, as in the report that found the accept loop spinning on EMFILE.
    let mut child = Command::new("sh")
        .args(["-c", "ulimit -n 256 && exec \"$0\" mock-kvs --listen 127.0.0.1:0 --request-timeout 1s --put-media-idle 1s"])
        .arg(env!("CARGO_BIN_EXE_telescope"))
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut line = String::new();
    std::io::BufRead::read_line(
        &mut std::io::BufReader::new(child.stdout.take().unwrap()),
        &mut line,
    )
    .unwrap();
    let guard = ChildGuard(child);
    let pid = guard.0.id();
    let url = line
        .trim()
        .strip_prefix("mock-kvs listening on ")
        .unwrap()
        .to_owned();
    let addr = url.strip_prefix("http://").unwrap().to_owned();
    create(&url, "flood");
    let base = rss_mib(pid);
    let mut figures = vec![format!("idle: {base} MiB")];

    // 1. 300 connections that send nothing, more than the descriptors allow.
    let idle: Vec<std::net::TcpStream> = (0..300)
        .map(|_| std::net::TcpStream::connect(&addr).unwrap())
        .collect();
    let took = describe_within(&addr, Duration::from_secs(1));
    figures.push(format!(
        "300 idle connections: DescribeStream {took:?}, {} MiB",
        rss_mib(pid)
    ));
    drop(idle);

    // 2. 200 connections sending their headers and stopping: each is closed.
    let mut partial: Vec<std::net::TcpStream> = (0..200)
        .map(|_| {
            let mut s = std::net::TcpStream::connect(&addr).unwrap();
            s.write_all(b"POST /describeStream HTTP/1.1\r\nHost: x\r\nX-Slow: ")
                .unwrap();
            s
        })
        .collect();
    let took = describe_within(&addr, Duration::from_secs(1));
    figures.push(format!(
        "200 header-only connections: DescribeStream {took:?}, {} MiB",
        rss_mib(pid)
    ));
    assert!(
        partial
            .iter_mut()
            .all(|s| closed_within(s, Duration::from_secs(10))),
        "header-only connections are closed"
    );

    // 3. A PutMedia that sends its body a byte at a time, never completing a fragment.
    let mut slow = std::net::TcpStream::connect(&addr).unwrap();
    slow.write_all(put_media_head(&addr, "flood", 1 << 20).as_bytes())
        .unwrap();
    let mut body = track();
    body.extend(fragment(0, &[0], true));
    let trickle = &body[..body.len() - 4];
    let cut = {
        let mut s = slow.try_clone().unwrap();
        let trickle = trickle.to_vec();
        std::thread::spawn(move || {
            for b in trickle {
                if s.write_all(&[b]).is_err() {
                    return true;
                }
                std::thread::sleep(Duration::from_millis(20)); // the flood's pace, not synchronisation
            }
            false
        })
    };
    let took = describe_within(&addr, Duration::from_secs(1));
    assert!(
        closed_within(&mut slow, Duration::from_secs(15)),
        "a trickling PutMedia is closed"
    );
    let _ = cut.join();
    figures.push(format!(
        "byte-a-time PutMedia: DescribeStream {took:?}, {} MiB",
        rss_mib(pid)
    ));

    // 4. Two PutMedia connections, each a cluster of unknown size growing past 50 MB.
    let mut peak = 0;
    let mut answers = Vec::new();
    for _ in 0..2 {
        let mut s = std::net::TcpStream::connect(&addr).unwrap();
        s.write_all(put_media_head(&addr, "flood", 200 << 20).as_bytes())
            .unwrap();
        s.write_all(&track()).unwrap();
        let mut open = vec![
            0x1F, 0x43, 0xB6, 0x75, 0x01, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xE7, 0x81,
            0x00,
        ];
        let mut block = vec![0xA3, 0x10, 0x10, 0x00, 0x00, 0x81, 0, 0, 0x80];
        block.resize(5 + 0x10_0000, 7);
        s.write_all(&open).unwrap();
        open.clear();
        for _ in 0..60 {
            if s.write_all(&block).is_err() {
                break;
            }
            peak = peak.max(rss_mib(pid));
        }
        let took = describe_within(&addr, Duration::from_secs(1));
        let mut acks = String::new();
        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        let _ = std::io::Read::read_to_string(&mut s, &mut acks);
        answers.push((took, acks));
    }
    for (_, acks) in &answers {
        assert!(
            acks.contains(r#""ErrorId":4001"#) && acks.contains("MAX_FRAGMENT_SIZE_REACHED"),
            "{acks}"
        );
    }
    figures.push(format!(
        "two 60 MiB unknown-size clusters: DescribeStream {:?}, peak {peak} MiB, after {} MiB",
        answers[0].0,
        rss_mib(pid)
    ));
    eprintln!(
        "mock-kvs under floods (ulimit -n 256):\n  {}",
        figures.join("\n  ")
    );
    assert!(peak < 400, "peak {peak} MiB");
    let s = stats(&url);
    assert!(s["timed_out"].as_u64().unwrap() >= 1, "{s}");
}
