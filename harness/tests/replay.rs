//! `telescope replay` end to end: real footage in, files out, checked with ffprobe.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use testkit::{assert_one_line_error, ffmpeg, gst_clip, probe};

const VTEST: &str = "/usr/share/doc/opencv-doc/examples/data/vtest.avi";

fn telescope(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_telescope"))
        .args(args)
        .output()
        .expect("the telescope binary runs")
}

fn replay(footage: &Path, out: &Path, extra: &[&str]) -> (Output, serde_json::Value) {
    let stats = out.with_extension("stats.json");
    let mut args = vec![
        "replay".to_owned(),
        footage.display().to_string(),
        "--sink".to_owned(),
        format!("file:{}", out.display()),
        "--stats-json".to_owned(),
        stats.display().to_string(),
    ];
    args.extend(extra.iter().map(|s| s.to_string()));
    let refs: Vec<&str> = args.iter().map(String::as_str).collect();
    let output = telescope(&refs);
    assert!(
        output.status.success(),
        "replay failed: {}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    let json = serde_json::from_slice(&std::fs::read(&stats).unwrap()).unwrap();
    (output, json)
}

#[test]
fn fractional_rate_footage_keeps_every_frame_rate_and_size() {
    let dir = tempfile::tempdir().unwrap();
    for (rate, frames, ext) in [
        ("24000/1001", 72, "mkv"),
        ("30000/1001", 45, "mp4"),
        ("25/1", 30, "mkv"),
    ] {
        let clip = dir
            .path()
            .join(format!("clip-{}.{ext}", rate.replace('/', "_")));
        gst_clip(&clip, 320, 240, rate, frames);
        let out = dir
            .path()
            .join(format!("out-{}.mkv", rate.replace('/', "_")));
        let (_, stats) = replay(&clip, &out, &["--virtual-clock"]);
        assert_eq!(
            stats["rate"],
            rate.trim_end_matches("/1"),
            "warmup found the rate"
        );
        let p = probe(&out);
        assert_eq!(
            (p.frames, p.width, p.height, p.rate.as_str()),
            (u64::from(frames), 320, 240, rate),
            "{rate}"
        );
    }
}

#[test]
fn the_sample_footage_replays_frame_for_frame() {
    let footage = Path::new(VTEST);
    assert!(
        footage.exists(),
        "{VTEST} is installed by ci/setup (opencv-doc)"
    );
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("vtest.mp4");
    let (output, stats) = replay(footage, &out, &["--virtual-clock"]);
    let source = probe(footage);
    let p = probe(&out);
    assert_eq!(
        (p.frames, p.width, p.height, p.rate.as_str()),
        (
            source.frames,
            source.width,
            source.height,
            source.rate.as_str()
        )
    );
    assert_eq!(stats["frames_read"], source.frames);
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(stdout.contains("play it with: ffplay"), "{stdout}");
}

#[test]
fn irregular_footage_keeps_its_timeline_and_counts_what_it_fixes() {
    let dir = tempfile::tempdir().unwrap();
    let clip = dir.path().join("vfr.mkv");
    // 60 frames at 10 fps with a 1.5 s hole after frame 30 (a camera stall), variable-rate file.
    ffmpeg(&[
        "-f",
        "lavfi",
        "-i",
        "testsrc=size=160x120:rate=10",
        "-frames:v",
        "60",
        "-vf",
        "setpts='if(lt(N,30),N,N+15)/(10*TB)'",
        "-fps_mode",
        "vfr",
        "-c:v",
        "libx264",
        "-preset",
        "ultrafast",
        clip.to_str().unwrap(),
    ]);
    let times = testkit::frame_times(&clip);
    assert_eq!(times.len(), 60);
    let source_span = times[59] - times[0] + 0.1;
    let out = dir.path().join("out.mkv");
    let (_, stats) = replay(&clip, &out, &["--virtual-clock"]);
    let p = probe(&out);
    assert_eq!(p.rate, "10/1");
    let output_span = p.frames as f64 / 10.0;
    assert!(
        (output_span - source_span).abs() <= 0.1 + 1e-9,
        "output {output_span} s, source {source_span} s"
    );
    assert_eq!(
        stats["frames_duplicated"], 15,
        "the hole is filled with 15 repeated frames"
    );
    assert_eq!(stats["frames_out"], p.frames);
}

#[test]
fn loops_and_a_configured_size_and_rate() {
    let dir = tempfile::tempdir().unwrap();
    let clip = dir.path().join("clip.mkv");
    gst_clip(&clip, 320, 240, "15/1", 20);
    let out = dir.path().join("out.mkv");
    let (_, stats) = replay(
        &clip,
        &out,
        &[
            "--virtual-clock",
            "--loops",
            "3",
            "--fps",
            "15",
            "--width",
            "160",
            "--height",
            "120",
        ],
    );
    assert_eq!(
        stats["warmup_frames"], 0,
        "configured rate and size skip the warmup"
    );
    let p = probe(&out);
    assert_eq!(
        (p.frames, p.width, p.height, p.rate.as_str()),
        (60, 160, 120, "15/1")
    );
}

#[test]
fn bad_input_is_a_one_line_error_with_exit_code_2() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out.mkv");
    let sink = format!("file:{}", out.display());
    assert_one_line_error(
        &telescope(&["replay", "/no/such/footage.avi", "--sink", &sink]),
        "footage not found",
    );

    let junk = dir.path().join("junk.avi");
    std::fs::write(&junk, vec![7u8; 4096]).unwrap();
    assert_one_line_error(
        &telescope(&["replay", junk.to_str().unwrap(), "--sink", &sink]),
        "cannot decode",
    );

    let clip = dir.path().join("clip.mkv");
    gst_clip(&clip, 64, 48, "10/1", 5);
    let nowhere = PathBuf::from("/no/such/dir/out.mkv");
    let sink = format!("file:{}", nowhere.display());
    assert_one_line_error(
        &telescope(&["replay", clip.to_str().unwrap(), "--sink", &sink]),
        "/no/such/dir",
    );
    assert_one_line_error(
        &telescope(&["replay", clip.to_str().unwrap(), "--sink", "file:out.avi"]),
        "out.avi",
    );
}

/// The binary, ended by coreutils' `timeout` after 60 s (exit 124) if it hangs.
fn telescope_bounded(args: &[&str]) -> Output {
    Command::new("timeout")
        .args(["-s", "KILL", "60", env!("CARGO_BIN_EXE_telescope")])
        .args(args)
        .output()
        .expect("timeout runs the telescope binary")
}

#[test]
fn options_and_sources_no_stream_can_have_fail_at_once_naming_the_limit() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out.mkv");
    let sink = format!("file:{}", out.display());
    let clip = dir.path().join("clip.mkv");
    gst_clip(&clip, 64, 48, "10/1", 5);
    let clip = clip.to_str().unwrap();
    for (args, needle) in [
        (vec!["--fps", "1000000000"], "1000 fps"),
        (vec!["--width", "100000", "--height", "100000"], "16384"),
        (vec!["--fps", "0.0001"], "1/3600"),
    ] {
        let mut all = vec!["replay", clip, "--sink", &sink];
        all.extend(args);
        assert_one_line_error(&telescope_bounded(&all), needle);
    }
    // A source whose frames no encoder takes ends the run with the reason, not restarts.
    assert_one_line_error(
        &telescope_bounded(&[
            "replay",
            "pattern:smpte@1x1@10",
            "--sink",
            &sink,
            "--virtual-clock",
            "--duration",
            "30",
        ]),
        "1x1",
    );
}

/// A run whose RTSP sink cannot start (no mount path), or that has an RTSP sink beside a file
/// sink that cannot be written, ends with one line and exit code 2: it used to hang in the
/// RTSP server's shutdown (a `quit()` before its loop ran) and ignore Ctrl-C.
#[test]
fn a_start_up_failure_beside_an_rtsp_sink_ends_the_run() {
    let port = testkit::free_port();
    let dir = tempfile::tempdir().unwrap();
    let rtsp = format!("rtsp://127.0.0.1:{port}");
    let unwritable = format!("file:{}", dir.path().join("no/such/dir/x.mkv").display());
    for _ in 0..5 {
        assert_one_line_error(
            &telescope_bounded(&["replay", "pattern:ball@64x48@10", "--sink", &rtsp]),
            "mount",
        );
        let beside = format!("{rtsp}/x");
        assert_one_line_error(
            &telescope_bounded(&[
                "replay",
                "pattern:ball@64x48@10",
                "--sink",
                &beside,
                "--sink",
                &unwritable,
            ]),
            "x.mkv",
        );
    }
}

#[test]
fn each_cause_is_said_once_and_a_directory_is_not_missing_footage() {
    let dir = tempfile::tempdir().unwrap();
    let sink = format!("file:{}", dir.path().join("out.mkv").display());
    let output = telescope(&["replay", dir.path().to_str().unwrap(), "--sink", &sink]);
    assert_one_line_error(&output, "is a directory");
    let junk = dir.path().join("junk.avi");
    std::fs::write(&junk, vec![7u8; 4096]).unwrap();
    let missing_scene = dir.path().join("none.json");
    for args in [
        vec!["replay", junk.to_str().unwrap(), "--sink", &sink],
        vec!["replay", "images:/no/such/dir", "--sink", &sink],
        vec![
            "replay",
            "pattern:smpte",
            "--sink",
            &sink,
            "--scene",
            missing_scene.to_str().unwrap(),
        ],
    ] {
        let output = telescope(&args);
        assert_eq!(output.status.code(), Some(2), "{args:?}");
        let line = String::from_utf8_lossy(&output.stderr);
        // No part of the line is said twice ("...: os error 2: os error 2").
        let parts: Vec<&str> = line.trim().split(": ").collect();
        for (i, part) in parts.iter().enumerate() {
            assert!(
                !parts[i + 1..].contains(part),
                "`{part}` repeated in: {line}"
            );
        }
    }
}

#[test]
fn several_cameras_cannot_share_one_output_or_more_memory_than_there_is() {
    let dir = tempfile::tempdir().unwrap();
    let clip = dir.path().join("clip.mkv");
    gst_clip(&clip, 64, 48, "10/1", 5);
    let out = dir.path().join("x.mkv");
    let sink = format!("file:{}", out.display());
    let output = telescope(&[
        "replay",
        clip.to_str().unwrap(),
        "--cameras",
        "2",
        "--sink",
        &sink,
    ]);
    assert_one_line_error(&output, "x-{camera}.mkv");
    assert!(!out.exists());
    // 16384x8192 frames: hundreds of cameras cannot fit any machine this runs on.
    let output = telescope_bounded(&[
        "replay",
        "pattern:smpte@16384x8192@1",
        "--cameras",
        "500",
        "--sink",
        &format!("file:{}/{{camera}}.mkv", dir.path().display()),
    ]);
    assert_one_line_error(&output, "MiB each");
}

#[test]
fn a_jittery_dropping_freezing_camera_still_makes_a_constant_rate_file() {
    let dir = tempfile::tempdir().unwrap();
    let clip = dir.path().join("clip.mkv");
    gst_clip(&clip, 160, 120, "10/1", 100);
    let model = [
        "--virtual-clock",
        "--jitter-ms",
        "30",
        "--drop",
        "0.05",
        "--drop-burst",
        "2",
        "--stall-every",
        "4",
        "--stall-ms",
        "1500",
        "--seed",
        "7",
    ];
    let out = dir.path().join("a.mkv");
    let (_, first) = replay(&clip, &out, &model);
    let (_, again) = replay(&clip, &dir.path().join("b.mkv"), &model);
    for key in [
        "camera_lost",
        "frames_out",
        "frames_duplicated",
        "frames_rate_dropped",
        "rate",
    ] {
        assert_eq!(first[key], again[key], "same seed, same run: {key}");
    }
    assert!(first["camera_lost"].as_u64().unwrap() > 0, "{first}");
    assert!(
        first["frames_duplicated"].as_u64().unwrap() >= 25,
        "two 1.5 s freezes are filled: {first}"
    );
    let p = probe(&out);
    assert_eq!(p.rate, "10/1");
    assert_eq!(p.frames, first["frames_out"].as_u64().unwrap());
    // 10 s of camera time plus two 1.5 s freezes; the last frames may be lost or late.
    let seconds = p.frames as f64 / 10.0;
    assert!(
        (seconds - 13.0).abs() <= 0.4,
        "output {seconds} s for a 13 s timeline"
    );
    let (_, other) = replay(
        &clip,
        &dir.path().join("c.mkv"),
        &[&model[..11], &["--seed", "8"]].concat(),
    );
    assert_ne!(
        first["camera_lost"], other["camera_lost"],
        "another seed, another run"
    );
}

/// Every frame of a file, decoded by ffmpeg as it comes (no rate conversion), as 32x24 gray.
fn decoded_thumbnails(path: &Path) -> Vec<Vec<u8>> {
    let out = testkit::host_tool("ffmpeg")
        .args(["-v", "error", "-nostdin", "-i"])
        .arg(path)
        .args([
            "-fps_mode",
            "passthrough",
            "-vf",
            "scale=32:24:flags=area,format=gray",
            "-f",
            "rawvideo",
            "-",
        ])
        .output()
        .expect("ffmpeg runs");
    assert!(
        out.status.success(),
        "ffmpeg cannot decode {}",
        path.display()
    );
    out.stdout.chunks(32 * 24).map(<[u8]>::to_vec).collect()
}

fn distance(a: &[u8], b: &[u8]) -> u64 {
    a.iter()
        .zip(b)
        .map(|(x, y)| u64::from(x.abs_diff(*y)).pow(2))
        .sum()
}

/// Output frame i is source frame i: closer to it than to any of its neighbours.
fn assert_frame_for_frame(source: &Path, output: &Path) {
    let src = decoded_thumbnails(source);
    let out = decoded_thumbnails(output);
    assert_eq!(out.len(), src.len(), "{}: frame count", source.display());
    for (i, frame) in out.iter().enumerate() {
        let nearest = (i.saturating_sub(3)..(i + 4).min(src.len()))
            .min_by_key(|&j| distance(frame, &src[j]))
            .unwrap();
        assert_eq!(nearest, i, "{}: output frame {i}", source.display());
    }
}

#[test]
fn footage_whose_container_repeats_or_omits_times_replays_every_frame_once() {
    let dir = tempfile::tempdir().unwrap();
    // Containers that stamp only some frames (AVI has none, MPEG-PS not every frame), with
    // B-frames so decoders repeat or reorder times; 23.976 fps as such files usually are.
    let clips: [(&str, &[&str]); 4] = [
        (
            "mpeg4-bframes.avi",
            &["-c:v", "mpeg4", "-bf", "2", "-vtag", "XVID", "-q:v", "3"],
        ),
        (
            "h264-bframes.avi",
            &[
                "-c:v",
                "libx264",
                "-preset",
                "ultrafast",
                "-bf",
                "3",
                "-crf",
                "18",
            ],
        ),
        (
            "mpeg2.mpg",
            &["-c:v", "mpeg2video", "-bf", "2", "-q:v", "3"],
        ),
        (
            "mpeg4-bframes.mkv",
            &["-c:v", "mpeg4", "-bf", "2", "-q:v", "3"],
        ),
    ];
    for (name, codec) in clips {
        let clip = dir.path().join(name);
        let mut args = vec![
            "-f",
            "lavfi",
            "-i",
            "testsrc2=size=192x144:rate=24000/1001",
            "-frames:v",
            "96",
        ];
        args.extend_from_slice(codec);
        args.push(clip.to_str().unwrap());
        ffmpeg(&args);
        let out = dir.path().join(format!("{name}.out.mkv"));
        let (_, stats) = replay(&clip, &out, &["--virtual-clock"]);
        assert_eq!(stats["frames_read"], 96, "{name}: {stats}");
        assert_eq!(stats["superseded"], 0, "{name}: {stats}");
        assert_eq!(stats["frames_duplicated"], 0, "{name}: {stats}");
        assert_eq!(stats["frames_rate_dropped"], 0, "{name}: {stats}");
        assert_eq!(stats["rate"], "24000/1001", "{name}: {stats}");
        assert_frame_for_frame(&clip, &out);
    }
}
