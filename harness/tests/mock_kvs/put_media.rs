//! PutMedia fidelity, driven by curl with raw MKV: what the service accepts, refuses and acks.

use super::*;

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
