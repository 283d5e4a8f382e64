//! `telescope replay`: cameras (footage, URIs, images, patterns) -> a simulated Panorama node
//! -> one Telescope per camera -> sinks; optionally the tiled HDMI picture too, and a report.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use simulator::graph::Graph;
use simulator::node::{compose, NodeClock, NodeError, NodeReport};
use simulator::{
    CameraConfig, CameraModelError, MediaStream, Node, NodeConfig, SourceSpec, TimingConfig,
};
use telescope::annotation::Overlay;
use telescope::{
    BasicAuth, Clock, DropReason, Frame, Rate, SinkConfig, Stats, SystemClock, Telescope,
    TelescopeConfig, VirtualClock,
};

use crate::report::{CameraReport, KvsReport, Percentiles, Report, SCHEMA_VERSION};
use crate::sinks::{KvsOptions, Sinks};

mod args;
mod delivery;
mod plan;
mod summary;

use args::FrameSize;
pub use args::ReplayArgs;
use delivery::Delivery;
use plan::{camera_model, cameras, check_memory, check_outputs_per_camera, check_stream_options};
pub use summary::print_verdicts;
use summary::{camera_report, mock_viewer, print_run, write_outputs};

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

#[cfg(test)]
mod tests {
    use super::args::JitterDist;
    use super::*;
    use clap::Parser;
    use simulator::node::AppTime;

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
