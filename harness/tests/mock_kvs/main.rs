//! `telescope mock-kvs` checked with real clients: the AWS SDK, Telescope's control code (also
//! run against moto's server as a second, independent implementation), curl, boto3 and mkvinfo.
//!
//! One test binary, a module per area; the helpers they share are here.

mod control;
mod get_media;
mod limits;
mod put_media;

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
