//! `telescope`: replay footage through Telescope and see what comes out.

use std::process::ExitCode;

use clap::{Parser, Subcommand};

mod annotate;
mod bench;
mod html;
mod kvs_server;
mod replay;
mod report;
mod run_app;
mod sample;
mod sinks;
mod soak;

/// Telescope: re-stream an edge app's annotated video; replay, measure and report.
#[derive(Debug, Parser)]
#[command(name = "telescope", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Decode footage and stream every frame through Telescope into the given sinks.
    Replay(Box<replay::ReplayArgs>),
    /// Draw a scene (JSON) on an image or a video frame and write a PNG.
    Annotate(annotate::AnnotateArgs),
    /// Run a local Kinesis Video Streams endpoint (control plane) until Ctrl-C.
    MockKvs(kvs_server::MockKvsArgs),
    /// CPU per frame of Telescope against the raw encoder and the original Python path.
    Bench(bench::BenchArgs),
    /// Soak: replay in real time for --duration under scheduled faults, judge the invariants.
    Soak(Box<soak::SoakArgs>),
    /// Re-render a run's report.html, or compare two runs side by side.
    Report(report::ReportArgs),
    /// Run an unmodified Panorama application (graphs/, packages/) on the simulator, its
    /// cameras replaying footage and its models served locally (python -m panoramasdk run).
    RunApp(run_app::RunAppArgs),
    /// One Telescope variant of `telescope bench` (internal).
    #[command(hide = true)]
    BenchRun(bench::BenchRunArgs),
}

fn main() -> ExitCode {
    limit_malloc_arenas();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("TELESCOPE_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .with_writer(std::io::stderr)
        .init();
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Replay(args) => replay::run(*args),
        Command::MockKvs(args) => kvs_server::run(args),
        Command::Annotate(args) => annotate::run(args),
        Command::Bench(args) => bench::run(args),
        Command::Report(args) => report::run(args),
        Command::Soak(args) => soak::run(*args),
        Command::BenchRun(args) => bench::run_one(args),
        Command::RunApp(args) => match run_app::run(args) {
            Ok(code) => return ExitCode::from(code),
            Err(e) => Err(e),
        },
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) if e.is::<report::BudgetExceeded>() => {
            eprintln!("telescope: {e}");
            ExitCode::from(1)
        }
        Err(e) => {
            // One line: the error and its causes, outermost first.
            eprintln!("telescope: {e:#}");
            ExitCode::from(2)
        }
    }
}

/// Replays that loop footage re-create GStreamer's streaming threads on every lap; glibc gives
/// each new thread a malloc arena and their fragmentation made RSS climb a few MiB per lap
/// (measured: +14 % over a 10-minute soak, flat with two arenas). Two arenas are plenty for
/// this process's allocation rate.
fn limit_malloc_arenas() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only tunes the allocator; called first thing, before any thread starts.
    unsafe {
        libc::mallopt(libc::M_ARENA_MAX, 2);
    }
}
