//! `telescope replay`: cameras (footage, URIs, images, patterns) -> a simulated Panorama node
//! -> one Telescope per camera -> sinks; optionally the tiled HDMI picture too, and a report.

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use clap::Args;
use simulator::graph::Graph;
use simulator::node::{compose, AppTime, NodeClock, NodeError};
use simulator::{
    CameraConfig, CameraModelError, CameraModelOptions, MediaStream, Node, NodeConfig, SourceSpec,
    TimingConfig,
};
use telescope::annotation::Overlay;
use telescope::{
    BasicAuth, Clock, DropReason, Frame, Rate, SinkConfig, Stats, SystemClock, Telescope,
    TelescopeConfig, VirtualClock,
};

use crate::report::{CameraReport, KvsReport, Percentiles, Report, SCHEMA_VERSION};
use crate::sinks::{KvsOptions, Sinks};

/// Arguments of `telescope replay`.
#[derive(Debug, Args)]
#[command(
    after_help = "Sources: a file GStreamer decodes, a URI (rtsp://, http://, file://), \
images:DIR[@RATE] (PNG files in name order), pattern:NAME[@WxH][@RATE] (videotestsrc).

Examples:
  telescope replay vtest.avi --sink file:out.mkv --virtual-clock
  telescope replay vtest.avi --sink rtsp://0.0.0.0:8554/cam --loops 0
  telescope replay a.avi b.avi --cameras 4 --sink file:out-{camera}.mkv --virtual-clock \\
      --jitter-ms 20 --drop 0.02 --duration 60 --report run1
  telescope replay pattern:ball@1280x720@30 --sink kvs://lobby?region=us-east-1 --duration 10m"
)]
pub struct ReplayArgs {
    /// Camera sources; reused in turn when --cameras asks for more.
    #[arg(required = true, value_name = "SOURCE")]
    pub footage: Vec<String>,
    /// Number of cameras (default: one per source, or the graph's cameras).
    #[arg(long)]
    pub cameras: Option<usize>,
    /// A Panorama graph.json: camera names come from its media-source nodes, and its
    /// inconsistencies are reported before running.
    #[arg(long)]
    pub graph: Option<PathBuf>,
    /// Where each camera's stream goes: `file:OUT.mkv` (or .mp4, .ts; rotating with
    /// `?rotate=10m&max-size=500MB&keep=N`), `rtsp://HOST:PORT/PATH` (served in process),
    /// `kvs://STREAM[?endpoint=URL&region=R]`. `{camera}` expands to the camera's name. Repeat
    /// for several sinks.
    #[arg(long = "sink", required = true)]
    pub sinks: Vec<String>,
    /// Also stream the tiled HDMI picture of every camera here (the streams as the app drew
    /// them; a --scene overlay is drawn later, by each camera's Telescope, and is not on it).
    #[arg(long)]
    pub hdmi: Option<String>,
    /// Size of the HDMI picture.
    #[arg(long, default_value = "1280x720")]
    pub hdmi_size: String,
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
    /// Play the sources this many times back to back (timeline continues); 0 = until Ctrl-C
    /// or --duration.
    #[arg(long, default_value_t = 1)]
    pub loops: u32,
    /// Stop after this much time (node time: simulated with --virtual-clock): 90, 90s, 10m, 1h.
    #[arg(long, value_parser = telescope::units::parse_duration)]
    pub duration: Option<Duration>,
    /// Encoder: auto, x264, openh264, nvidia, v4l2, vaapi.
    #[arg(long, default_value = "auto")]
    pub encoder: telescope::EncoderKind,
    /// Encoder profile: edge-low-cpu, balanced (default) or quality (see the README).
    #[arg(long, default_value = "balanced")]
    pub encoder_profile: telescope::EncoderProfile,
    /// Draw this scene (JSON) on every streamed frame.
    #[arg(long)]
    pub scene: Option<PathBuf>,
    /// Run a sample app in the node: it marks what moves in each camera (OpenCV background
    /// subtraction) with add_rect and counts it with add_label, as a Panorama app draws its
    /// detections; streams, files and the HDMI picture show it.
    #[arg(long)]
    pub annotate: bool,
    /// Camera model: delivery jitter in milliseconds (see --jitter-dist). Frames are then
    /// stamped with their arrival time, as an app that timestamps on receipt does.
    #[arg(long, value_name = "J")]
    pub jitter_ms: Option<f64>,
    /// Jitter distribution: uniform in [0, J], or normal with mean J/2 and deviation J/6.
    #[arg(long, default_value = "uniform", value_parser = ["uniform", "normal"])]
    pub jitter_dist: String,
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
    /// Camera model: the camera's real rate (e.g. 29.97 while --fps says 30).
    #[arg(long, value_name = "RATE")]
    pub camera_fps: Option<Rate>,
    /// The app's own processing time per iteration: MEAN or MEAN:SD milliseconds (normal).
    #[arg(long, value_name = "MS[:SD]")]
    pub app_ms: Option<String>,
    /// Seed of every random choice (same seed, same run).
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Create kvs:// streams that do not exist yet.
    #[arg(long)]
    pub create_stream: bool,
    /// Write the first camera's final counters as JSON to this file.
    #[arg(long)]
    pub stats_json: Option<PathBuf>,
    /// Write DIR/report.json and DIR/report.html: per camera frames in and out, drops by
    /// reason, fps, put latency; CPU and memory over time; verdicts against the budgets.
    #[arg(long, value_name = "DIR")]
    pub report: Option<PathBuf>,
    /// Sampling interval for CPU, memory, fps and queue depth over time, milliseconds.
    #[arg(long, value_name = "MS", default_value_t = 1000)]
    pub sample_ms: u64,
    #[command(flatten)]
    pub budgets: crate::report::Budgets,
    /// Print nothing but errors (and the report JSON with --json).
    #[arg(long)]
    pub quiet: bool,
    /// Print the report as JSON on stdout instead of the summary.
    #[arg(long)]
    pub json: bool,
}

/// The cameras the arguments describe: names and sources.
fn cameras(args: &ReplayArgs) -> Result<Vec<(String, SourceSpec)>> {
    let sources = args
        .footage
        .iter()
        .map(|s| s.parse::<SourceSpec>())
        .collect::<Result<Vec<_>, _>>()?;
    let names: Vec<String> = match &args.graph {
        Some(path) => {
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("cannot read {}", path.display()))?;
            let graph = Graph::parse(&text).with_context(|| format!("{}", path.display()))?;
            let problems = graph.problems();
            if !problems.is_empty() {
                bail!(
                    "{} is inconsistent: {}",
                    path.display(),
                    problems.join("; ")
                );
            }
            let mut names = graph.cameras();
            if let Some(n) = args.cameras {
                names.truncate(n);
                if names.len() < n {
                    bail!(
                        "--cameras {n}, but {} has {} cameras",
                        path.display(),
                        names.len()
                    );
                }
            }
            names
        }
        None => {
            let n = args.cameras.unwrap_or(sources.len());
            if n == 0 {
                bail!("--cameras must be at least 1");
            }
            (0..n).map(|i| i.to_string()).collect()
        }
    };
    Ok(names
        .into_iter()
        .enumerate()
        .map(|(i, name)| (name, sources[i % sources.len()].clone()))
        .collect())
}

fn app_time(spec: Option<&str>) -> Result<AppTime> {
    let Some(spec) = spec else {
        return Ok(AppTime::None);
    };
    let num = |s: &str| -> Result<f64> {
        let v: f64 = s
            .trim()
            .parse()
            .with_context(|| format!("--app-ms: `{s}` is not a number"))?;
        if !v.is_finite() || v < 0.0 {
            bail!("--app-ms: `{s}` must be a non-negative number");
        }
        Ok(v)
    };
    Ok(match spec.split_once(':') {
        Some((mean, sd)) => AppTime::Normal {
            mean_ms: num(mean)?,
            sd_ms: num(sd)?,
        },
        None => AppTime::Fixed(Duration::from_secs_f64(num(spec)? / 1000.0)),
    })
}

/// The camera model the flags describe, or `None` when none of them is given.
fn camera_model(
    args: &ReplayArgs,
    declared: Option<Rate>,
    seed: u64,
) -> Result<Option<TimingConfig>> {
    args.camera_model_options()
        .timing(args.fps.or(declared), seed)
        .map_err(|e| {
            let flag = match e {
                CameraModelError::Drop => "--drop",
                CameraModelError::StallEvery => "--stall-every",
                CameraModelError::Jitter => "--jitter-ms",
                CameraModelError::NoRate => "--fps or --camera-fps",
            };
            anyhow::anyhow!("{flag}: {e}")
        })
}

impl ReplayArgs {
    /// The camera-model flags as the simulator takes them.
    pub fn camera_model_options(&self) -> CameraModelOptions {
        CameraModelOptions {
            jitter_ms: self.jitter_ms,
            normal_jitter: self.jitter_dist == "normal",
            drop: self.drop,
            drop_burst: self.drop_burst,
            stall_every: self.stall_every,
            stall_ms: self.stall_ms,
            camera_fps: self.camera_fps,
        }
    }
}

/// Rates, sizes and the encoder that no stream can have fail before anything opens, naming
/// the limit.
fn check_stream_options(args: &ReplayArgs) -> Result<()> {
    let size = args.width.zip(args.height);
    if let Some((w, h)) = size {
        telescope::limits::check_size(w, h, &telescope::EncoderKind::Auto)
            .map_err(|reason| anyhow::anyhow!("--width/--height: {reason}"))?;
    }
    if let Some(rate) = args.fps {
        telescope::limits::check_rate(rate, size)
            .map_err(|reason| anyhow::anyhow!("--fps: {reason}"))?;
    }
    Ok(())
}

/// With several cameras, every output must name the camera: two cameras writing one file,
/// one RTSP mount or one KVS stream would interleave two streams into one.
fn check_outputs_per_camera(sinks: &[String], cameras: usize) -> Result<()> {
    if cameras < 2 {
        return Ok(());
    }
    if let Some(shared) = sinks.iter().find(|s| !s.contains("{camera}")) {
        bail!(
            "{cameras} cameras would all write `{shared}`: put {{camera}} in it, \
             e.g. `{}`",
            with_camera_placeholder(shared)
        );
    }
    Ok(())
}

/// `spec` with `-{camera}` before the file extension, or after the path.
fn with_camera_placeholder(spec: &str) -> String {
    let (base, query) = spec
        .split_once('?')
        .map_or((spec, None), |(b, q)| (b, Some(q)));
    let name_start = base.rfind('/').map_or(0, |i| i + 1);
    let with = match base[name_start..].rfind('.') {
        Some(dot) if spec.starts_with("file:") => {
            let dot = name_start + dot;
            format!("{}-{{camera}}{}", &base[..dot], &base[dot..])
        }
        _ => format!("{base}-{{camera}}"),
    };
    match query {
        Some(q) => format!("{with}?{q}"),
        None => with,
    }
}

/// What one camera costs in memory, at most, for frames of `frame_bytes`: its decoder's and
/// the node's frames, Telescope's queue and conversion buffers and the encoder's reference and
/// look-ahead frames (about 40 frames in all, measured in RESULTS.md), plus 24 MiB of
/// pipeline threads and buffers that do not grow with the frame size.
pub fn camera_memory(frame_bytes: u64) -> u64 {
    frame_bytes * 40 + (24 << 20)
}

/// Refuses a camera count whose frames cannot fit in the memory this machine has available.
fn check_memory(plan: &[(String, SourceSpec)]) -> Result<()> {
    let Some(available) = crate::sample::available_memory() else {
        return Ok(());
    };
    let mut sizes: Vec<(SourceSpec, u64)> = Vec::new();
    let mut need = 0u64;
    for (_, spec) in plan {
        let bytes = match sizes.iter().find(|(s, _)| s == spec) {
            Some((_, b)) => *b,
            None => {
                let b = first_frame_bytes(spec)?;
                sizes.push((spec.clone(), b));
                b
            }
        };
        need += camera_memory(bytes);
    }
    if need > available {
        let mib = |b: u64| b >> 20;
        bail!(
            "{} cameras need about {} MiB ({} MiB each for frames of {} bytes) and {} MiB are \
             available: use fewer cameras or smaller footage",
            plan.len(),
            mib(need),
            mib(need / plan.len().max(1) as u64),
            sizes.first().map_or(0, |(_, b)| *b),
            mib(available)
        );
    }
    Ok(())
}

/// The size of a source's first frame, in bytes (0 when it has none).
fn first_frame_bytes(spec: &SourceSpec) -> Result<u64> {
    let mut source =
        simulator::Source::open(spec, Some(1)).with_context(|| format!("cannot open {spec}"))?;
    let frame = source
        .next_frame()
        .with_context(|| format!("cannot read {spec}"))?;
    Ok(frame.map_or(0, |f| f.memory_size() as u64))
}

fn parse_size(s: &str) -> Result<(u32, u32)> {
    let (w, h) = s
        .split_once('x')
        .with_context(|| format!("`{s}` is not WIDTHxHEIGHT"))?;
    let (w, h): (u32, u32) = (
        w.parse().with_context(|| format!("`{s}`: bad width"))?,
        h.parse().with_context(|| format!("`{s}`: bad height"))?,
    );
    if w < 16 || h < 16 || w > 7680 || h > 4320 {
        bail!("`{s}`: size must be between 16x16 and 7680x4320");
    }
    Ok((w & !1, h & !1))
}

/// One camera's Telescope and what the replay measured around it.
struct Lane {
    name: String,
    source: String,
    telescope: Arc<Telescope>,
    put_ns: Vec<u64>,
    kvs: Vec<telescope::sink::KvsSink>,
    rtsp: Vec<telescope::RtspServer>,
}

/// What a caller other than the command line (the soak) changes in a replay.
#[derive(Debug, Default)]
pub struct Hooks {
    /// Credentials for `kvs://` sinks instead of the AWS default chain.
    pub credentials: Option<telescope::credentials::CredentialSource>,
    /// Show the progress bar even with --quiet (the caller prints its own summary).
    pub progress: bool,
}

pub fn run(args: ReplayArgs) -> Result<()> {
    let report = run_with(args, Hooks::default())?;
    if !report.passed() {
        return Err(crate::report::BudgetExceeded.into());
    }
    Ok(())
}

/// Replay, write the report (with `--report`) and return it.
pub fn run_with(args: ReplayArgs, hooks: Hooks) -> Result<Report> {
    let auth = match (&args.rtsp_user, &args.rtsp_pass) {
        (Some(u), Some(p)) => Some(BasicAuth::new(u, p)),
        _ => None,
    };
    let overlay = match &args.scene {
        Some(path) => {
            let o = Overlay::new();
            o.set(crate::annotate::read_scene(path)?)?;
            Some(o)
        }
        None => None,
    };
    let interrupted = Arc::new(AtomicBool::new(false));
    {
        let flag = interrupted.clone();
        // Ctrl-C ends the replay cleanly: queued frames are written, files finalised, the
        // report written.
        ctrlc::set_handler(move || flag.store(true, Ordering::SeqCst))
            .context("cannot handle Ctrl-C")?;
    }
    let virtual_clock = VirtualClock::new();
    let clock: Arc<dyn Clock> = if args.virtual_clock {
        Arc::new(virtual_clock.clone())
    } else {
        Arc::new(SystemClock::new())
    };

    check_stream_options(&args)?;
    // Open every source before creating any output, so a bad one fails first.
    let plan = cameras(&args)?;
    check_outputs_per_camera(&args.sinks, plan.len())?;
    check_memory(&plan)?;
    let mut configs = Vec::with_capacity(plan.len());
    for (name, source) in &plan {
        configs.push(CameraConfig {
            name: name.clone(),
            source: source.clone(),
            passes: (args.loops > 0).then_some(args.loops),
            timing: None,
        });
    }
    let node_config = NodeConfig {
        cameras: configs,
        app_time: app_time(args.app_ms.as_deref())?,
        seed: args.seed,
        duration: args.duration,
        clock: if args.virtual_clock {
            NodeClock::Virtual(virtual_clock.clone())
        } else {
            NodeClock::System
        },
        ..NodeConfig::default()
    };
    let mut node = Node::new(node_config).context("cannot replay")?;
    // The camera model needs each source's rate, known once the sources are open.
    let mut has_model = false;
    for (i, rate) in node.declared_rates().into_iter().enumerate() {
        let timing = camera_model(&args, rate, args.seed.wrapping_add(i as u64))?;
        has_model |= timing.is_some();
        node.set_timing(i, timing)?;
    }

    let mut sinks = Sinks::new(
        auth,
        KvsOptions {
            create: args.create_stream,
            credentials: hooks.credentials,
        },
    );
    let mut lanes = Vec::with_capacity(plan.len());
    let encoder = telescope::EncoderConfig {
        kind: args.encoder.clone(),
        ..telescope::EncoderConfig::for_profile(args.encoder_profile)
    };
    let make =
        |name: &str, configs: Vec<SinkConfig>, overlay: Option<Overlay>| -> Result<Telescope> {
            let mut builder = TelescopeConfig::builder()
                .clock(clock.clone())
                .name(name)
                .encoder(encoder.clone());
            if let Some(fps) = args.fps {
                builder = builder.fps(fps);
            }
            if let (Some(w), Some(h)) = (args.width, args.height) {
                builder = builder.size(w, h);
            }
            if let Some(o) = overlay {
                builder = builder.overlay(o);
            }
            for sink in configs {
                builder = builder.sink(sink);
            }
            let telescope = Telescope::new(builder.build()).context("bad configuration")?;
            telescope
                .start()
                .with_context(|| format!("camera {name}: cannot start streaming"))?;
            Ok(telescope)
        };
    for (name, source) in &plan {
        let built = sinks.build(&args.sinks, name)?;
        for sink in &built.configs {
            if let SinkConfig::Rtsp(m) = sink {
                println!(
                    "serving {}   (open it with: ffplay {} or vlc {})",
                    m.url(),
                    m.url(),
                    m.url()
                );
            }
        }
        if args.virtual_clock && !built.rtsp.is_empty() {
            tracing::warn!(
                "--virtual-clock replays faster than real time; RTSP viewers see it fast-forwarded"
            );
        }
        lanes.push(Lane {
            name: name.clone(),
            source: source.to_string(),
            telescope: Arc::new(make(name, built.configs, overlay.clone())?),
            put_ns: Vec::new(),
            kvs: built.kvs,
            rtsp: built.rtsp,
        });
    }
    let hdmi = match &args.hdmi {
        Some(spec) => {
            let size = parse_size(&args.hdmi_size)?;
            let built = sinks.build(std::slice::from_ref(spec), "hdmi")?;
            Some((make("hdmi", built.configs, None)?, size))
        }
        None => None,
    };

    let wall = Instant::now();
    let cpu_at_start = crate::sample::process_cpu();
    // Progress on stderr, for people: hidden when stderr is not a terminal, or with --quiet.
    let progress = if (args.quiet || args.json) && !hooks.progress {
        indicatif::ProgressBar::hidden()
    } else {
        match args.duration {
            Some(d) => indicatif::ProgressBar::new(d.as_secs().max(1)).with_style(
                indicatif::ProgressStyle::with_template(
                    "{elapsed_precise} [{bar:30}] {pos}/{len} s {msg}",
                )
                .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
            ),
            None => indicatif::ProgressBar::new_spinner(),
        }
    };
    let sampler = {
        let watched: Vec<_> = lanes
            .iter()
            .map(|l| (l.telescope.clone(), l.kvs.clone(), l.rtsp.clone()))
            .collect();
        let (progress, started) = (progress.clone(), Instant::now());
        crate::sample::Sampler::start(Duration::from_millis(args.sample_ms.max(10)), move || {
            let counters: Vec<crate::sample::CameraCounters> = watched
                .iter()
                .map(|(t, kvs, rtsp)| {
                    let s = t.stats();
                    crate::sample::CameraCounters {
                        frames_put: s.frames_put,
                        frames_out: s.frames_out,
                        queue_depth: s.queue_depth,
                        kvs_persisted: kvs.iter().map(|k| k.stats().persisted).sum(),
                        rtsp_clients: rtsp.iter().map(|r| r.stats().clients).sum(),
                    }
                })
                .collect();
            progress.set_position(started.elapsed().as_secs());
            progress.set_message(format!(
                "{} frames out",
                counters.iter().map(|c| c.frames_out).sum::<u64>()
            ));
            counters
        })
        .context("cannot start the sampler")?
    };
    let virtual_mode = args.virtual_clock;
    let mut output = |t: Duration, streams: Vec<MediaStream>| -> Result<(), NodeError> {
        let mut tiles: Vec<Frame> = Vec::new();
        for stream in streams {
            // A camera without any frame yet has no stream: match by name, not position.
            let Some(lane) = lanes.iter_mut().find(|l| l.name == stream.stream_id) else {
                return Err(NodeError::Output(format!(
                    "unknown camera {}",
                    stream.stream_id
                )));
            };
            // A cached stream repeats a frame already streamed: only the HDMI picture shows it.
            if stream.is_cached && hdmi.is_none() {
                continue;
            }
            let cached = stream.is_cached;
            // With a camera model, the app stamps frames on receipt.
            let at = if has_model {
                stream.arrived
            } else {
                stream.time_stamp
            };
            let frame = stream
                .into_rendered()
                .map_err(|e| NodeError::Output(e.to_string()))?;
            if cached {
                tiles.push(frame);
                continue;
            }
            if hdmi.is_some() {
                tiles.push(frame.clone());
            }
            if let Some(failure) = lane.telescope.failure() {
                return Err(NodeError::Output(format!(
                    "camera {}: {failure}",
                    lane.name
                )));
            }
            let started = Instant::now();
            if virtual_mode {
                lane.telescope.put_blocking(frame.at(at));
            } else {
                lane.telescope.put(frame.at(at));
            }
            lane.put_ns.push(started.elapsed().as_nanos() as u64);
        }
        if let Some((telescope, (w, h))) = &hdmi {
            let picture = compose(&tiles, *w, *h).at(t);
            if virtual_mode {
                telescope.put_blocking(picture);
            } else {
                telescope.put(picture);
            }
        }
        Ok(())
    };
    let mut motion = args
        .annotate
        .then(|| simulator::MotionApp::new(simulator::MotionConfig::default()));
    let mut app = |streams: &mut [MediaStream]| {
        if let Some(m) = motion.as_mut() {
            simulator::App::process(m, streams);
        }
    };
    let threads_at_start = crate::sample::thread_cpu_seconds();
    let node_report = node
        .run(&mut app, &mut output, &interrupted)
        .context("replay failed")?;
    // Before the pipelines stop, while their threads (the encoders') still live.
    let threads =
        crate::sample::thread_cpu_since(&threads_at_start, &crate::sample::thread_cpu_seconds());
    let app_report = motion.map(|m| {
        let s = m.stats();
        crate::report::AppReport {
            name: "motion".into(),
            frames: s.frames,
            boxes: s.boxes,
            errors: s.errors,
            last_error: s.last_error.clone(),
        }
    });
    if let Some(a) = app_report.as_ref().filter(|a| a.errors > 0) {
        tracing::warn!(
            errors = a.errors,
            last = a.last_error.as_deref().unwrap_or(""),
            "the sample app could not analyse some frames; they were streamed undrawn"
        );
    }
    let elapsed = wall.elapsed();
    let timeline = sampler.finish();
    progress.finish_and_clear();

    let mut report = Report {
        schema_version: SCHEMA_VERSION,
        command: "replay".into(),
        seed: args.seed,
        virtual_clock: args.virtual_clock,
        duration_seconds: node_report.elapsed.as_secs_f64(),
        wall_seconds: elapsed.as_secs_f64(),
        iterations: node_report.iterations,
        interrupted: node_report.interrupted,
        cameras: Vec::new(),
        process: None,
        timeline: Vec::new(),
        verdicts: Vec::new(),
        app: app_report,
    };
    let mut failures = Vec::new();
    for (lane, cam) in lanes.iter().zip(&node_report.cameras) {
        let stats = match lane.telescope.stop() {
            Ok(r) => r.stats,
            Err(e) => {
                failures.push(format!("camera {}: {e}", lane.name));
                lane.telescope.stats()
            }
        };
        report
            .cameras
            .push(camera_report(lane, cam, &stats, node_report.elapsed));
    }
    if let Some((telescope, _)) = &hdmi {
        if let Err(e) = telescope.stop() {
            failures.push(format!("hdmi: {e}"));
        }
    }
    let cpu = crate::sample::process_cpu();
    report.process = Some(crate::sample::ProcessReport::new(
        (
            cpu.0.saturating_sub(cpu_at_start.0),
            cpu.1.saturating_sub(cpu_at_start.1),
        ),
        wall.elapsed(),
        lanes.len(),
        &timeline,
        &threads,
    ));
    report.timeline = timeline;
    report.verdicts = args.budgets.judge(&report);
    let chatty = !args.quiet && !args.json;
    if has_model && chatty {
        for c in &report.cameras {
            println!(
                "camera {} model (seed {}): {} of {} frames lost on the way",
                c.name, args.seed, c.camera_lost, c.frames_in
            );
        }
    }
    if chatty {
        print_summary(&report, &lanes, elapsed);
        if let Some(a) = &report.app {
            println!(
                "app {}: {} frames analysed, {} boxes drawn, {} frames it could not analyse",
                a.name, a.frames, a.boxes, a.errors
            );
        }
        print_verdicts(&report);
    }
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    }
    if let Some(path) = &args.stats_json {
        let first = report.cameras.first().context("no camera")?;
        let mut json = serde_json::to_value(first)?;
        json["frames_read"] = first.frames_in.into();
        std::fs::write(path, serde_json::to_vec_pretty(&json)?)
            .with_context(|| format!("cannot write {}", path.display()))?;
    }
    if let Some(dir) = &args.report {
        report.write(dir)?;
        if chatty {
            println!(
                "report: {} and {}",
                dir.join("report.json").display(),
                dir.join("report.html").display()
            );
        }
    }
    if !failures.is_empty() {
        bail!("streaming did not finish cleanly: {}", failures.join("; "));
    }
    Ok(report)
}

/// The verdict table, when budgets were given.
pub fn print_verdicts(report: &Report) {
    for v in &report.verdicts {
        println!(
            "budget {}: {:.2} {} measured, limit {} -> {}",
            v.name,
            v.measured,
            v.unit,
            v.limit,
            if v.pass { "pass" } else { "FAIL" }
        );
    }
}

fn camera_report(
    lane: &Lane,
    cam: &simulator::node::CameraStats,
    s: &Stats,
    elapsed: Duration,
) -> CameraReport {
    let seconds = elapsed.as_secs_f64().max(1e-9);
    CameraReport {
        name: lane.name.clone(),
        source: lane.source.clone(),
        frames_in: cam.frames_in,
        camera_lost: cam.lost,
        superseded: cam.superseded,
        pending: cam.pending,
        frames_put: s.frames_put,
        frames_pushed: s.frames_pushed,
        frames_out: s.frames_out,
        frames_duplicated: s.frames_duplicated,
        frames_rate_dropped: s.frames_rate_dropped,
        dropped: s
            .dropped
            .iter()
            .map(|(r, n)| (r.name().to_owned(), *n))
            .collect(),
        cached_iterations: cam.cached,
        unavailable_iterations: cam.unavailable,
        input_fps: cam.delivered as f64 / seconds,
        input_interval_ms: Percentiles::of(&cam.intervals_us, 1e-3),
        output_fps: s.frames_out as f64 / seconds,
        put_latency_us: Percentiles::of(&lane.put_ns, 1e-3),
        rate: s.estimate.map(|e| e.rate.to_string()),
        width: s.estimate.map(|e| e.width),
        height: s.estimate.map(|e| e.height),
        warmup_frames: s.estimate.map(|e| e.frames),
        encoder: s.encoder.clone(),
        restarts: s.restarts,
        last_error: s.last_error.clone(),
        kvs: lane
            .kvs
            .iter()
            .map(|k| {
                let st = k.stats();
                KvsReport {
                    stream: k.stream_name().to_owned(),
                    fragments: st.fragments,
                    sent: st.sent,
                    received: st.received,
                    persisted: st.persisted,
                    resent: st.resent,
                    evicted: st.evicted,
                    rejected: st.rejected,
                    connections: st.connections,
                    errors: st.errors,
                    bytes_sent: st.bytes_sent,
                    ack_latency_ms_max: st.ack_latency_ms_max,
                }
            })
            .collect(),
        rtsp_clients: lane.rtsp.iter().map(|r| r.stats().clients_total).sum(),
        rtsp_delivered: lane
            .rtsp
            .iter()
            .flat_map(|r| r.stats().mounts)
            .filter(|m| {
                lane.telescope
                    .config()
                    .sinks
                    .iter()
                    .any(|s| matches!(s, SinkConfig::Rtsp(mount) if mount.path() == m.path))
            })
            .map(|m| m.delivered)
            .sum(),
        put_latency_histogram_us: crate::report::log_histogram(&lane.put_ns, 1e-3),
    }
}

fn print_summary(report: &Report, lanes: &[Lane], elapsed: Duration) {
    for (c, lane) in report.cameras.iter().zip(lanes) {
        let size = match (c.width, c.height) {
            (Some(w), Some(h)) => format!("{w}x{h}"),
            _ => "?".into(),
        };
        println!(
            "camera {}: replayed {} frames of {} in {:.1} s: {} fps, {}, encoder {}",
            c.name,
            c.frames_in,
            c.source,
            elapsed.as_secs_f64(),
            c.rate.as_deref().unwrap_or("?"),
            size,
            c.encoder.as_deref().unwrap_or("?")
        );
        let drops: Vec<String> = DropReason::ALL
            .iter()
            .filter_map(|r| {
                let n = c.dropped.get(r.name()).copied().unwrap_or(0);
                (n > 0).then(|| format!("{n} {}", r.name()))
            })
            .collect();
        println!(
            "  frames: {} put, {} encoded out, {} duplicated, {} dropped by rate, {} superseded, dropped: {}",
            c.frames_put,
            c.frames_out,
            c.frames_duplicated,
            c.frames_rate_dropped,
            c.superseded,
            if drops.is_empty() { "none".to_owned() } else { drops.join(", ") }
        );
        for sink in lane.telescope.config().sinks.iter() {
            match sink {
                SinkConfig::File(f) if f.rotation.is_some() => {
                    println!(
                        "  wrote a series of files {} (index in place of %05d)",
                        f.pattern_for(0).display()
                    );
                }
                SinkConfig::File(f) => {
                    println!("  wrote {}", f.path.display());
                    println!(
                        "  play it with: ffplay {}   (or: vlc {})",
                        f.path.display(),
                        f.path.display()
                    );
                }
                SinkConfig::Kvs(k) => {
                    println!("  streamed to {}", sink.describe());
                    // A loopback endpoint is most likely a mock-kvs, whose root serves a viewer.
                    let endpoint = k.data_endpoint().trim_end_matches('/');
                    if endpoint.starts_with("http://127.")
                        || endpoint.starts_with("http://localhost")
                    {
                        println!("  watch it: {endpoint}/?stream={}", k.stream_name());
                    }
                }
                other => println!("  streamed to {}", other.describe()),
            }
        }
        match c.unaccounted() {
            0 => println!("  every frame accounted for"),
            n => println!("  WARNING: {n} frames unaccounted for"),
        }
        for k in &c.kvs {
            println!(
                "  KVS {}: {} fragments, {} persisted, {} resent, {} evicted, {} rejected, {} connections",
                k.stream, k.fragments, k.persisted, k.resent, k.evicted, k.rejected, k.connections
            );
        }
    }
    let mut seen = std::collections::HashSet::new();
    for server in lanes.iter().flat_map(|l| l.rtsp.iter()) {
        if !seen.insert(server.port()) {
            continue;
        }
        let s = server.stats();
        println!(
            "RTSP on port {}: {} viewers in total, {} refused with wrong credentials",
            server.port(),
            s.clients_total,
            s.auth_failures
        );
    }
}
