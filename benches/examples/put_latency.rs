//! `put_ref` latency as an application sees it: 1080p BGR frames put from a loop paced at
//! 30 fps into a running Telescope (file sink), latency percentiles of the call itself, and
//! how many pixel buffers the pool allocated (steady state: none per frame).
//!
//! `cargo run --release -p benches --example put_latency [-- FRAMES WIDTH HEIGHT [owned]]`
//! (`owned`: the application hands over frames it allocated itself, `put` moves them: no copy)

use std::time::{Duration, Instant};

use telescope::{FrameRef, PixelFormat, Rate, SinkConfig, Telescope, TelescopeConfig};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args: Vec<String> = std::env::args().skip(1).collect();
    let owned = args.last().is_some_and(|a| a == "owned");
    if owned {
        args.pop();
    }
    let args: Vec<u32> = args.iter().map(|a| a.parse()).collect::<Result<_, _>>()?;
    let frames = args.first().copied().unwrap_or(300);
    let (w, h) = (
        args.get(1).copied().unwrap_or(1920),
        args.get(2).copied().unwrap_or(1080),
    );
    let rate = Rate::whole(30).ok_or("rate")?;
    let dir = tempfile::tempdir()?;
    let t = Telescope::new(
        TelescopeConfig::builder()
            .fps(rate)
            .size(w, h)
            .sink(SinkConfig::file(dir.path().join("latency.mkv"))?)
            .build(),
    )?;
    t.start()?;
    let pixels = benches::test_image(w, h);
    let mut latencies = Vec::with_capacity(frames as usize);
    let start = Instant::now();
    for n in 0..u64::from(frames) {
        let due = start + rate.frame_time(n);
        if let Some(wait) = due.checked_duration_since(Instant::now()) {
            std::thread::sleep(wait);
        }
        if owned {
            // The application's own decoded frame, made before the call.
            let frame = telescope::Frame::from_vec(pixels.clone(), PixelFormat::Bgr8, w, h)?;
            let t0 = Instant::now();
            t.put(frame);
            latencies.push(t0.elapsed());
        } else {
            let frame = FrameRef::new(&pixels, PixelFormat::Bgr8, w, h)?;
            let t0 = Instant::now();
            t.put_ref(frame);
            latencies.push(t0.elapsed());
        }
    }
    let stats = t.stop()?.stats;
    latencies.sort();
    let pct = |p: f64| latencies[((latencies.len() - 1) as f64 * p).round() as usize];
    let us = |d: Duration| d.as_secs_f64() * 1e6;
    let pool = t.pool().stats();
    println!(
        "{frames} frames of {w}x{h} at 30 fps: {} p50 {:.0} us, p99 {:.0} us, max {:.0} us; \
         pushed {}, dropped {}; pool allocated {} buffers, reused {}",
        if owned {
            "put (owned)"
        } else {
            "put_ref (copy)"
        },
        us(pct(0.5)),
        us(pct(0.99)),
        us(pct(1.0)),
        stats.frames_pushed,
        stats.dropped_total(),
        pool.allocated,
        pool.reused
    );
    Ok(())
}
