//! `telescope replay`: footage -> Telescope -> sinks.

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use clap::Args;
use simulator::{Delivery, Footage, Jitter, TimingConfig, TimingModel};
use telescope::{
    BasicAuth, Clock, DropReason, Rate, SinkConfig, Stats, SystemClock, Telescope, TelescopeConfig,
    VirtualClock,
};

/// Arguments of `telescope replay`.
#[derive(Debug, Args)]
pub struct ReplayArgs {
    /// Footage to replay (any file GStreamer decodes).
    pub footage: PathBuf,
    /// Where the stream goes: `file:OUT.mkv` (or .mp4, .ts) or `rtsp://HOST:PORT/PATH` (served
    /// in process). Repeat for several sinks.
    #[arg(long = "sink", required = true)]
    pub sinks: Vec<String>,
    /// User name RTSP viewers must give (with --rtsp-pass).
    #[arg(long, requires = "rtsp_pass")]
    pub rtsp_user: Option<String>,
    /// Password RTSP viewers must give; also read from TELESCOPE_RTSP_PASS.
    #[arg(
        long,
        env = "TELESCOPE_RTSP_PASS",
        hide_env_values = true,
        requires = "rtsp_user"
    )]
    pub rtsp_pass: Option<String>,
    /// Output frame rate (25, 29.97, 30000/1001); measured by the warmup when absent.
    #[arg(long)]
    pub fps: Option<Rate>,
    /// Output width; with --height, skips measuring the size.
    #[arg(long, requires = "height")]
    pub width: Option<u32>,
    /// Output height.
    #[arg(long, requires = "width")]
    pub height: Option<u32>,
    /// Run on simulated time: as fast as the pipeline takes frames, none dropped.
    #[arg(long)]
    pub virtual_clock: bool,
    /// Play the footage this many times back to back (timeline continues); 0 = until Ctrl-C.
    #[arg(long, default_value_t = 1)]
    pub loops: u32,
    /// Encoder: auto, x264, openh264, nvidia, v4l2, vaapi.
    #[arg(long, default_value = "auto")]
    pub encoder: String,
    /// Camera model: delivery jitter, uniform in [0, J] milliseconds. Frames are then stamped
    /// with their arrival time, as an app that timestamps on receipt does.
    #[arg(long, value_name = "J")]
    pub jitter_ms: Option<f64>,
    /// Camera model: probability that a frame starts a loss burst.
    #[arg(long, value_name = "P", default_value_t = 0.0)]
    pub drop: f64,
    /// Camera model: frames lost per burst.
    #[arg(long, default_value_t = 1)]
    pub drop_burst: u32,
    /// Camera model: the camera freezes every S seconds of capture...
    #[arg(long, value_name = "S")]
    pub stall_every: Option<f64>,
    /// ...for this many milliseconds.
    #[arg(long, value_name = "MS", default_value_t = 2000)]
    pub stall_ms: u64,
    /// Seed of the camera model's randomness (same seed, same run).
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Create kvs:// streams that do not exist yet.
    #[arg(long)]
    pub create_stream: bool,
    /// Write the final counters as JSON to this file.
    #[arg(long)]
    pub stats_json: Option<PathBuf>,
}

pub fn run(args: ReplayArgs) -> Result<()> {
    let auth = match (&args.rtsp_user, &args.rtsp_pass) {
        (Some(u), Some(p)) => Some(BasicAuth::new(u, p)),
        _ => None,
    };
    let built = crate::sinks::build(
        &args.sinks,
        auth,
        &crate::sinks::KvsOptions {
            create: args.create_stream,
        },
        "0",
    )?;
    let sinks = built.configs.clone();
    let interrupted = Arc::new(AtomicBool::new(false));
    {
        let flag = interrupted.clone();
        // Ctrl-C ends the replay cleanly: queued frames are written and files finalised.
        ctrlc::set_handler(move || flag.store(true, Ordering::SeqCst))
            .context("cannot handle Ctrl-C")?;
    }
    let has_rtsp = sinks.iter().any(|s| matches!(s, SinkConfig::Rtsp(_)));
    if has_rtsp && args.virtual_clock {
        tracing::warn!(
            "--virtual-clock replays faster than real time; RTSP viewers see it fast-forwarded"
        );
    }
    let virtual_clock = VirtualClock::new();
    let clock: Arc<dyn Clock> = if args.virtual_clock {
        Arc::new(virtual_clock.clone())
    } else {
        Arc::new(SystemClock::new())
    };
    let mut builder = TelescopeConfig::builder().clock(clock).name("replay");
    builder = builder.encoder(telescope::EncoderConfig {
        kind: telescope::EncoderKind::parse(&args.encoder)?,
        ..Default::default()
    });
    if let Some(fps) = args.fps {
        builder = builder.fps(fps);
    }
    if let (Some(w), Some(h)) = (args.width, args.height) {
        builder = builder.size(w, h);
    }
    for sink in sinks.iter().cloned() {
        builder = builder.sink(sink);
    }
    // Open the footage before starting, so a bad file fails before any output is created.
    let mut footage = Footage::open(&args.footage).context("cannot replay")?;
    let telescope = Telescope::new(builder.build()).context("bad configuration")?;
    telescope.start().context("cannot start streaming")?;

    for sink in &sinks {
        if let SinkConfig::Rtsp(m) = sink {
            println!(
                "serving {}   (open it with: ffplay {} or vlc {})",
                m.url(),
                m.url(),
                m.url()
            );
        }
    }
    let wall = Instant::now();
    let mut model = camera_model(&args, footage.declared_rate())?;
    let mut lost = 0u64;
    let mut read = 0u64;
    let mut offset = Duration::ZERO;
    let mut last = Duration::ZERO;
    let mut interval = Duration::ZERO;
    let mut lap = 0u32;
    'laps: while args.loops == 0 || lap < args.loops {
        if lap > 0 {
            footage =
                Footage::open(&args.footage).context("cannot reopen footage for the next loop")?;
            // The next lap starts one frame interval after the last frame of this one.
            offset = last + interval;
        }
        let mut prev: Option<Duration> = None;
        while let Some(frame) = footage
            .next_frame()
            .with_context(|| format!("reading {}", args.footage.display()))?
        {
            if interrupted.load(Ordering::SeqCst) {
                break 'laps;
            }
            let at = offset + frame.captured_at().unwrap_or_default();
            if let Some(p) = prev {
                interval = at.saturating_sub(p);
            }
            prev = Some(at);
            last = at;
            read += 1;
            // With a camera model, its timing replaces the footage's.
            let at = match model.as_mut().map(|m| m.next_frame()) {
                None => at,
                Some(Delivery::Lost { .. }) => {
                    lost += 1;
                    continue;
                }
                Some(Delivery::Delivered { arrives, .. }) => arrives,
            };
            if args.virtual_clock {
                virtual_clock.advance_to(at);
                telescope.put_blocking(frame.at(at));
            } else {
                // Real time: hand the frame over when the camera would have delivered it.
                let due = wall + at;
                let now = Instant::now();
                if due > now {
                    std::thread::sleep(due - now);
                }
                telescope.put(frame.at(at));
            }
        }
        lap += 1;
    }
    let report = telescope
        .stop()
        .context("streaming did not finish cleanly")?;
    if model.is_some() {
        println!(
            "camera model (seed {}): {lost} of {read} frames lost on the way",
            args.seed
        );
    }
    let elapsed = wall.elapsed();
    print_summary(&args, &sinks, read, &report.stats, elapsed);
    for server in &built.servers {
        let s = server.stats();
        println!(
            "RTSP on port {}: {} viewers in total, {} refused with wrong credentials",
            server.port(),
            s.clients_total,
            s.auth_failures
        );
    }
    for kvs in &built.kvs {
        let k = kvs.stats();
        println!(
            "KVS {}: {} fragments, {} persisted, {} resent, {} evicted, {} rejected, {} connections{}",
            kvs.stream_name(),
            k.fragments,
            k.persisted,
            k.resent,
            k.evicted,
            k.rejected,
            k.connections,
            k.last_error.as_deref().map(|e| format!(", last error: {e}")).unwrap_or_default()
        );
    }
    if let Some(path) = &args.stats_json {
        let mut json = stats_json(read, &report.stats, elapsed);
        json["camera_lost"] = lost.into();
        json["kvs"] = built
            .kvs
            .iter()
            .map(|k| {
                let s = k.stats();
                serde_json::json!({
                    "stream": k.stream_name(),
                    "fragments": s.fragments,
                    "sent": s.sent,
                    "received": s.received,
                    "persisted": s.persisted,
                    "resent": s.resent,
                    "evicted": s.evicted,
                    "rejected": s.rejected,
                    "connections": s.connections,
                    "errors": s.errors,
                    "bytes_sent": s.bytes_sent,
                    "ack_latency_ms_max": s.ack_latency_ms_max,
                })
            })
            .collect();
        std::fs::write(path, serde_json::to_vec_pretty(&json)?)
            .with_context(|| format!("cannot write {}", path.display()))?;
    }
    Ok(())
}

fn stats_json(read: u64, s: &Stats, elapsed: Duration) -> serde_json::Value {
    let dropped: serde_json::Map<String, serde_json::Value> = s
        .dropped
        .iter()
        .map(|(r, n)| (r.name().to_owned(), (*n).into()))
        .collect();
    serde_json::json!({
        "frames_read": read,
        "frames_put": s.frames_put,
        "frames_pushed": s.frames_pushed,
        "frames_out": s.frames_out,
        "frames_duplicated": s.frames_duplicated,
        "frames_rate_dropped": s.frames_rate_dropped,
        "dropped": dropped,
        "restarts": s.restarts,
        "size_changes": s.size_changes,
        "rate": s.estimate.map(|e| e.rate.to_string()),
        "width": s.estimate.map(|e| e.width),
        "height": s.estimate.map(|e| e.height),
        "warmup_frames": s.estimate.map(|e| e.frames),
        "encoder": s.encoder,
        "wall_seconds": elapsed.as_secs_f64(),
    })
}

fn print_summary(args: &ReplayArgs, sinks: &[SinkConfig], read: u64, s: &Stats, elapsed: Duration) {
    let (rate, size) = match s.estimate {
        Some(e) => (e.rate.to_string(), format!("{}x{}", e.width, e.height)),
        None => ("?".into(), "?".into()),
    };
    println!(
        "replayed {} frames of {} in {:.1} s: {} fps, {}, encoder {}",
        read,
        args.footage.display(),
        elapsed.as_secs_f64(),
        rate,
        size,
        s.encoder.as_deref().unwrap_or("?")
    );
    let drops: Vec<String> = DropReason::ALL
        .iter()
        .filter(|r| s.dropped(**r) > 0)
        .map(|r| format!("{} {}", s.dropped(*r), r.name()))
        .collect();
    println!(
        "frames: {} put, {} encoded out, {} duplicated, {} dropped by rate, dropped: {}",
        s.frames_put,
        s.frames_out,
        s.frames_duplicated,
        s.frames_rate_dropped,
        if drops.is_empty() {
            "none".to_owned()
        } else {
            drops.join(", ")
        }
    );
    for sink in sinks {
        match sink {
            SinkConfig::File(f) => {
                println!("wrote {}", f.path.display());
                println!(
                    "  play it with: ffplay {}   (or: vlc {})",
                    f.path.display(),
                    f.path.display()
                );
            }
            other => println!("streamed to {}", other.describe()),
        }
    }
}

/// The camera model the flags describe, or `None` when none of them is given.
fn camera_model(args: &ReplayArgs, declared: Option<Rate>) -> Result<Option<TimingModel>> {
    if args.jitter_ms.is_none() && args.drop == 0.0 && args.stall_every.is_none() {
        return Ok(None);
    }
    if !(0.0..=1.0).contains(&args.drop) {
        anyhow::bail!("--drop must be a probability between 0 and 1");
    }
    let rate = args
        .fps
        .or(declared)
        .context("the camera model needs a frame rate: give --fps")?;
    let stall_every = match args.stall_every {
        Some(s) if s.is_finite() && s > 0.0 => Some(Duration::from_secs_f64(s)),
        Some(_) => anyhow::bail!("--stall-every must be a positive number of seconds"),
        None => None,
    };
    let jitter = match args.jitter_ms {
        Some(j) if j.is_finite() && j >= 0.0 => Jitter::Uniform { max_ms: j },
        Some(_) => anyhow::bail!("--jitter-ms must be a non-negative number"),
        None => Jitter::None,
    };
    Ok(Some(TimingModel::new(TimingConfig {
        rate,
        jitter,
        drop_probability: args.drop,
        drop_burst: args.drop_burst.max(1),
        stall_every,
        stall_for: Duration::from_millis(args.stall_ms),
        seed: args.seed,
    })))
}
