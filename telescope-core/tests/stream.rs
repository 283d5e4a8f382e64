//! End-to-end: frames put into a Telescope come out of real GStreamer pipelines as files that
//! ffprobe reads with the right frame count, rate and size.

mod common;

use std::time::Duration;

use common::{bgr_frame, probe};
use telescope::{
    wait_for, DropReason, Frame, PixelFormat, PutOutcome, Rate, RestartPolicy, SinkConfig,
    StateKind, Telescope, TelescopeConfig, TelescopeError,
};

#[test]
fn warmup_finds_a_fractional_rate_and_every_frame_is_written() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out.mkv");
    let rate = Rate::new(24000, 1001).unwrap();
    let t = Telescope::new(
        TelescopeConfig::builder()
            .sink(SinkConfig::file(&out).unwrap())
            .build(),
    )
    .unwrap();
    t.start().unwrap();
    assert_eq!(t.state(), StateKind::WarmingUp);
    for n in 0..60 {
        assert!(t
            .put_blocking(bgr_frame(
                320,
                240,
                n,
                Duration::from_secs(3) + rate.frame_time(n)
            ))
            .is_queued());
    }
    let report = t.stop().unwrap();
    let est = report.stats.estimate.unwrap();
    assert_eq!((est.rate, est.width, est.height), (rate, 320, 240));
    assert_eq!(report.stats.dropped_total(), 0, "{:?}", report.stats);
    assert_eq!(report.stats.frames_pushed, 60);
    let p = probe(&out);
    assert_eq!(
        (
            p.frames,
            p.width,
            p.height,
            p.rate.as_str(),
            p.codec.as_str()
        ),
        (60, 320, 240, "24000/1001", "h264")
    );
    // MKVToolNix reads the file as Matroska too: the track, its size and frame duration.
    let info = testkit::mkvinfo(&out);
    for want in [
        "V_MPEG4/ISO/AVC",
        "Pixel width: 320",
        "Pixel height: 240",
        "00:00:00.041708333",
    ] {
        assert!(info.contains(want), "{want} missing: {info}");
    }
}

#[test]
fn configured_rate_and_size_skip_warmup_and_other_sizes_are_scaled() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out.mp4");
    let rate = Rate::whole(25).unwrap();
    let config = TelescopeConfig::builder()
        .fps(rate)
        .size(160, 120)
        .sink(SinkConfig::file(&out).unwrap())
        .build();
    let t = Telescope::new(config).unwrap();
    t.start().unwrap();
    assert_eq!(t.state(), StateKind::Streaming);
    for n in 0..50 {
        // Half the frames at another size: the default policy scales them in the pipeline.
        let (w, h) = if n % 2 == 0 { (160, 120) } else { (320, 180) };
        assert!(t
            .put_blocking(bgr_frame(w, h, n, rate.frame_time(n)))
            .is_queued());
    }
    let stats = t.stop().unwrap().stats;
    assert!(stats.estimate.unwrap().configured);
    assert_eq!(stats.size_changes, 25);
    assert_eq!(stats.dropped_total(), 0);
    let p = probe(&out);
    assert_eq!(
        (p.frames, p.width, p.height, p.rate.as_str()),
        (50, 160, 120, "25/1")
    );
}

#[test]
fn size_change_policy_drop_counts_the_frames() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out.mkv");
    let rate = Rate::whole(10).unwrap();
    let config = TelescopeConfig::builder()
        .fps(rate)
        .size(64, 48)
        .size_change(telescope::SizeChangePolicy::Drop)
        .sink(SinkConfig::file(&out).unwrap())
        .build();
    let t = Telescope::new(config).unwrap();
    t.start().unwrap();
    for n in 0..20 {
        let (w, h) = if n < 10 { (64, 48) } else { (66, 48) };
        t.put_blocking(bgr_frame(w, h, n, rate.frame_time(n)));
    }
    let stats = t.stop().unwrap().stats;
    assert_eq!(stats.dropped(DropReason::SizeMismatch), 10);
    assert_eq!(stats.frames_pushed, 10);
}

#[test]
fn irregular_arrival_keeps_the_timeline_at_a_constant_rate() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out.mkv");
    let rate = Rate::whole(10).unwrap();
    // 40 regular frames, a 1.5 s gap (camera stall), then a burst of 6 frames within 60 ms,
    // then regular again: the timeline must survive.
    let mut times: Vec<Duration> = (0..40).map(|n| rate.frame_time(n)).collect();
    let after_gap = rate.frame_time(39) + Duration::from_millis(1600);
    times.extend((0..6).map(|i| after_gap + Duration::from_millis(10 * i)));
    let resume = *times.last().unwrap() + Duration::from_millis(100);
    times.extend((0..30).map(|n| resume + rate.frame_time(n)));
    let source_span =
        (*times.last().unwrap() - times[0]).as_secs_f64() + rate.interval().as_secs_f64();

    let t = Telescope::new(
        TelescopeConfig::builder()
            .sink(SinkConfig::file(&out).unwrap())
            .build(),
    )
    .unwrap();
    t.start().unwrap();
    for (n, at) in times.iter().enumerate() {
        t.put_blocking(bgr_frame(128, 96, n as u64, *at));
    }
    let stats = t.stop().unwrap().stats;
    assert_eq!(stats.estimate.unwrap().rate, rate);
    assert!(
        stats.frames_duplicated >= 14,
        "the gap is filled: {stats:?}"
    );
    assert!(
        stats.frames_rate_dropped >= 4,
        "the burst is thinned: {stats:?}"
    );
    assert_eq!(stats.frames_pushed, times.len() as u64);
    let p = probe(&out);
    assert_eq!(p.rate, "10/1");
    assert_eq!(p.frames, stats.frames_out);
    let output_span = p.frames as f64 / rate.fps();
    assert!(
        (output_span - source_span).abs() <= rate.interval().as_secs_f64() + 1e-6,
        "output {output_span} s vs source {source_span} s"
    );
}

/// Large frames fill the warmup's memory budget within a few frames: the warmup ends there,
/// with the rate those frames show, and every frame is streamed.
#[test]
fn a_full_warmup_budget_ends_the_warmup_and_drops_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out.mkv");
    let rate = Rate::whole(10).unwrap();
    let (w, h) = (1280u32, 960u32);
    let frame_bytes = (w * h * 3) as usize;
    let t = Telescope::new(
        TelescopeConfig::builder()
            .warmup(telescope::WarmupConfig {
                memory_budget: 3 * frame_bytes,
                ..Default::default()
            })
            .sink(SinkConfig::file(&out).unwrap())
            .build(),
    )
    .unwrap();
    t.start().unwrap();
    for n in 0..20 {
        assert!(t
            .put_blocking(bgr_frame(w, h, n, rate.frame_time(n)))
            .is_queued());
    }
    let stats = t.stop().unwrap().stats;
    let est = stats.estimate.unwrap();
    assert_eq!(est.frames, 3, "{est:?}");
    assert_eq!(est.rate, rate, "{est:?}");
    assert_eq!(stats.dropped_total(), 0, "{stats:?}");
    assert_eq!((stats.frames_pushed, stats.frames_duplicated), (20, 0));
    assert_eq!(probe(&out).frames, 20);
}

#[test]
fn put_before_start_and_out_of_order_frames_are_counted() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out.mkv");
    let rate = Rate::whole(10).unwrap();
    let config = TelescopeConfig::builder()
        .fps(rate)
        .size(64, 48)
        .sink(SinkConfig::file(&out).unwrap())
        .build();
    let t = Telescope::new(config).unwrap();
    assert_eq!(
        t.put(bgr_frame(64, 48, 0, Duration::ZERO)),
        PutOutcome::Rejected(DropReason::NotRunning)
    );
    t.start().unwrap();
    assert!(matches!(
        t.start(),
        Err(TelescopeError::InvalidState {
            action: "start",
            ..
        })
    ));
    for n in [0u64, 1, 2, 1, 3] {
        t.put_blocking(bgr_frame(64, 48, n, rate.frame_time(n)));
    }
    let stats = t.stop().unwrap().stats;
    assert_eq!(stats.dropped(DropReason::NotRunning), 1);
    assert_eq!(stats.dropped(DropReason::OutOfOrder), 1);
    assert_eq!(stats.frames_put, 6);
    assert_eq!(stats.frames_pushed, 4);
    assert!(matches!(
        t.stop(),
        Err(TelescopeError::InvalidState { action: "stop", .. })
    ));
}

#[test]
fn a_failed_pipeline_restarts_into_a_new_file_and_the_telescope_restarts_after_stop() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("cam.mkv");
    let rate = Rate::whole(10).unwrap();
    let config = TelescopeConfig::builder()
        .fps(rate)
        .size(64, 48)
        .restart(RestartPolicy {
            initial_backoff: Duration::from_millis(10),
            ..RestartPolicy::default()
        })
        .sink(SinkConfig::file(&out).unwrap())
        .build();
    let t = Telescope::new(config).unwrap();
    t.start().unwrap();
    for n in 0..20 {
        t.put_blocking(bgr_frame(64, 48, n, rate.frame_time(n)));
    }
    assert!(wait_for(&t, Duration::from_secs(30), |s| s.frames_pushed == 20));
    // Live counters of the running pipeline, not only those of finished incarnations.
    assert!(wait_for(&t, Duration::from_secs(30), |s| s.frames_out > 0));
    assert!(t.inject_pipeline_error("forced failure"));
    assert!(wait_for(&t, Duration::from_secs(30), |s| s.restarts == 1
        && s.state == StateKind::Streaming));
    for n in 20..40 {
        t.put_blocking(bgr_frame(64, 48, n, rate.frame_time(n)));
    }
    let stats = t.stop().unwrap().stats;
    assert_eq!(stats.restarts, 1);
    assert!(stats.last_error.unwrap().contains("forced failure"));
    assert_eq!(stats.frames_pushed, 40);
    // The first file was cut short by the failure; the second holds what came after it.
    assert_eq!(probe(&dir.path().join("cam.1.mkv")).frames, 20);

    // Restartable: a new run writes the next file and streams again.
    t.start().unwrap();
    for n in 0..10 {
        t.put_blocking(bgr_frame(64, 48, n, rate.frame_time(n)));
    }
    t.stop().unwrap();
    assert_eq!(probe(&dir.path().join("cam.2.mkv")).frames, 10);
}

#[test]
fn exhausted_restarts_fail_for_good_and_refuse_frames() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("cam.mkv");
    let rate = Rate::whole(10).unwrap();
    let config = TelescopeConfig::builder()
        .fps(rate)
        .size(64, 48)
        .restart(RestartPolicy {
            max_restarts: Some(0),
            ..RestartPolicy::default()
        })
        .sink(SinkConfig::file(&out).unwrap())
        .build();
    let t = Telescope::new(config).unwrap();
    t.start().unwrap();
    t.put_blocking(bgr_frame(64, 48, 0, Duration::ZERO));
    assert!(wait_for(&t, Duration::from_secs(30), |s| s.frames_pushed == 1));
    assert!(t.inject_pipeline_error("disk on fire"));
    assert!(wait_for(&t, Duration::from_secs(30), |s| s.state
        == StateKind::Failed
        && s.last_error
            .as_deref()
            .is_some_and(|e| e.contains("giving up"))));
    assert_eq!(
        t.put(bgr_frame(64, 48, 1, rate.frame_time(1))),
        PutOutcome::Rejected(DropReason::Failed)
    );
    assert!(matches!(
        t.stop(),
        Err(TelescopeError::RestartsExhausted { restarts: 0, .. })
    ));
}

#[test]
fn every_pixel_format_and_padded_strides_stream() {
    let dir = tempfile::tempdir().unwrap();
    let rate = Rate::whole(10).unwrap();
    let (w, h) = (66u32, 50u32);
    for format in [
        PixelFormat::Bgr8,
        PixelFormat::Rgb8,
        PixelFormat::Gray8,
        PixelFormat::I420,
        PixelFormat::Nv12,
    ] {
        let out = dir.path().join(format!("{format:?}.mkv"));
        let t = Telescope::new(
            TelescopeConfig::builder()
                .sink(SinkConfig::file(&out).unwrap())
                .build(),
        )
        .unwrap();
        t.start().unwrap();
        // Rows padded to a multiple of 64 bytes, as many camera and GPU buffers are.
        let stride = (w as usize * format.luma_bytes_per_pixel()).div_ceil(64) * 64;
        let len = match format {
            PixelFormat::I420 => stride * h as usize + 2 * stride.div_ceil(2) * (h as usize / 2),
            PixelFormat::Nv12 => stride * h as usize * 3 / 2,
            _ => stride * h as usize,
        };
        for n in 0..15u64 {
            let data = vec![(n * 10) as u8; len];
            let frame = Frame::from_vec_with_stride(data, format, w, h, stride)
                .unwrap()
                .at(rate.frame_time(n));
            assert!(t.put_blocking(frame).is_queued());
        }
        let stats = t.stop().unwrap().stats;
        assert_eq!(stats.dropped_total(), 0, "{format:?}: {stats:?}");
        let p = probe(&out);
        assert_eq!((p.frames, p.width, p.height), (15, w, h), "{format:?}");
    }
}

#[test]
fn odd_sizes_found_by_warmup_are_rounded_down_to_even_for_the_encoder() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("odd.mkv");
    let rate = Rate::whole(10).unwrap();
    let t = Telescope::new(
        TelescopeConfig::builder()
            .sink(SinkConfig::file(&out).unwrap())
            .build(),
    )
    .unwrap();
    t.start().unwrap();
    for n in 0..12u64 {
        t.put_blocking(bgr_frame(65, 49, n, rate.frame_time(n)));
    }
    t.stop().unwrap();
    let p = probe(&out);
    assert_eq!((p.frames, p.width, p.height), (12, 64, 48));
}

#[test]
fn put_never_waits_for_a_stalled_sink_and_counts_what_it_drops() {
    use std::io::Read;
    use std::time::Instant;

    let dir = tempfile::tempdir().unwrap();
    // A FIFO nobody reads: the file sink blocks on it, like a full disk or a dead NFS mount.
    let fifo = dir.path().join("stalled.mkv");
    let status = std::process::Command::new("mkfifo")
        .arg(&fifo)
        .status()
        .unwrap();
    assert!(status.success());
    let rate = Rate::whole(30).unwrap();
    let config = TelescopeConfig::builder()
        .fps(rate)
        .size(64, 48)
        .queue_capacity(4)
        .sink(SinkConfig::file(&fifo).unwrap())
        .build();
    let t = Telescope::new(config).unwrap();
    t.start().unwrap();
    let mut slowest = Duration::ZERO;
    let frames = 300u64;
    for n in 0..frames {
        let frame = bgr_frame(64, 48, n, rate.frame_time(n));
        let begin = Instant::now();
        t.put(frame);
        slowest = slowest.max(begin.elapsed());
    }
    let stats = t.stats();
    // Blocking would mean waiting forever on the FIFO; the bound is far above a mutex push.
    assert!(slowest < Duration::from_millis(500), "put took {slowest:?}");
    assert_eq!(stats.frames_put, frames);
    assert!(
        stats.dropped(DropReason::QueueFull) >= frames - 20,
        "{stats:?}"
    );
    assert!(stats.queue_depth <= 4);
    assert_eq!(
        stats.frames_pushed + stats.dropped_total() + stats.queue_depth as u64,
        frames,
        "every frame is pushed, queued or counted as dropped"
    );

    // Unblock the sink: the Telescope recovers and finishes the file.
    let reader = std::thread::spawn(move || {
        let mut bytes = Vec::new();
        std::fs::File::open(&fifo)
            .unwrap()
            .read_to_end(&mut bytes)
            .unwrap();
        bytes
    });
    let stats = t.stop().unwrap().stats;
    let bytes = reader.join().unwrap();
    assert!(
        bytes.starts_with(&[0x1a, 0x45, 0xdf, 0xa3]),
        "an EBML header arrives once unblocked"
    );
    assert_eq!(stats.frames_pushed + stats.dropped_total(), frames);
}

#[test]
fn borrowed_frames_are_copied_into_recycled_buffers() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("pooled.mkv");
    let rate = Rate::whole(30).unwrap();
    let (w, h) = (640u32, 480u32);
    let t = Telescope::new(
        TelescopeConfig::builder()
            .fps(rate)
            .size(w, h)
            .sink(SinkConfig::file(&out).unwrap())
            .build(),
    )
    .unwrap();
    t.start().unwrap();
    // The application's own buffer, rows padded to 2048 bytes, reused for every frame.
    let stride = 2048;
    let mut pixels = vec![0u8; stride * h as usize];
    let n = 300u64;
    for i in 0..n {
        pixels.fill((i % 250) as u8);
        let frame = telescope::FrameRef::with_stride(&pixels, PixelFormat::Bgr8, w, h, stride)
            .unwrap()
            .at(rate.frame_time(i));
        t.put_ref(frame);
    }
    let stats = t.stop().unwrap().stats;
    let pool = t.pool().stats();
    assert_eq!(stats.frames_pushed + stats.dropped_total(), n, "{stats:?}");
    assert_eq!(pool.allocated + pool.reused, n, "{pool:?}");
    // Every buffer came back, from the pipeline as from the drops: the pool never needed more
    // than it keeps (queue capacity + 8), whatever the number of frames.
    let bound = t.config().queue_capacity as u64 + 8;
    assert!(
        pool.allocated <= bound,
        "{pool:?} allocated more than {bound}"
    );
    assert!(
        pool.idle as u64 >= pool.allocated.min(bound) - 1,
        "{pool:?}"
    );
    let p = probe(&out);
    assert_eq!((p.frames, p.width, p.height), (stats.frames_out, w, h));
}

#[test]
fn every_encoder_profile_encodes() {
    let dir = tempfile::tempdir().unwrap();
    let rate = Rate::whole(10).unwrap();
    for profile in telescope::EncoderProfile::ALL {
        let out = dir.path().join(format!("{}.mkv", profile.name()));
        let t = Telescope::new(
            TelescopeConfig::builder()
                .fps(rate)
                .size(96, 64)
                .encoder(telescope::EncoderConfig {
                    kind: telescope::EncoderKind::X264,
                    ..telescope::EncoderConfig::for_profile(profile)
                })
                .sink(SinkConfig::file(&out).unwrap())
                .build(),
        )
        .unwrap();
        t.start().unwrap();
        for n in 0..30 {
            assert!(t
                .put_blocking(bgr_frame(96, 64, n, rate.frame_time(n)))
                .is_queued());
        }
        let stats = t.stop().unwrap().stats;
        assert_eq!(stats.last_error, None, "{}", profile.name());
        let p = probe(&out);
        assert_eq!(
            (p.frames, p.codec.as_str()),
            (30, "h264"),
            "{}",
            profile.name()
        );
    }
}

/// Frames put without a capture time are stamped by the configured clock: on a virtual clock
/// that the test moves by one frame period per frame (and once by a second, a camera pause),
/// the warmup measures exactly 15 fps although every frame was put at once in real time, and
/// the file's timeline follows the virtual clock (the pause filled by repeated frames).
#[test]
fn frames_without_a_capture_time_are_stamped_by_the_injected_clock() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out.mkv");
    let clock = telescope::clock::VirtualClock::new();
    let rate = Rate::whole(15).unwrap();
    let t = Telescope::new(
        TelescopeConfig::builder()
            .clock(std::sync::Arc::new(clock.clone()))
            .sink(SinkConfig::file(&out).unwrap())
            .build(),
    )
    .unwrap();
    t.start().unwrap();
    for n in 0..45 {
        let mut frame = bgr_frame(320, 240, n, Duration::ZERO);
        frame.set_captured_at(None);
        assert!(t.put_blocking(frame).is_queued());
        clock.advance(rate.frame_time(1));
        if n == 29 {
            clock.advance(Duration::from_secs(1));
        }
    }
    let report = t.stop().unwrap();
    let est = report.stats.estimate.unwrap();
    assert_eq!((est.rate, est.configured), (rate, false));
    let repeated = report.stats.frames_duplicated;
    assert!((14..=16).contains(&repeated), "{:?}", report.stats);
    let p = probe(&out);
    assert_eq!(p.frames, 45 + repeated);
    assert!(
        (p.duration - (45 + repeated) as f64 / 15.0).abs() < 0.1,
        "{p:?}"
    );
}

/// A rotating file sink: `rotate=1s` at 10 fps cuts 35 frames into four files, each a complete
/// file holding every frame once: a key frame is asked for at each boundary, and the encoder
/// gives it at the boundary or, when the request meets frames already in its lookahead, up to
/// that many frames later. `keep=2` leaves only the newest two.
#[test]
fn rotating_files_split_on_time_and_keep_the_newest() {
    for keep in [0u32, 2] {
        let dir = tempfile::tempdir().unwrap();
        let base = dir.path().join("cam.mkv");
        let sink: SinkConfig = format!("file:{}?rotate=1s&keep={keep}", base.display())
            .parse()
            .unwrap();
        let SinkConfig::File(file) = &sink else {
            panic!("{sink:?}")
        };
        let file = file.clone();
        let t = Telescope::new(
            TelescopeConfig::builder()
                .fps(Rate::whole(10).unwrap())
                .size(160, 120)
                .sink(sink)
                .build(),
        )
        .unwrap();
        t.start().unwrap();
        for n in 0..35 {
            let frame = bgr_frame(160, 120, n, Rate::whole(10).unwrap().frame_time(n));
            assert!(t.put_blocking(frame).is_queued());
        }
        t.stop().unwrap();
        let mut written: Vec<_> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().path())
            .collect();
        written.sort();
        let frames: Vec<u64> = written.iter().map(|p| probe(p).frames).collect();
        // Where each file starts, in frames from the first: a boundary (10, 20, 30) or a few
        // frames after it, never before.
        let late = u64::from(telescope::EncoderProfile::default().lookahead_frames());
        let starts: Vec<u64> = frames
            .iter()
            .scan(0, |at, n| {
                let start = *at;
                *at += n;
                Some(start)
            })
            .collect();
        if keep == 0 {
            let expected: Vec<_> = (0..4).map(|i| file.rotated_path(0, i)).collect();
            assert_eq!(written, expected);
            assert_eq!(
                frames.iter().sum::<u64>(),
                35,
                "every frame once: {frames:?}"
            );
            for (i, start) in starts.iter().enumerate() {
                let boundary = 10 * i as u64;
                assert!(
                    (boundary..=boundary + late).contains(start),
                    "file {i} starts at frame {start}: {frames:?}"
                );
            }
        } else {
            assert_eq!(
                written,
                vec![file.rotated_path(0, 2), file.rotated_path(0, 3)]
            );
            // The newest two: from the second boundary (or a little later) to the end.
            let kept: u64 = frames.iter().sum();
            assert!((15 - late..=15).contains(&kept), "{frames:?}");
            assert!(
                (5u64.saturating_sub(late)..=5).contains(&frames[1]),
                "{frames:?}"
            );
        }
    }
}
