//! The options of `telescope replay`, typed; [`ReplayArgs::new`] builds them in code with the
//! flags' defaults.

use std::path::PathBuf;
use std::time::Duration;

use clap::Args;
use simulator::node::AppTime;
use simulator::CameraModelOptions;
use telescope::Rate;

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
