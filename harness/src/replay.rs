//! `telescope replay`: cameras (footage, URIs, images, patterns) -> a simulated Panorama node
//! -> one Telescope per camera -> sinks; optionally the tiled HDMI picture too, and a report.

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use clap::Args;
use simulator::graph::Graph;
use simulator::node::{compose, AppTime, NodeClock, NodeError, NodeReport};
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
    #[arg(long, default_value_t = FrameSize::HDMI)]
    pub hdmi_size: FrameSize,
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
    #[arg(long, default_value_t = defaults::LOOPS)]
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
    #[arg(long, value_enum, default_value_t = JitterDist::Uniform)]
    pub jitter_dist: JitterDist,
    /// Camera model: probability that a frame starts a loss burst.
    #[arg(long, value_name = "P", default_value_t = defaults::DROP)]
    pub drop: f64,
    /// Camera model: frames lost per burst.
    #[arg(long, default_value_t = defaults::DROP_BURST)]
    pub drop_burst: u32,
    /// Camera model: the camera freezes every S seconds of capture...
    #[arg(long, value_name = "S")]
    pub stall_every: Option<f64>,
    /// ...for this many milliseconds.
    #[arg(long, value_name = "MS", default_value_t = defaults::STALL_MS)]
    pub stall_ms: u64,
    /// Camera model: the camera's real rate (e.g. 29.97 while --fps says 30).
    #[arg(long, value_name = "RATE")]
    pub camera_fps: Option<Rate>,
    /// The app's own processing time per iteration: MEAN or MEAN:SD milliseconds (normal).
    #[arg(long, value_name = "MS[:SD]")]
    pub app_ms: Option<AppTime>,
    /// Seed of every random choice (same seed, same run).
    #[arg(long, default_value_t = defaults::SEED)]
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
    #[arg(long, value_name = "MS", default_value_t = defaults::SAMPLE_MS)]
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

/// How a camera model's delivery jitter is distributed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum JitterDist {
    // Uniform in [0, J].
    Uniform,
    // Normal with mean J/2 and deviation J/6.
    Normal,
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

/// Defaults of `telescope replay`'s options, shared by the flags and [`ReplayArgs::new`].
mod defaults {
    pub const LOOPS: u32 = 1;
    pub const DROP: f64 = 0.0;
    pub const DROP_BURST: u32 = 1;
    pub const STALL_MS: u64 = 2000;
    pub const SEED: u64 = 1;
    pub const SAMPLE_MS: u64 = 1000;
}

impl ReplayArgs {
    /// A replay of `footage` into `sinks` with every other option at its default, as
    /// `telescope replay FOOTAGE... --sink SINK...` runs it; callers other than the command
    /// line (the soak) change fields from here.
    pub fn new(footage: Vec<String>, sinks: Vec<String>) -> Self {
        ReplayArgs {
            footage,
            cameras: None,
            graph: None,
            sinks,
            hdmi: None,
            hdmi_size: FrameSize::HDMI,
            rtsp_user: None,
            rtsp_pass: None,
            fps: None,
            width: None,
            height: None,
            virtual_clock: false,
            loops: defaults::LOOPS,
            duration: None,
            encoder: telescope::EncoderKind::Auto,
            encoder_profile: telescope::EncoderProfile::default(),
            scene: None,
            annotate: false,
            jitter_ms: None,
            jitter_dist: JitterDist::Uniform,
            drop: defaults::DROP,
            drop_burst: defaults::DROP_BURST,
            stall_every: None,
            stall_ms: defaults::STALL_MS,
            camera_fps: None,
            app_ms: None,
            seed: defaults::SEED,
            create_stream: false,
            stats_json: None,
            report: None,
            sample_ms: defaults::SAMPLE_MS,
            budgets: crate::report::Budgets::default(),
            quiet: false,
            json: false,
        }
    }

    /// The camera-model flags as the simulator takes them.
    pub fn camera_model_options(&self) -> CameraModelOptions {
        CameraModelOptions {
            jitter_ms: self.jitter_ms,
            normal_jitter: self.jitter_dist == JitterDist::Normal,
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

/// A picture size, `WIDTHxHEIGHT`, between 16x16 and 7680x4320 (odd sides rounded down to
/// even, as the encoder needs).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FrameSize {
    pub width: u32,
    pub height: u32,
}

impl FrameSize {
    /// The HDMI output of a Panorama appliance.
    pub const HDMI: FrameSize = FrameSize {
        width: 1280,
        height: 720,
    };
}

impl std::fmt::Display for FrameSize {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}x{}", self.width, self.height)
    }
}

impl std::str::FromStr for FrameSize {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let (w, h) = s
            .split_once('x')
            .ok_or_else(|| format!("`{s}` is not WIDTHxHEIGHT"))?;
        let width: u32 = w.parse().map_err(|_| format!("`{s}`: bad width"))?;
        let height: u32 = h.parse().map_err(|_| format!("`{s}`: bad height"))?;
        if width < 16 || height < 16 || width > 7680 || height > 4320 {
            return Err(format!("`{s}`: size must be between 16x16 and 7680x4320"));
        }
        Ok(FrameSize {
            width: width & !1,
            height: height & !1,
        })
    }
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

/// The Telescope streaming the tiled HDMI picture, and the picture's size.
struct Hdmi {
    telescope: Telescope,
    size: FrameSize,
}

/// Every output of a replay, started: one lane per camera and the HDMI picture.
struct Outputs {
    lanes: Vec<Lane>,
    hdmi: Option<Hdmi>,
}

/// What a run measured, taken while the pipelines still live.
struct Measured {
    node: NodeReport,
    app: Option<crate::report::AppReport>,
    /// Wall time the node ran.
    elapsed: Duration,
    /// From the outputs' start to the end of the run, for the process's CPU.
    started: Instant,
    cpu_at_start: (Duration, Duration),
    timeline: Vec<crate::sample::Sample>,
    threads: Vec<(String, f64)>,
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

/// Replay, write the report (with `--report`) and return it: build the run from the options,
/// start the outputs, run the node, collect the counters, report and print.
pub fn run_with(args: ReplayArgs, hooks: Hooks) -> Result<Report> {
    let overlay = read_overlay(&args)?;
    let interrupted = interrupt_flag()?;
    let (clock, node_clock) = clocks(args.virtual_clock);
    check_stream_options(&args)?;
    // Open every source before creating any output, so a bad one fails first.
    let planned = build_node(&args, node_clock)?;
    let outputs = start_outputs(&args, hooks.credentials, &planned.cameras, &clock, overlay)?;
    let camera_model = planned.camera_model;
    let (outputs, measured) = run_node(&args, planned, outputs, &interrupted, hooks.progress)?;
    let (report, failures) = collect(&args, &outputs, measured);
    print_run(&args, &report, &outputs, camera_model);
    write_outputs(&args, &report)?;
    if !failures.is_empty() {
        bail!("streaming did not finish cleanly: {}", failures.join("; "));
    }
    Ok(report)
}

/// The `--scene` overlay, read before anything starts.
fn read_overlay(args: &ReplayArgs) -> Result<Option<Overlay>> {
    let Some(path) = &args.scene else {
        return Ok(None);
    };
    let overlay = Overlay::new();
    overlay.set(crate::annotate::read_scene(path)?)?;
    Ok(Some(overlay))
}

/// A flag Ctrl-C sets: the replay then ends cleanly (queued frames written, files finalised,
/// the report written).
fn interrupt_flag() -> Result<Arc<AtomicBool>> {
    let interrupted = Arc::new(AtomicBool::new(false));
    let flag = interrupted.clone();
    ctrlc::set_handler(move || flag.store(true, Ordering::SeqCst))
        .context("cannot handle Ctrl-C")?;
    Ok(interrupted)
}

/// The Telescopes' clock and the node's: one simulated clock for both, or the system's.
fn clocks(virtual_clock: bool) -> (Arc<dyn Clock>, NodeClock) {
    if virtual_clock {
        let clock = VirtualClock::new();
        (Arc::new(clock.clone()), NodeClock::Virtual(clock))
    } else {
        (Arc::new(SystemClock::new()), NodeClock::System)
    }
}

/// The node, every camera's source open and its camera model set.
struct PlannedNode {
    node: Node,
    /// The cameras' names and sources.
    cameras: Vec<(String, SourceSpec)>,
    /// A camera model is on: the app stamps frames on receipt.
    camera_model: bool,
}

/// The node the options describe, with every source open (a bad one fails here).
fn build_node(args: &ReplayArgs, clock: NodeClock) -> Result<PlannedNode> {
    let plan = cameras(args)?;
    check_outputs_per_camera(&args.sinks, plan.len())?;
    check_memory(&plan)?;
    let node_config = NodeConfig {
        cameras: plan
            .iter()
            .map(|(name, source)| CameraConfig {
                name: name.clone(),
                source: source.clone(),
                passes: (args.loops > 0).then_some(args.loops),
                timing: None,
            })
            .collect(),
        app_time: args.app_ms.unwrap_or_default(),
        seed: args.seed,
        duration: args.duration,
        clock,
        ..NodeConfig::default()
    };
    let mut node = Node::new(node_config).context("cannot replay")?;
    // The camera model needs each source's rate, known once the sources are open.
    let mut has_model = false;
    for (i, rate) in node.declared_rates().into_iter().enumerate() {
        let timing = camera_model(args, rate, args.seed.wrapping_add(i as u64))?;
        has_model |= timing.is_some();
        node.set_timing(i, timing)?;
    }
    Ok(PlannedNode {
        node,
        cameras: plan,
        camera_model: has_model,
    })
}

/// Starts every camera's sinks and Telescope, and the HDMI picture's.
fn start_outputs(
    args: &ReplayArgs,
    credentials: Option<telescope::credentials::CredentialSource>,
    plan: &[(String, SourceSpec)],
    clock: &Arc<dyn Clock>,
    overlay: Option<Overlay>,
) -> Result<Outputs> {
    let auth = match (&args.rtsp_user, &args.rtsp_pass) {
        (Some(u), Some(p)) => Some(BasicAuth::new(u, p)),
        _ => None,
    };
    let create = args.create_stream;
    let mut sinks = Sinks::new(
        auth,
        KvsOptions {
            create,
            credentials,
        },
    );
    let mut lanes = Vec::with_capacity(plan.len());
    for (name, source) in plan {
        let built = sinks.build(&args.sinks, name)?;
        announce_rtsp(&built.configs);
        if args.virtual_clock && !built.rtsp.is_empty() {
            tracing::warn!(
                "--virtual-clock replays faster than real time; RTSP viewers see it fast-forwarded"
            );
        }
        let telescope = start_telescope(args, clock, name, built.configs, overlay.clone())?;
        lanes.push(Lane {
            name: name.clone(),
            source: source.to_string(),
            telescope: Arc::new(telescope),
            put_ns: Vec::new(),
            kvs: built.kvs,
            rtsp: built.rtsp,
        });
    }
    let hdmi = match &args.hdmi {
        Some(spec) => {
            let built = sinks.build(std::slice::from_ref(spec), "hdmi")?;
            Some(Hdmi {
                telescope: start_telescope(args, clock, "hdmi", built.configs, None)?,
                size: args.hdmi_size,
            })
        }
        None => None,
    };
    Ok(Outputs { lanes, hdmi })
}

/// Tells people where each RTSP stream is served and how to watch it, and where to watch a KVS
/// stream written to a loopback endpoint (most likely a mock-kvs, whose root is a viewer).
fn announce_rtsp(sinks: &[SinkConfig]) {
    for sink in sinks {
        match sink {
            SinkConfig::Rtsp(m) => {
                let url = m.url();
                println!("serving {url}   (open it with: ffplay {url} or vlc {url})");
            }
            SinkConfig::Kvs(k) => {
                if let Some(url) = mock_viewer(k) {
                    println!("watch {} in the mock-kvs viewer: {url}", k.stream_name());
                }
            }
            _ => {}
        }
    }
}

/// The mock-kvs viewer URL of a KVS sink's stream, when its endpoint is on loopback.
fn mock_viewer(k: &telescope::sink::KvsSink) -> Option<String> {
    let endpoint = k.data_endpoint().trim_end_matches('/');
    let local = endpoint.starts_with("http://127.") || endpoint.starts_with("http://localhost");
    local.then(|| format!("{endpoint}/?stream={}", k.stream_name()))
}

/// One started Telescope streaming into `sinks`, configured by the stream options.
fn start_telescope(
    args: &ReplayArgs,
    clock: &Arc<dyn Clock>,
    name: &str,
    sinks: Vec<SinkConfig>,
    overlay: Option<Overlay>,
) -> Result<Telescope> {
    let encoder = telescope::EncoderConfig {
        kind: args.encoder.clone(),
        ..telescope::EncoderConfig::for_profile(args.encoder_profile)
    };
    let mut builder = TelescopeConfig::builder()
        .clock(clock.clone())
        .name(name)
        .encoder(encoder);
    if let Some(fps) = args.fps {
        builder = builder.fps(fps);
    }
    if let (Some(w), Some(h)) = (args.width, args.height) {
        builder = builder.size(w, h);
    }
    if let Some(o) = overlay {
        builder = builder.overlay(o);
    }
    for sink in sinks {
        builder = builder.sink(sink);
    }
    let telescope = Telescope::new(builder.build()).context("bad configuration")?;
    telescope
        .start()
        .with_context(|| format!("camera {name}: cannot start streaming"))?;
    Ok(telescope)
}

/// Runs the node into the outputs, with the sample app when asked, the sampler and the
/// progress bar; measures the process while the pipelines still live.
fn run_node(
    args: &ReplayArgs,
    planned: PlannedNode,
    outputs: Outputs,
    interrupted: &AtomicBool,
    show_progress: bool,
) -> Result<(Outputs, Measured)> {
    let started = Instant::now();
    let cpu_at_start = crate::sample::process_cpu();
    let progress = progress_bar(args, show_progress);
    let sampler = start_sampler(&outputs.lanes, &progress, args.sample_ms)?;
    let mut delivery = Delivery {
        outputs,
        stamp_on_arrival: planned.camera_model,
        blocking: args.virtual_clock,
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
    let node_report = planned
        .node
        .run(
            &mut app,
            &mut |t, streams| delivery.deliver(t, streams),
            interrupted,
        )
        .context("replay failed")?;
    // Before the pipelines stop, while their threads (the encoders') still live.
    let threads =
        crate::sample::thread_cpu_since(&threads_at_start, &crate::sample::thread_cpu_seconds());
    let app = motion.map(|m| app_report(&m));
    let elapsed = started.elapsed();
    let timeline = sampler.finish();
    progress.finish_and_clear();
    let measured = Measured {
        node: node_report,
        app,
        elapsed,
        started,
        cpu_at_start,
        timeline,
        threads,
    };
    Ok((delivery.outputs, measured))
}

/// Progress on stderr, for people: hidden when stderr is not a terminal, or with --quiet.
fn progress_bar(args: &ReplayArgs, show: bool) -> indicatif::ProgressBar {
    if (args.quiet || args.json) && !show {
        return indicatif::ProgressBar::hidden();
    }
    match args.duration {
        Some(d) => indicatif::ProgressBar::new(d.as_secs().max(1)).with_style(
            indicatif::ProgressStyle::with_template(
                "{elapsed_precise} [{bar:30}] {pos}/{len} s {msg}",
            )
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
        ),
        None => indicatif::ProgressBar::new_spinner(),
    }
}

/// Samples every camera's counters each `sample_ms`, moving the progress bar along.
fn start_sampler(
    lanes: &[Lane],
    progress: &indicatif::ProgressBar,
    sample_ms: u64,
) -> Result<crate::sample::Sampler> {
    let watched: Vec<_> = lanes
        .iter()
        .map(|l| (l.telescope.clone(), l.kvs.clone(), l.rtsp.clone()))
        .collect();
    let (progress, started) = (progress.clone(), Instant::now());
    let read = move || {
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
    };
    crate::sample::Sampler::start(Duration::from_millis(sample_ms.max(10)), read)
        .context("cannot start the sampler")
}

/// Hands the app's streams to the cameras' Telescopes and the HDMI picture's.
struct Delivery {
    outputs: Outputs,
    /// A camera model is on: the app stamps frames on receipt.
    stamp_on_arrival: bool,
    /// Virtual time: `put` waits for room instead of dropping (none dropped).
    blocking: bool,
}

impl Delivery {
    /// One iteration's streams, at node time `t`.
    fn deliver(&mut self, t: Duration, streams: Vec<MediaStream>) -> Result<(), NodeError> {
        let with_hdmi = self.outputs.hdmi.is_some();
        let mut tiles: Vec<Frame> = Vec::new();
        for stream in streams {
            // A cached stream repeats a frame already streamed: only the HDMI picture shows it.
            if stream.is_cached && !with_hdmi {
                continue;
            }
            let cached = stream.is_cached;
            let (name, frame, at) = self.rendered(stream)?;
            if cached {
                tiles.push(frame);
                continue;
            }
            if with_hdmi {
                tiles.push(frame.clone());
            }
            self.put_camera(&name, frame.at(at))?;
        }
        if let Some(hdmi) = &self.outputs.hdmi {
            let picture = compose(&tiles, hdmi.size.width, hdmi.size.height).at(t);
            put(&hdmi.telescope, picture, self.blocking);
        }
        Ok(())
    }

    /// The stream's camera, its frame with the app's drawing, and the frame's time.
    fn rendered(&self, stream: MediaStream) -> Result<(String, Frame, Duration), NodeError> {
        // With a camera model, the app stamps frames on receipt.
        let at = if self.stamp_on_arrival {
            stream.arrived
        } else {
            stream.time_stamp
        };
        let name = stream.stream_id.clone();
        let frame = stream
            .into_rendered()
            .map_err(|e| NodeError::Output(e.to_string()))?;
        Ok((name, frame, at))
    }

    /// Puts a fresh frame into its camera's Telescope, timing the call.
    fn put_camera(&mut self, camera: &str, frame: Frame) -> Result<(), NodeError> {
        // A camera without any frame yet has no stream: match by name, not position.
        let Some(lane) = self.outputs.lanes.iter_mut().find(|l| l.name == camera) else {
            return Err(NodeError::Output(format!("unknown camera {camera}")));
        };
        if let Some(failure) = lane.telescope.failure() {
            return Err(NodeError::Output(format!(
                "camera {}: {failure}",
                lane.name
            )));
        }
        let started = Instant::now();
        put(&lane.telescope, frame, self.blocking);
        lane.put_ns.push(started.elapsed().as_nanos() as u64);
        Ok(())
    }
}

/// `put`, or on virtual time `put_blocking`: a simulated camera waits for the pipeline.
fn put(telescope: &Telescope, frame: Frame, blocking: bool) {
    if blocking {
        telescope.put_blocking(frame);
    } else {
        telescope.put(frame);
    }
}

/// What the `--annotate` sample app did; its failures are logged once.
fn app_report(motion: &simulator::MotionApp) -> crate::report::AppReport {
    let s = motion.stats();
    let report = crate::report::AppReport {
        name: "motion".into(),
        frames: s.frames,
        boxes: s.boxes,
        errors: s.errors,
        last_error: s.last_error.clone(),
    };
    if report.errors > 0 {
        tracing::warn!(
            errors = report.errors,
            last = report.last_error.as_deref().unwrap_or(""),
            "the sample app could not analyse some frames; they were streamed undrawn"
        );
    }
    report
}

/// Stops every Telescope and builds the report from their final counters; the failures of
/// those that did not finish cleanly.
fn collect(args: &ReplayArgs, outputs: &Outputs, measured: Measured) -> (Report, Vec<String>) {
    let mut failures = Vec::new();
    let node = &measured.node;
    let mut cameras = Vec::with_capacity(outputs.lanes.len());
    for (lane, cam) in outputs.lanes.iter().zip(&node.cameras) {
        let stats = match lane.telescope.stop() {
            Ok(r) => r.stats,
            Err(e) => {
                failures.push(format!("camera {}: {e}", lane.name));
                lane.telescope.stats()
            }
        };
        cameras.push(camera_report(lane, cam, stats, node.elapsed));
    }
    if let Some(hdmi) = &outputs.hdmi {
        if let Err(e) = hdmi.telescope.stop() {
            failures.push(format!("hdmi: {e}"));
        }
    }
    let cpu = crate::sample::process_cpu();
    let process = crate::sample::ProcessReport::new(
        (
            cpu.0.saturating_sub(measured.cpu_at_start.0),
            cpu.1.saturating_sub(measured.cpu_at_start.1),
        ),
        measured.started.elapsed(),
        outputs.lanes.len(),
        &measured.timeline,
        &measured.threads,
    );
    let mut report = Report {
        schema_version: SCHEMA_VERSION,
        command: "replay".into(),
        seed: args.seed,
        virtual_clock: args.virtual_clock,
        duration_seconds: node.elapsed.as_secs_f64(),
        wall_seconds: measured.elapsed.as_secs_f64(),
        iterations: node.iterations,
        interrupted: node.interrupted,
        cameras,
        process: Some(process),
        timeline: measured.timeline,
        verdicts: Vec::new(),
        app: measured.app,
    };
    report.verdicts = args.budgets.judge(&report);
    (report, failures)
}

/// What people read on stdout after a run (nothing with --quiet or --json).
fn print_run(args: &ReplayArgs, report: &Report, outputs: &Outputs, camera_model: bool) {
    if args.quiet || args.json {
        return;
    }
    if camera_model {
        for c in &report.cameras {
            println!(
                "camera {} model (seed {}): {} of {} frames lost on the way",
                c.name, args.seed, c.camera_lost, c.frames_in
            );
        }
    }
    print_summary(report, &outputs.lanes);
    if let Some(a) = &report.app {
        println!(
            "app {}: {} frames analysed, {} boxes drawn, {} frames it could not analyse",
            a.name, a.frames, a.boxes, a.errors
        );
    }
    print_verdicts(report);
}

/// The report on stdout (--json), the first camera's counters (--stats-json) and the report
/// directory (--report).
fn write_outputs(args: &ReplayArgs, report: &Report) -> Result<()> {
    if args.json {
        println!("{}", serde_json::to_string_pretty(report)?);
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
        if !args.quiet && !args.json {
            println!(
                "report: {} and {}",
                dir.join("report.json").display(),
                dir.join("report.html").display()
            );
        }
    }
    Ok(())
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
    stats: Stats,
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
        cached_iterations: cam.cached,
        unavailable_iterations: cam.unavailable,
        input_fps: cam.delivered as f64 / seconds,
        input_interval_ms: Percentiles::of(&cam.intervals_us, 1e-3),
        output_fps: stats.frames_out as f64 / seconds,
        put_latency_us: Percentiles::of(&lane.put_ns, 1e-3),
        telescope: stats,
        kvs: lane
            .kvs
            .iter()
            .map(|k| KvsReport {
                stream: k.stream_name().to_owned(),
                delivery: k.stats(),
            })
            .collect(),
        rtsp_clients: lane.rtsp.iter().map(|r| r.stats().clients_total).sum(),
        rtsp_delivered: rtsp_delivered(lane),
        put_latency_histogram_us: crate::report::log_histogram(&lane.put_ns, 1e-3),
    }
}

/// Access units the lane's own RTSP mounts handed to their media.
fn rtsp_delivered(lane: &Lane) -> u64 {
    let sinks = &lane.telescope.config().sinks;
    lane.rtsp
        .iter()
        .flat_map(|r| r.stats().mounts)
        .filter(|m| {
            sinks
                .iter()
                .any(|s| matches!(s, SinkConfig::Rtsp(mount) if mount.path() == m.path))
        })
        .map(|m| m.delivered)
        .sum()
}

fn print_summary(report: &Report, lanes: &[Lane]) {
    for (c, lane) in report.cameras.iter().zip(lanes) {
        print_camera(c, report.wall_seconds);
        print_sinks(&lane.telescope.config().sinks);
        match c.unaccounted() {
            0 => println!("  every frame accounted for"),
            n => println!("  WARNING: {n} frames unaccounted for"),
        }
        for k in &c.kvs {
            let d = &k.delivery;
            println!(
                "  KVS {}: {} fragments, {} persisted, {} resent, {} evicted, {} rejected, {} connections",
                k.stream, d.fragments, d.persisted, d.resent, d.evicted, d.rejected, d.connections
            );
        }
    }
    print_rtsp_servers(lanes);
}

/// A camera's source, stream and frame counts.
fn print_camera(c: &CameraReport, wall_seconds: f64) {
    let t = &c.telescope;
    let size = match t.estimate {
        Some(e) => format!("{}x{}", e.width, e.height),
        None => "?".into(),
    };
    println!(
        "camera {}: replayed {} frames of {} in {:.1} s: {} fps, {}, encoder {}",
        c.name,
        c.frames_in,
        c.source,
        wall_seconds,
        t.estimate.map_or("?".into(), |e| e.rate.to_string()),
        size,
        t.encoder.as_deref().unwrap_or("?")
    );
    let drops: Vec<String> = DropReason::ALL
        .iter()
        .filter_map(|r| {
            let n = t.dropped(*r);
            (n > 0).then(|| format!("{n} {}", r.name()))
        })
        .collect();
    println!(
        "  frames: {} put, {} encoded out, {} duplicated, {} dropped by rate, {} superseded, dropped: {}",
        t.frames_put,
        t.frames_out,
        t.frames_duplicated,
        t.frames_rate_dropped,
        c.superseded,
        if drops.is_empty() { "none".to_owned() } else { drops.join(", ") }
    );
}

/// Where a camera's stream went and how to watch it.
fn print_sinks(sinks: &[SinkConfig]) {
    for sink in sinks {
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
                if let Some(url) = mock_viewer(k) {
                    println!("  watch it: {url}");
                }
            }
            other => println!("  streamed to {}", other.describe()),
        }
    }
}

/// Each RTSP server once: its viewers and refused logins.
fn print_rtsp_servers(lanes: &[Lane]) {
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

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Debug, Parser)]
    struct Cli {
        #[command(flatten)]
        args: ReplayArgs,
    }

    #[test]
    fn a_plan_built_in_code_has_the_command_lines_defaults() {
        let parsed = Cli::try_parse_from(["replay", "a.avi", "--sink", "file:o.mkv"])
            .unwrap()
            .args;
        let built = ReplayArgs::new(vec!["a.avi".into()], vec!["file:o.mkv".into()]);
        assert_eq!(format!("{built:?}"), format!("{parsed:?}"));
    }

    #[test]
    fn typed_values_parse_and_refuse_what_they_cannot_be() {
        let size: FrameSize = "1281x721".parse().unwrap();
        assert_eq!(
            size,
            FrameSize {
                width: 1280,
                height: 720
            }
        );
        assert_eq!(
            FrameSize::HDMI.to_string().parse::<FrameSize>(),
            Ok(FrameSize::HDMI)
        );
        for bad in ["1280", "8x8", "1280x-1", "99999x720"] {
            assert!(bad.parse::<FrameSize>().is_err(), "{bad}");
        }
        let cli = Cli::try_parse_from([
            "replay",
            "a.avi",
            "--sink",
            "file:o.mkv",
            "--app-ms",
            "20:5",
            "--jitter-dist",
            "normal",
        ])
        .unwrap()
        .args;
        assert_eq!(
            cli.app_ms,
            Some(AppTime::Normal {
                mean_ms: 20.0,
                sd_ms: 5.0
            })
        );
        assert_eq!(cli.jitter_dist, JitterDist::Normal);
        let err = Cli::try_parse_from(["replay", "a", "--sink", "f", "--app-ms=-3"])
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("--app-ms"),
            "the flag is named by the CLI: {err}"
        );
    }
}
