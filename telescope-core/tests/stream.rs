//! End-to-end: frames put into a Telescope come out of real GStreamer pipelines as files that
//! ffprobe reads with the right frame count, rate and size.

mod common;

use std::time::Duration;

use common::{bgr_frame, probe};
use telescope::{Rate, SinkConfig, StateKind, Telescope, TelescopeConfig};

#[test]
fn warmup_finds_a_fractional_rate_and_every_frame_is_written() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out.mkv");
    let rate = Rate::new(24000, 1001).unwrap();
    let t = Telescope::new(TelescopeConfig::builder().sink(SinkConfig::file(&out).unwrap()).build()).unwrap();
    t.start().unwrap();
    assert_eq!(t.state(), StateKind::WarmingUp);
    for n in 0..60 {
        assert!(t.put_blocking(bgr_frame(320, 240, n, Duration::from_secs(3) + rate.frame_time(n))).is_queued());
    }
    let report = t.stop().unwrap();
    let est = report.stats.estimate.unwrap();
    assert_eq!((est.rate, est.width, est.height), (rate, 320, 240));
    assert_eq!(report.stats.dropped_total(), 0, "{:?}", report.stats);
    assert_eq!(report.stats.frames_pushed, 60);
    let p = probe(&out);
    assert_eq!((p.frames, p.width, p.height, p.rate.as_str(), p.codec.as_str()), (60, 320, 240, "24000/1001", "h264"));
}
