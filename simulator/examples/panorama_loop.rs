//! CPU per batch of the simulator's node with an app that only takes its streams and hands
//! them back: the Rust counterpart of a Panorama app that gets and puts under
//! `python -m panoramasdk run` (benches/RESULTS.md, "Panorama applications on the
//! simulator"). Cameras show a test pattern, the node runs on the virtual clock, the output
//! is dropped (as run-app's with no --hdmi or --sink).
//!
//! `cargo run --release --workspace --example panorama_loop -- [CAMERAS] [SECONDS] [SOURCE]`
//! (defaults: 1 camera, 10 s, `pattern:smpte@1920x1080@30`)

use std::sync::atomic::AtomicBool;
use std::time::{Duration, Instant};

use simulator::node::NodeClock;
use simulator::{CameraConfig, MediaStream, Node, NodeConfig};

/// CPU seconds of this process (user + system) from /proc/self/stat, in clock ticks of
/// 1/100 s (Linux's USER_HZ).
fn cpu_seconds() -> f64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    let after = stat.rsplit_once(')').map_or("", |(_, rest)| rest);
    let fields: Vec<&str> = after.split_whitespace().collect();
    let ticks = |i: usize| {
        fields
            .get(i)
            .and_then(|v| v.parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    // Fields 14 and 15 of stat (utime, stime) are 11 and 12 after the command name.
    (ticks(11) + ticks(12)) / 100.0
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let cameras: usize = args.first().map_or(Ok(1), |a| a.parse())?;
    let seconds: f64 = args.get(1).map_or(Ok(10.0), |a| a.parse())?;
    let source = args
        .get(2)
        .cloned()
        .unwrap_or_else(|| "pattern:smpte@1920x1080@30".to_owned());
    telescope::init()?;
    let config = NodeConfig {
        cameras: (0..cameras)
            .map(|i| {
                Ok(CameraConfig {
                    name: format!("camera_{}", i + 1),
                    source: source.parse()?,
                    passes: Some(1),
                    timing: None,
                })
            })
            .collect::<Result<_, simulator::source::SourceSpecError>>()?,
        duration: Some(Duration::from_secs_f64(seconds)),
        clock: NodeClock::Virtual(telescope::VirtualClock::new()),
        ..NodeConfig::default()
    };
    let node = Node::new(config)?;
    let (cpu0, wall0) = (cpu_seconds(), Instant::now());
    let mut app = |_streams: &mut [MediaStream]| {};
    let mut output = |_t: Duration, _streams: Vec<MediaStream>| Ok(());
    let report = node.run(&mut app, &mut output, &AtomicBool::new(false))?;
    let (cpu, wall) = (cpu_seconds() - cpu0, wall0.elapsed().as_secs_f64());
    let batches = report.iterations.max(1) as f64;
    println!(
        "cameras {cameras}, batches {}, CPU {cpu:.2} s, wall {wall:.2} s, CPU per batch {:.2} ms, per camera frame {:.2} ms",
        report.iterations,
        cpu * 1000.0 / batches,
        cpu * 1000.0 / batches / cameras as f64
    );
    Ok(())
}
