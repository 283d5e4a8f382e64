//! `telescope run-app APP_DIR`: an unmodified Panorama application on the simulator.
//!
//! Panorama applications are Python; they run in a Python interpreter with the `panoramasdk`
//! package (`pip install ./telescope-py`), whose runner (`python -m panoramasdk run`) drives
//! the simulator's node through the native module. This command is that runner, started with
//! the interpreter that has it, so both spellings take the same options and give the same
//! exit codes. With `--report DIR` this command also renders the runner's `report.json` as
//! `report.html`, with replay's page style and charts (`telescope report DIR` re-renders it).

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{bail, Context, Result};
use serde::Deserialize;

use crate::html;

/// Options are those of `python -m panoramasdk run` (see `telescope run-app APP_DIR --help`).
#[derive(Debug, clap::Args)]
#[command(disable_help_flag = true)]
pub struct RunAppArgs {
    /// The Python interpreter with `panoramasdk` installed (default: $TELESCOPE_PYTHON, the
    /// project venv target/venv, then python3).
    #[arg(long, env = "TELESCOPE_PYTHON")]
    pub python: Option<PathBuf>,
    /// The application directory and the runner's options, passed on as they are.
    #[arg(trailing_var_arg = true, allow_hyphen_values = true, num_args = 0..)]
    pub args: Vec<OsString>,
}

fn interpreter(given: Option<PathBuf>) -> PathBuf {
    if let Some(p) = given {
        return p;
    }
    let venv = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target/venv/bin/python");
    if venv.exists() {
        return venv;
    }
    PathBuf::from("python3")
}

/// Runs the application; its exit code becomes this process's.
pub fn run(args: RunAppArgs) -> Result<u8> {
    let python = interpreter(args.python);
    let probe = Command::new(&python)
        .args(["-c", "import panoramasdk, telescope._native"])
        .output()
        .with_context(|| format!("cannot start {}", python.display()))?;
    if !probe.status.success() {
        bail!(
            "{} cannot import panoramasdk: install it with `pip install ./telescope-py` (or give --python)",
            python.display()
        );
    }
    let started = telescope::clock::WallClock::now(&telescope::clock::SystemWallClock);
    let status = Command::new(&python)
        .args(["-m", "panoramasdk", "run"])
        .args(&args.args)
        // The runner leaves the page to this command (it says where to get one otherwise).
        .env("TELESCOPE_RUN_APP", "1")
        .status()
        .with_context(|| format!("cannot start {}", python.display()))?;
    let code = status.code().map_or(2, |c| u8::try_from(c).unwrap_or(2));
    // A run that got as far as its report (it ran, whatever its outcome) gets its page.
    let fresh = |d: &PathBuf| {
        std::fs::metadata(d.join("report.json"))
            .and_then(|m| m.modified())
            .is_ok_and(|t| t >= started)
    };
    if let Some(dir) = report_dir(&args.args).filter(fresh) {
        match write_html(&dir, None) {
            Ok(page) => println!("run-app: report {}", page.display()),
            Err(e) => {
                eprintln!("telescope: {e:#}");
                return Ok(2);
            }
        }
    }
    Ok(code)
}

/// The `--report DIR` among the runner's options (the runner takes no abbreviations).
fn report_dir(args: &[OsString]) -> Option<PathBuf> {
    let mut it = args.iter();
    while let Some(a) = it.next() {
        let s = a.to_string_lossy();
        if s == "--report" {
            return it.next().map(PathBuf::from);
        }
        if let Some(dir) = s.strip_prefix("--report=") {
            return Some(PathBuf::from(dir));
        }
    }
    None
}

/// What `python -m panoramasdk run` writes in `report.json` (fields it may leave out default).
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct AppReport {
    pub command: String,
    pub app: String,
    pub outcome: String,
    pub message: String,
    pub cameras: Vec<AppCamera>,
    pub models: BTreeMap<String, Timed>,
    pub loop_ms: Timed,
    pub batches: u64,
    pub puts: u64,
    pub hdmi_frames: u64,
    /// CPU of the whole process (imports and model loading included).
    pub cpu_seconds: f64,
    /// CPU from the start of the run (cameras and app) to its end.
    pub run_cpu_seconds: f64,
    pub wall_seconds: f64,
    pub peak_rss_mib: f64,
    pub cpu_ms_per_batch: Option<f64>,
    pub elapsed_s: Option<f64>,
    pub virtual_clock: bool,
    pub seed: u64,
    pub verdicts: Vec<AppVerdict>,
    pub timeline: Vec<AppSample>,
    pub notes: Vec<String>,
}

/// One camera of the app.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct AppCamera {
    pub name: String,
    pub source: String,
    pub frames_in: u64,
    pub lost: u64,
    pub superseded: u64,
    pub delivered: u64,
    pub cached: u64,
    pub unavailable: u64,
    pub laps: u64,
    pub sink_frames: u64,
    /// Frames an onSignal camera sent while paused (`--resume`), kept from the app.
    pub paused_frames: u64,
}

/// Durations: model calls or the app's loop.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct Timed {
    pub calls: Option<u64>,
    pub how: Option<String>,
    pub p50_ms: Option<f64>,
    pub p99_ms: Option<f64>,
    pub max_ms: Option<f64>,
    pub histogram_ms: Vec<(f64, u64)>,
}

/// A budget and whether the run kept it.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct AppVerdict {
    pub budget: String,
    pub measured: f64,
    pub limit: f64,
    pub unit: String,
    pub pass: bool,
}

/// The process at one sampling instant.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct AppSample {
    pub t: f64,
    pub cpu_percent: f64,
    pub rss_mib: f64,
    pub batches_per_s: f64,
}

impl AppReport {
    /// Reads `DIR/report.json` as a run-app report.
    pub fn read(dir: &Path) -> Result<AppReport> {
        let path = dir.join("report.json");
        let bytes =
            std::fs::read(&path).with_context(|| format!("cannot read {}", path.display()))?;
        let report: AppReport = serde_json::from_slice(&bytes)
            .with_context(|| format!("{} is not a run-app report", path.display()))?;
        if report.command != "run-app" {
            bail!("{} is not a run-app report", path.display());
        }
        Ok(report)
    }
}

/// Whether `DIR/report.json` was written by run-app (its `command`), so `telescope report`
/// renders it with [`render`].
pub fn is_app_report(dir: &Path) -> bool {
    #[derive(Deserialize)]
    struct Command {
        #[serde(default)]
        command: String,
    }
    std::fs::read(dir.join("report.json"))
        .ok()
        .and_then(|b| serde_json::from_slice::<Command>(&b).ok())
        .is_some_and(|c| c.command == "run-app")
}

/// Writes `DIR/report.html` from `DIR/report.json`; returns the page's path.
pub fn write_html(dir: &Path, out: Option<&Path>) -> Result<PathBuf> {
    let report = AppReport::read(dir)?;
    let out = out.map_or_else(|| dir.join("report.html"), Path::to_path_buf);
    crate::report::write_atomic(&out, render(&report).as_bytes())?;
    Ok(out)
}

fn ms(v: Option<f64>) -> String {
    v.map_or_else(|| "-".to_owned(), |v| format!("{v:.2}"))
}

/// The run-app page: replay's look (style, charts), the application's figures.
pub fn render(r: &AppReport) -> String {
    let title = format!("Telescope run-app report: {}", r.app);
    let mut s = format!(
        "<!DOCTYPE html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>{t}</title><style>{}</style></head><body><h1>{t}</h1>",
        html::STYLE,
        t = html::escape(&title)
    );
    outcome_section(&mut s, r);
    run_section(&mut s, r);
    cameras_section(&mut s, r);
    models_section(&mut s, r);
    charts_section(&mut s, r);
    s.push_str("</body></html>\n");
    s
}

/// The outcome, the simulator's notes and the budgets' verdicts.
fn outcome_section(s: &mut String, r: &AppReport) {
    use std::fmt::Write;
    let e = html::escape;
    let ok = r.outcome == "ok";
    let _ = write!(
        s,
        "<p>Outcome: <span class=\"{}\">{}</span>{}</p>",
        if ok { "pass" } else { "fail" },
        e(&r.outcome),
        if r.message.is_empty() {
            String::new()
        } else {
            format!(": {}", e(&r.message))
        }
    );
    if !r.notes.is_empty() {
        s.push_str("<h2>Simulator notes</h2><ul>");
        for n in &r.notes {
            let _ = write!(s, "<li>{}</li>", e(n));
        }
        s.push_str("</ul>");
    }
    if r.verdicts.is_empty() {
        s.push_str("<p>No budgets were given (<code>--budget-cpu</code>, <code>--budget-rss</code>, <code>--budget-loop-p99-ms</code>).</p>");
    } else {
        s.push_str("<h2>Verdict</h2><table><tr><th>budget</th><th>limit</th><th>measured</th><th>verdict</th></tr>");
        for v in &r.verdicts {
            let _ = write!(
                s,
                "<tr><td>{}</td><td>{} {u}</td><td>{:.2} {u}</td><td class=\"{c}\">{}</td></tr>",
                e(&v.budget),
                v.limit,
                v.measured,
                if v.pass { "pass" } else { "FAIL" },
                u = e(&v.unit),
                c = if v.pass { "pass" } else { "fail" }
            );
        }
        s.push_str("</table>");
    }
}

/// The run's figures: batches, loop time, CPU, memory, clock.
fn run_section(s: &mut String, r: &AppReport) {
    use std::fmt::Write;
    let e = html::escape;
    let rows: [(&str, String); 9] = [
        (
            "batches / puts / HDMI frames",
            format!("{} / {} / {}", r.batches, r.puts, r.hdmi_frames),
        ),
        (
            "loop per batch p50 / p99 / max (ms)",
            format!(
                "{} / {} / {}",
                ms(r.loop_ms.p50_ms),
                ms(r.loop_ms.p99_ms),
                ms(r.loop_ms.max_ms)
            ),
        ),
        (
            "CPU (s): the run / with start-up",
            format!("{:.2} / {:.2}", r.run_cpu_seconds, r.cpu_seconds),
        ),
        ("CPU per batch (ms)", ms(r.cpu_ms_per_batch)),
        (
            "CPU mean (% of a core)",
            if r.wall_seconds > 0.0 {
                format!("{:.1}", r.run_cpu_seconds / r.wall_seconds * 100.0)
            } else {
                "-".into()
            },
        ),
        ("peak RSS (MiB)", format!("{:.0}", r.peak_rss_mib)),
        (
            "node time / wall time",
            format!(
                "{} s / {:.1} s",
                r.elapsed_s.map_or("-".into(), |t| format!("{t:.1}")),
                r.wall_seconds
            ),
        ),
        ("cameras", r.cameras.len().to_string()),
        (
            "seed, clock",
            format!(
                "{}, {}",
                r.seed,
                if r.virtual_clock { "virtual" } else { "system" }
            ),
        ),
    ];
    s.push_str("<h2>Run</h2><table>");
    for (name, value) in rows {
        let _ = write!(s, "<tr><td>{name}</td><td>{}</td></tr>", e(&value));
    }
    s.push_str("</table>");
}

/// Each camera's frames.
fn cameras_section(s: &mut String, r: &AppReport) {
    use std::fmt::Write;
    let e = html::escape;
    s.push_str("<h2>Cameras</h2><table><tr><th>camera</th><th>source</th><th>in</th><th>lost</th><th>superseded</th><th>paused</th><th>delivered</th><th>cached</th><th>unavailable</th><th>laps</th><th>to sinks</th></tr>");
    for c in &r.cameras {
        let _ = write!(
            s,
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            e(&c.name),
            e(&c.source),
            c.frames_in,
            c.lost,
            c.superseded,
            c.paused_frames,
            c.delivered,
            c.cached,
            c.unavailable,
            c.laps,
            c.sink_frames
        );
    }
    s.push_str("</table>");
}

/// Each served model's calls and inference time.
fn models_section(s: &mut String, r: &AppReport) {
    use std::fmt::Write;
    let e = html::escape;
    if !r.models.is_empty() {
        s.push_str("<h2>Models</h2><table><tr><th>model node</th><th>served by</th><th>calls</th><th>p50 (ms)</th><th>p99 (ms)</th><th>max (ms)</th></tr>");
        for (name, m) in &r.models {
            let _ = write!(
                s,
                "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
                e(name),
                e(m.how.as_deref().unwrap_or("-")),
                m.calls.unwrap_or(0),
                ms(m.p50_ms),
                ms(m.p99_ms),
                ms(m.max_ms)
            );
        }
        s.push_str("</table>");
    }
}

/// CPU, memory and batch rate over time; histograms of the loop and of inference.
fn charts_section(s: &mut String, r: &AppReport) {
    s.push_str("<h2>Over time</h2>");
    if r.timeline.is_empty() {
        s.push_str("<p>No samples: the run was shorter than one sampling interval.</p>");
    } else {
        let series = |name: &str, f: fn(&AppSample) -> f64| {
            vec![(
                name.to_owned(),
                r.timeline.iter().map(|x| (x.t, f(x))).collect(),
            )]
        };
        s.push_str(&html::line_chart(
            "CPU",
            "% of one core",
            &series("CPU", |x| x.cpu_percent),
        ));
        s.push_str(&html::line_chart(
            "Resident memory",
            "MiB",
            &series("RSS", |x| x.rss_mib),
        ));
        s.push_str(&html::line_chart(
            "Batches per second (wall time)",
            "batches/s",
            &series("batches", |x| x.batches_per_s),
        ));
    }
    if !r.loop_ms.histogram_ms.is_empty() {
        s.push_str(&html::histogram_chart(
            "The app's loop per batch",
            "ms",
            &r.loop_ms.histogram_ms,
        ));
    }
    for (name, m) in &r.models {
        if !m.histogram_ms.is_empty() {
            s.push_str(&html::histogram_chart(
                &format!("inference, {name}"),
                "ms",
                &m.histogram_ms,
            ));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_report_dir_is_found_in_either_spelling() {
        let args = |v: &[&str]| v.iter().map(OsString::from).collect::<Vec<_>>();
        assert_eq!(
            report_dir(&args(&["app", "--report", "out", "--seed", "1"])),
            Some(PathBuf::from("out"))
        );
        assert_eq!(
            report_dir(&args(&["app", "--report=o2"])),
            Some(PathBuf::from("o2"))
        );
        assert_eq!(report_dir(&args(&["app", "--run-dir", "r"])), None);
    }

    #[test]
    fn the_page_shows_cameras_models_and_charts_escaped() {
        let json = r#"{"command": "run-app", "app": "/apps/<x>", "outcome": "error",
            "message": "the app raised at batch 3: ValueError: a<b",
            "cameras": [{"name": "front_door", "source": "pattern:ball", "frames_in": 30,
                         "delivered": 28, "superseded": 2, "cached": 0}],
            "models": {"model_node": {"calls": 28, "how": "onnx", "p50_ms": 1.5,
                       "p99_ms": 2.5, "max_ms": 3.0, "histogram_ms": [[1.5, 20], [2.5, 8]]}},
            "loop_ms": {"p50_ms": 4.0, "p99_ms": 9.0, "max_ms": 9.5,
                        "histogram_ms": [[4.0, 27]]},
            "batches": 28, "puts": 28, "timeline": [{"t": 1.0, "cpu_percent": 40.0,
            "rss_mib": 120.0, "batches_per_s": 10.0}], "notes": ["networkRoutingRules: x"],
            "verdicts": [{"budget": "rss", "measured": 120.0, "limit": 100.0, "unit": "MiB",
                          "pass": false}],
            "an_unknown_field": 1}"#;
        let r: AppReport = serde_json::from_str(json).unwrap();
        let page = render(&r);
        assert!(page.contains("/apps/&lt;x&gt;") && !page.contains("<x>"));
        assert!(page.contains("ValueError: a&lt;b"));
        assert!(page.contains(
            "<td>front_door</td><td>pattern:ball</td><td>30</td><td>0</td><td>2</td><td>0</td><td>28</td>"
        ));
        assert!(page.contains("<td>model_node</td><td>onnx</td><td>28</td><td>1.50</td>"));
        assert!(page.contains("class=\"fail\">FAIL"));
        assert!(page.contains("networkRoutingRules: x"));
        // CPU, memory, batches over time; the loop and the model's histograms.
        assert_eq!(page.matches("<svg").count(), 5, "{page}");
        assert!(!page.contains("<script"));
    }

    #[test]
    fn another_command_s_report_is_not_taken_for_one() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("report.json"), r#"{"command": "replay"}"#).unwrap();
        assert!(!is_app_report(dir.path()));
        let err = AppReport::read(dir.path()).unwrap_err();
        assert!(err.to_string().contains("is not a run-app report"), "{err}");
        std::fs::write(dir.path().join("report.json"), r#"{"command": "run-app"}"#).unwrap();
        assert!(is_app_report(dir.path()));
        let page = write_html(dir.path(), None).unwrap();
        assert!(std::fs::read_to_string(page)
            .unwrap()
            .contains("No samples"));
    }
}
