//! Archived-media playback from mock-kvs, checked with real clients: footage replayed into the
//! mock by `telescope replay`, then boto3 and the AWS CLI for every API and documented error,
//! ffprobe counting every frame through HLS (fMP4 and TS), DASH and the clip, the images
//! decoded at their asked size, and the web viewer playing in a headless Chromium.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use testkit::{gst_clip, probe, ChildGuard};

const FRAMES: u32 = 150;

/// Python of the project venv with boto3 and, when `selenium`, Selenium; `None` (after saying
/// why) where it is missing outside CI.
fn python(selenium: bool) -> Option<PathBuf> {
    let module = if selenium { "selenium" } else { "boto3" };
    let found = testkit::venv_tool("python").filter(|py| {
        Command::new(py)
            .args(["-c", &format!("import {module}")])
            .output()
            .is_ok_and(|o| o.status.success())
    });
    if found.is_none() {
        assert!(
            std::env::var_os("CI").is_none(),
            "CI must have {module} (ci/setup installs it)"
        );
        eprintln!("skipped: {module} is not installed (run ci/setup)");
    }
    found
}

fn script(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/playback")
        .join(name)
}

/// `telescope replay` of a generated clip into `stream` on the mock at `url`.
fn replay_command(clip: &Path, url: &str, stream: &str, virtual_clock: bool) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_telescope"));
    cmd.arg("replay").arg(clip).arg("--create-stream");
    if virtual_clock {
        cmd.arg("--virtual-clock");
    }
    cmd.arg("--sink")
        .arg(format!("kvs://{stream}?endpoint={url}&region=us-east-1"))
        .env("AWS_ACCESS_KEY_ID", "AKIDPLAYBACK")
        .env("AWS_SECRET_ACCESS_KEY", "playback-secret")
        .env_remove("AWS_SESSION_TOKEN")
        .env_remove("AWS_PROFILE");
    cmd
}

/// A mock with `stream` holding `FRAMES` frames of 320x240 at 25 fps; the guard, URL and
/// the directory holding the clip.
fn stream_written(stream: &str) -> (ChildGuard, String, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let clip = dir.path().join("clip.mkv");
    gst_clip(&clip, 320, 240, "25/1", FRAMES);
    let (mock, url) = testkit::start_mock_kvs(env!("CARGO_BIN_EXE_telescope"), &[]);
    let out = replay_command(&clip, &url, stream, true).output().unwrap();
    assert!(
        out.status.success(),
        "replay: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    (mock, url, dir)
}

fn run_json(python: &Path, args: &[&str]) -> serde_json::Value {
    let out = Command::new(python).args(args).output().unwrap();
    assert!(
        out.status.success(),
        "{args:?}: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8_lossy(&out.stdout);
    serde_json::from_str(text.lines().last().unwrap_or("")).unwrap()
}

#[test]
fn every_frame_put_plays_back_through_hls_dash_and_clips_with_its_producer_timestamp() {
    let Some(python) = python(false) else { return };
    let (_mock, url, dir) = stream_written("lobby");
    let out_dir = dir.path().to_str().unwrap();
    let got = run_json(
        &python,
        &[
            script("archived_media.py").to_str().unwrap(),
            &url,
            "lobby",
            out_dir,
        ],
    );
    // ffprobe counts every frame put through each way of watching.
    for key in ["hls_fmp4", "hls_ts", "dash", "cli_hls"] {
        let at = got[key].as_str().unwrap();
        let p = probe(Path::new(at));
        assert_eq!(
            (p.frames, p.width, p.height),
            (FRAMES as u64, 320, 240),
            "{key}"
        );
    }
    for file in ["clip.mp4", "cli-clip.mp4"] {
        let p = probe(&dir.path().join(file));
        assert_eq!(
            (p.frames, p.codec.as_str()),
            (FRAMES as u64, "h264"),
            "{file}"
        );
        assert!((p.duration - 6.0).abs() < 0.1, "{file}: {p:?}");
    }
    // The clip says when it was recorded: its first frame's producer time, to the second.
    let created = testkit::host_tool("ffprobe")
        .args(["-v", "error", "-show_entries", "format_tags=creation_time"])
        .args(["-of", "default=nw=1:nk=1"])
        .arg(dir.path().join("clip.mp4"))
        .output()
        .unwrap();
    let created = String::from_utf8_lossy(&created.stdout).trim().to_owned();
    let first_s = got["fragments"][0][1].as_f64().unwrap() as i64;
    let expected = time_of(first_s);
    assert!(created.starts_with(&expected), "{created} vs {expected}");
    // The fMP4 timeline is the producer's: the first frame at the first fragment's producer
    // timestamp, then one frame every 40 ms.
    let first_fragment = got["fragments"][0][1].as_f64().unwrap();
    for key in ["hls_fmp4", "dash"] {
        let times = testkit::frame_times(Path::new(got[key].as_str().unwrap()));
        assert_eq!(times.len(), FRAMES as usize, "{key}");
        assert!(
            (times[0] - first_fragment).abs() < 0.0005,
            "{key}: {times:?}"
        );
        for pair in times.windows(2) {
            assert!(
                (pair[1] - pair[0] - 0.040).abs() < 0.0015,
                "{key}: {pair:?}"
            );
        }
    }
    check_images(&got);
    let errors = got["errors"].as_object().unwrap();
    assert!(
        errors.len() >= 17,
        "every documented error tried: {errors:?}"
    );
}

/// `YYYY-MM-DDTHH:MM:SS` of Unix seconds (UTC), as ffprobe prints times.
fn time_of(unix_s: i64) -> String {
    let out = Command::new("date")
        .args(["-u", "-d", &format!("@{unix_s}"), "+%Y-%m-%dT%H:%M:%S"])
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

fn check_images(got: &serde_json::Value) {
    let images = got["images"].as_array().unwrap();
    assert!(got["image_pages"].as_u64().unwrap() >= 2, "paged: {got}");
    let decoded: Vec<&str> = images.iter().filter_map(|i| i["path"].as_str()).collect();
    // 500 ms sampling over 6 s of media, from a second before it: about 12 images.
    assert!(decoded.len() >= 11, "{images:?}");
    for path in decoded {
        let p = probe(Path::new(path));
        assert_eq!((p.width, p.height), (160, 90), "{path}");
    }
    assert_eq!(
        images[0]["error"], "NO_MEDIA",
        "a time before the stream has no image: {images:?}"
    );
    let png = probe(Path::new(got["png"].as_str().unwrap()));
    assert_eq!(
        (png.width, png.height, png.codec.as_str()),
        (320, 240, "png")
    );
    assert_eq!(
        got["cli_images"], 2,
        "two times a second apart, both inside the stream"
    );
}

/// `curl` GET; (status, body).
fn get(url: &str) -> (u16, String) {
    let out = Command::new("curl")
        .args(["-sS", "--max-time", "30", "-w", "\n%{http_code}", url])
        .output()
        .expect("curl runs (ci/setup installs it)");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let (body, status) = text.rsplit_once('\n').unwrap_or(("", &text));
    (status.trim().parse().unwrap_or(0), body.to_owned())
}

/// `curl` POST of JSON; (status, the `x-amzn-ErrorType` header, body).
fn post(url: &str, op: &str, body: &str) -> (u16, String, String) {
    let out = Command::new("curl")
        .args(["-sS", "--max-time", "30", "-D", "-", "-X", "POST"])
        .args(["-H", "content-type: application/json", "-d", body])
        .arg(format!("{url}/{op}"))
        .output()
        .expect("curl runs");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let kind = head
        .lines()
        .find_map(|l| l.strip_prefix("x-amzn-errortype: "))
        .unwrap_or("")
        .trim()
        .to_owned();
    (status, kind, body.to_owned())
}

/// A stream being written on the real clock: `frames` of a 320x240 25 fps clip replayed into
/// `stream` on a mock-kvs of its own (both stopped on drop).
struct Live {
    url: String,
    _producer: ChildGuard,
    _mock: ChildGuard,
    _dir: tempfile::TempDir,
}

impl Live {
    fn start(frames: u32, stream: &str) -> Live {
        let dir = tempfile::tempdir().unwrap();
        let clip = dir.path().join("clip.mkv");
        gst_clip(&clip, 320, 240, "25/1", frames);
        let (mock, url) = testkit::start_mock_kvs(env!("CARGO_BIN_EXE_telescope"), &[]);
        let producer = replay_command(&clip, &url, stream, false)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        Live {
            url,
            _producer: ChildGuard(producer),
            _mock: mock,
            _dir: dir,
        }
    }
}

#[test]
fn a_live_playlist_grows_while_the_stream_is_written() {
    // On the real clock: ten seconds of footage, two-second fragments.
    let live = Live::start(250, "live");
    let url = live.url.clone();
    let ask = r#"{"StreamName":"live","PlaybackMode":"LIVE","HLSFragmentSelector":{"FragmentSelectorType":"PRODUCER_TIMESTAMP"}}"#;
    let deadline = Instant::now() + Duration::from_secs(60);
    let session = loop {
        let (status, kind, body) = post(&url, "getHLSStreamingSessionURL", ask);
        if status == 200 {
            let v: serde_json::Value = serde_json::from_str(&body).unwrap();
            break v["HLSStreamingSessionURL"].as_str().unwrap().to_owned();
        }
        assert!(
            Instant::now() < deadline,
            "no live session: {status} {kind} {body}"
        );
        // Before the first fragment: ResourceNotFoundException, as the service answers.
        assert_eq!((status, kind.as_str()), (404, "ResourceNotFoundException"));
        std::thread::sleep(Duration::from_millis(100));
    };
    let media = session.replace("getHLSMasterPlaylist", "getHLSMediaPlaylist") + "&TrackNumber=1";
    let fragments = |playlist: &str| {
        playlist
            .lines()
            .filter(|l| l.starts_with("getMP4MediaFragment.mp4"))
            .map(str::to_owned)
            .collect::<Vec<_>>()
    };
    let (status, first) = get(&media);
    assert_eq!(status, 200, "{first}");
    assert!(!first.contains("#EXT-X-ENDLIST"), "a live playlist is open");
    let seen = fragments(&first);
    assert!(!seen.is_empty(), "{first}");
    loop {
        let (_, now) = get(&media);
        let listed = fragments(&now);
        if listed.last() != seen.last() {
            break;
        }
        assert!(Instant::now() < deadline, "the playlist never grew: {now}");
        std::thread::sleep(Duration::from_millis(200));
    }
    // A live DASH manifest of the same stream, read by ffprobe while it is written: frames
    // with producer timestamps (about now, in seconds since the epoch).
    let (status, _, body) = post(
        &url,
        "getDASHStreamingSessionURL",
        r#"{"StreamName":"live","PlaybackMode":"LIVE"}"#,
    );
    assert_eq!(status, 200, "{body}");
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    let dash = v["DASHStreamingSessionURL"].as_str().unwrap();
    let out = testkit::host_tool("timeout")
        .args(["60", "ffprobe", "-v", "error", "-read_intervals", "%+1"])
        .args(["-select_streams", "v:0", "-show_entries", "frame=pts_time"])
        .args(["-of", "csv=p=0", dash])
        .output()
        .unwrap();
    let times: Vec<f64> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| l.trim().trim_end_matches(',').parse().ok())
        .collect();
    assert!(
        !times.is_empty(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(times[0] > 1_700_000_000.0, "producer time: {times:?}");
    // GStreamer's DASH reader plays it live too (it starts from the availability time, so a
    // timeline anchored far from the media gave it nothing): 25 frames decoded, then stopped.
    let mut gst = testkit::host_tool("timeout")
        .args([
            "60",
            "gst-launch-1.0",
            "-v",
            "uridecodebin",
            &format!("uri={dash}"),
        ])
        .args([
            "caps=video/x-raw",
            "!",
            "fakesink",
            "silent=false",
            "sync=false",
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let lines = std::io::BufRead::lines(std::io::BufReader::new(gst.stdout.take().unwrap()));
    let decoded = lines
        .map_while(Result::ok)
        .filter(|l| l.contains("last-message = chain"))
        .take(25)
        .count();
    let _ = gst.kill();
    let _ = gst.wait();
    assert_eq!(decoded, 25, "GStreamer decoded too few live frames");
}

#[test]
fn media_that_cannot_be_played_back_is_refused_with_the_services_errors() {
    use telescope::kvs::mkv::{cluster, header, Block, TrackInfo};
    let (_mock, url) = testkit::start_mock_kvs(env!("CARGO_BIN_EXE_telescope"), &[]);
    let blocks = [Block {
        offset_ms: 0,
        key: true,
        data: vec![0, 0, 0, 2, 0x65, 0],
    }];
    let track = |codec_private: Vec<u8>| TrackInfo {
        width: 64,
        height: 48,
        codec_private,
        frame_duration_ns: None,
    };
    let mpeg4_part2 = {
        let h = header(&track(vec![1, 0x42, 0, 0x1e, 0xff, 0xe1, 0]), [2; 16]);
        let at = h.windows(15).position(|w| w == b"V_MPEG4/ISO/AVC").unwrap();
        let mut h = h;
        h[at..at + 15].copy_from_slice(b"V_MPEG4/ISO/ASP");
        h
    };
    let cases = [
        (
            "nocpd",
            header(&track(Vec::new()), [1; 16]),
            "MissingCodecPrivateDataException",
        ),
        (
            "badcpd",
            header(&track(vec![7, 7]), [1; 16]),
            "InvalidCodecPrivateDataException",
        ),
        ("mpeg4", mpeg4_part2, "UnsupportedStreamMediaTypeException"),
    ];
    let now_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64;
    for (stream, head, wanted) in cases {
        let (status, _, body) = post(
            &url,
            "createStream",
            &format!(r#"{{"StreamName":"{stream}","DataRetentionInHours":1}}"#),
        );
        assert_eq!(status, 200, "{body}");
        let mut mkv = head;
        mkv.extend(cluster(now_ms, &blocks));
        let file = tempfile::NamedTempFile::new().unwrap();
        std::fs::write(file.path(), &mkv).unwrap();
        let put = Command::new("curl")
            .args(["-sS", "--max-time", "30", "-X", "POST"])
            .args(["-H", &format!("x-amzn-stream-name: {stream}")])
            .arg("--data-binary")
            .arg(format!("@{}", file.path().display()))
            .arg(format!("{url}/putMedia"))
            .output()
            .unwrap();
        assert!(String::from_utf8_lossy(&put.stdout).contains("PERSISTED"));
        let live = format!(r#"{{"StreamName":"{stream}","PlaybackMode":"LIVE"}}"#);
        let (status, kind, body) = post(&url, "getHLSStreamingSessionURL", &live);
        assert_eq!((status, kind.as_str()), (400, wanted), "{stream}: {body}");
        let clip = format!(
            r#"{{"StreamName":"{stream}","ClipFragmentSelector":{{"FragmentSelectorType":"PRODUCER_TIMESTAMP","TimestampRange":{{"StartTimestamp":{},"EndTimestamp":{}}}}}}}"#,
            now_ms / 1000 - 1,
            now_ms / 1000 + 1
        );
        let (status, kind, body) = post(&url, "getClip", &clip);
        assert_eq!((status, kind.as_str()), (400, wanted), "{stream}: {body}");
    }
}

/// Open `page` in headless Chromium until its video has played two seconds; what it saw,
/// checked for playback (time advancing, frames decoded, thumbnails, the producer time shown).
fn watch(python: &Path, page: &str, shot: &Path) -> serde_json::Value {
    watch_for(python, page, shot, 2)
}

/// `watch` until `seconds` have played.
fn watch_for(python: &Path, page: &str, shot: &Path, seconds: u32) -> serde_json::Value {
    let seen = run_json(
        python,
        &[
            script("viewer_plays.py").to_str().unwrap(),
            page,
            shot.to_str().unwrap(),
            &seconds.to_string(),
        ],
    );
    let (first, last) = (&seen["first"], &seen["last"]);
    assert!(first.is_object(), "playback never started: {seen}");
    assert_eq!(last["errors"], serde_json::json!([]), "{seen}");
    let advanced = last["t"].as_f64().unwrap() - first["t"].as_f64().unwrap();
    assert!(
        advanced >= 2.0,
        "current time advanced {advanced} s: {seen}"
    );
    assert!(
        last["frames"].as_u64().unwrap() > first["frames"].as_u64().unwrap(),
        "decoded frames grow: {seen}"
    );
    assert_eq!(
        (last["width"].as_u64(), last["height"].as_u64()),
        (Some(320), Some(240))
    );
    assert!(last["thumbnails"].as_u64().unwrap() > 0, "{seen}");
    assert!(
        last["stamp"].as_str().unwrap().starts_with("20"),
        "the producer time is shown: {seen}"
    );
    assert!(
        shot.metadata().unwrap().len() > 10_000,
        "a screenshot is kept"
    );
    eprintln!("viewer screenshot: {}", shot.display());
    seen
}

/// Python with Selenium when Debian's chromium and chromium-driver are installed.
fn browser() -> Option<PathBuf> {
    if !Path::new("/usr/bin/chromium").exists() || !Path::new("/usr/bin/chromedriver").exists() {
        assert!(
            std::env::var_os("CI").is_none(),
            "CI must have chromium and chromium-driver (ci/setup installs them)"
        );
        eprintln!("skipped: Debian's chromium and chromium-driver are not installed");
        return None;
    }
    python(true)
}

fn artifacts() -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("playback");
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

#[test]
fn the_viewer_follows_a_stream_live_while_it_is_written() {
    let Some(python) = browser() else { return };
    // Twenty seconds of footage on the real clock.
    let live = Live::start(500, "yard");
    let url = live.url.clone();
    let deadline = Instant::now() + Duration::from_secs(60);
    while post(&url, "listFragments", r#"{"StreamName":"yard"}"#)
        .2
        .matches("FragmentNumber")
        .count()
        < 2
    {
        assert!(Instant::now() < deadline, "no fragments stored");
        std::thread::sleep(Duration::from_millis(200));
    }
    let seen = watch_for(
        &python,
        &format!("{url}/?stream=yard"),
        &artifacts().join("viewer-live.png"),
        5,
    );
    assert_eq!(seen["last"]["mode"], "LIVE", "{seen}");
    // Fragments stored after the page opened were played: the playlist grew under it.
    assert_ne!(
        seen["first"]["fragment"], seen["last"]["fragment"],
        "{seen}"
    );
}

#[test]
fn the_viewer_plays_a_stream_in_headless_chromium() {
    let Some(python) = browser() else { return };
    let (_mock, url, _dir) = stream_written("porch");
    // The index lists the stream.
    let (status, page) = get(&format!("{url}/"));
    assert_eq!(status, 200);
    assert!(page.contains("hls.light.min.js"), "{page}");
    let artifacts = artifacts();
    let seen = watch(
        &python,
        &format!("{url}/?stream=porch"),
        &artifacts.join("viewer.png"),
    );
    assert_eq!(seen["last"]["mode"], "LIVE", "written moments ago: live");
    // From a time, the deep link's `start`: the second fragment's start, paced as live.
    let (_, _, listed) = post(&url, "listFragments", r#"{"StreamName":"porch"}"#);
    let listed: serde_json::Value = serde_json::from_str(&listed).unwrap();
    let mut starts: Vec<f64> = listed["Fragments"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["ProducerTimestamp"].as_f64().unwrap())
        .collect();
    starts.sort_by(f64::total_cmp);
    let from_ms = (starts[1] * 1000.0).round() as u64;
    let from = watch(
        &python,
        &format!("{url}/?stream=porch&start={from_ms}"),
        &artifacts.join("viewer-from-a-time.png"),
    );
    // LIVE_REPLAY while the stream counts as being written (a fragment in the last 30 s),
    // ON_DEMAND after: both from the asked time.
    let mode = from["last"]["mode"].as_str().unwrap_or("");
    assert!(mode == "LIVE_REPLAY" || mode == "ON_DEMAND", "{from}");
    // What plays is the producer's time from the asked one on, not the stream's start.
    let playing = from["last"]["playing_ms"].as_u64().unwrap();
    assert!(
        (from_ms..from_ms + 10_000).contains(&playing),
        "playing {playing}, asked {from_ms}: {from}"
    );
}

/// `curl` PutMedia of an MKV file into `stream` with RELATIVE timecodes from `start_s`; the
/// number of PERSISTED acks.
fn put_file(url: &str, stream: &str, mkv: &Path, start_s: u64) -> usize {
    let out = Command::new("curl")
        .args(["-sS", "--max-time", "60", "-X", "POST"])
        .args(["-H", &format!("x-amzn-stream-name: {stream}")])
        .args(["-H", "x-amzn-fragment-timecode-type: RELATIVE"])
        .args(["-H", &format!("x-amzn-producer-start-timestamp: {start_s}")])
        .arg("--data-binary")
        .arg(format!("@{}", mkv.display()))
        .arg(format!("{url}/putMedia"))
        .output()
        .expect("curl runs");
    String::from_utf8_lossy(&out.stdout)
        .matches("PERSISTED")
        .count()
}

#[test]
fn a_producer_restarting_at_another_size_plays_on_with_a_new_init_fragment() {
    let dir = tempfile::tempdir().unwrap();
    let (big, small) = (dir.path().join("big.mkv"), dir.path().join("small.mkv"));
    // GStreamer's own muxer, as kvssink-based producers write (NUL-padded codec ID, a Segment
    // of known size).
    gst_clip(&big, 320, 240, "25/1", 50);
    gst_clip(&small, 160, 120, "25/1", 50);
    let (_mock, url) = testkit::start_mock_kvs(env!("CARGO_BIN_EXE_telescope"), &[]);
    let (status, _, body) = post(
        &url,
        "createStream",
        r#"{"StreamName":"restart","DataRetentionInHours":1}"#,
    );
    assert_eq!(status, 200, "{body}");
    let start = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    assert!(put_file(&url, "restart", &big, start) >= 1);
    assert!(put_file(&url, "restart", &small, start + 10) >= 1);
    let ask = format!(
        r#"{{"StreamName":"restart","PlaybackMode":"ON_DEMAND","HLSFragmentSelector":{{"FragmentSelectorType":"PRODUCER_TIMESTAMP","TimestampRange":{{"StartTimestamp":{},"EndTimestamp":{}}}}}}}"#,
        start - 1,
        start + 20
    );
    let (status, _, body) = post(&url, "getHLSStreamingSessionURL", &ask);
    assert_eq!(status, 200, "{body}");
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    let master = v["HLSStreamingSessionURL"].as_str().unwrap();
    let (_, playlist) =
        get(&(master.replace("getHLSMasterPlaylist", "getHLSMediaPlaylist") + "&TrackNumber=1"));
    assert!(playlist.contains("SequenceNumber=1"), "{playlist}");
    // Every frame decodes, at the size its producer sent.
    let out = testkit::host_tool("ffprobe")
        .args(["-v", "error", "-select_streams", "v:0"])
        .args([
            "-show_entries",
            "frame=width,height",
            "-of",
            "csv=p=0",
            master,
        ])
        .output()
        .unwrap();
    let sizes: Vec<String> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| l.trim_end_matches(',').to_owned())
        .filter(|l| !l.is_empty())
        .collect();
    assert_eq!(sizes.iter().filter(|s| *s == "320,240").count(), 50);
    assert_eq!(sizes.iter().filter(|s| *s == "160,120").count(), 50);
    // A clip has one track configuration: it ends where the producer changed it.
    let clip = dir.path().join("clip.mp4");
    let ask = format!(
        r#"{{"StreamName":"restart","ClipFragmentSelector":{{"FragmentSelectorType":"PRODUCER_TIMESTAMP","TimestampRange":{{"StartTimestamp":{},"EndTimestamp":{}}}}}}}"#,
        start - 1,
        start + 20
    );
    let out = Command::new("curl")
        .args(["-sS", "--max-time", "60", "-X", "POST", "-d", &ask])
        .arg("-o")
        .arg(&clip)
        .arg(format!("{url}/getClip"))
        .status()
        .unwrap();
    assert!(out.success());
    let p = probe(&clip);
    assert_eq!((p.frames, p.width, p.height), (50, 320, 240));
}
