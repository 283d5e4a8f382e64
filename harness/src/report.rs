//! `report.json`: what a replay did, per camera, in a stable documented schema (README,
//! "Reports"). `schema_version` changes when a field changes meaning or disappears.

use std::collections::BTreeMap;
use std::path::Path;

use anyhow::{Context, Result};
use serde::{Deserialize, Serialize};

/// The current schema.
pub const SCHEMA_VERSION: u32 = 1;

/// Percentiles of a sample, in the unit of the field's name.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct Percentiles {
    pub count: u64,
    pub p50: f64,
    pub p90: f64,
    pub p99: f64,
    pub max: f64,
}

impl Percentiles {
    /// Nearest-rank percentiles of `values`, scaled by `scale` (e.g. 1e-3 for us -> ms).
    pub fn of(values: &[u64], scale: f64) -> Percentiles {
        if values.is_empty() {
            return Percentiles::default();
        }
        let mut v = values.to_vec();
        v.sort_unstable();
        let rank = |q: f64| {
            let i = ((q * v.len() as f64).ceil() as usize).clamp(1, v.len()) - 1;
            v[i] as f64 * scale
        };
        Percentiles {
            count: v.len() as u64,
            p50: rank(0.50),
            p90: rank(0.90),
            p99: rank(0.99),
            max: *v.last().unwrap_or(&0) as f64 * scale,
        }
    }
}

/// Counts in logarithmic buckets, four per power of two (HdrHistogram-style, two significant
/// bits): `(upper bound, count)` for every bucket that holds something, in order.
pub fn log_histogram(values: &[u64], scale: f64) -> Vec<(f64, u64)> {
    let mut buckets: BTreeMap<u64, u64> = BTreeMap::new();
    for &v in values {
        // The upper bound: the smallest m * 2^k >= v with m in 4..=7 (values below 4 exact).
        let bound = if v < 4 {
            v
        } else {
            let k = 63 - v.leading_zeros() - 2;
            let m = v.div_ceil(1 << k);
            m << k
        };
        *buckets.entry(bound).or_default() += 1;
    }
    buckets
        .into_iter()
        .map(|(b, n)| (b as f64 * scale, n))
        .collect()
}

/// The run finished but broke a budget: exit code 1 (errors are 2).
#[derive(Debug, thiserror::Error)]
#[error("a budget was exceeded (see the verdicts)")]
pub struct BudgetExceeded;

/// A limit given on the command line (`--budget-*`) and whether the run kept it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Verdict {
    pub name: String,
    pub unit: String,
    pub limit: f64,
    pub measured: f64,
    pub pass: bool,
}

impl Verdict {
    /// Passes when `measured` is at most `limit`.
    pub fn at_most(name: &str, unit: &str, limit: f64, measured: f64) -> Verdict {
        Verdict {
            name: name.to_owned(),
            unit: unit.to_owned(),
            limit,
            measured,
            pass: measured <= limit,
        }
    }
}

/// Budgets a run is judged against; unset ones are not judged.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct Budgets {
    /// CPU budget: percent of one core per camera stream (e.g. 15).
    #[arg(long = "budget-cpu")]
    pub cpu_percent_per_stream: Option<f64>,
    /// Resident memory budget, MiB (the maximum sampled).
    #[arg(long = "budget-rss")]
    pub rss_mib: Option<f64>,
    /// RSS growth budget, percent from a quarter of the run to its end (e.g. 5).
    #[arg(long = "budget-rss-growth")]
    pub rss_growth_percent: Option<f64>,
    /// put latency budget: p99 in milliseconds, every camera.
    #[arg(long = "budget-put-p99-ms")]
    pub put_p99_ms: Option<f64>,
}

impl Budgets {
    /// Judge a finished report.
    pub fn judge(&self, report: &Report) -> Vec<Verdict> {
        let mut out = Vec::new();
        let mut check = |name: &str, unit: &str, limit: Option<f64>, measured: f64| {
            if let Some(limit) = limit {
                out.push(Verdict::at_most(name, unit, limit, measured));
            }
        };
        if let Some(p) = &report.process {
            check(
                "CPU per stream",
                "% of a core",
                self.cpu_percent_per_stream,
                p.cpu_percent_per_stream,
            );
            check("RSS max", "MiB", self.rss_mib, p.rss_mib_max);
            check(
                "RSS growth",
                "%",
                self.rss_growth_percent,
                p.rss_growth_percent,
            );
        }
        let worst_put = report
            .cameras
            .iter()
            .map(|c| c.put_latency_us.p99 / 1000.0)
            .fold(0.0, f64::max);
        check("put p99 (worst camera)", "ms", self.put_p99_ms, worst_put);
        out
    }
}

/// One KVS sink's delivery: the stream and its uploader's counters as they are.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct KvsReport {
    pub stream: String,
    #[serde(flatten)]
    pub delivery: telescope::kvs::PutMediaStats,
}

/// One camera: from the source to the sinks.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct CameraReport {
    pub name: String,
    pub source: String,
    /// Frames read from the source.
    pub frames_in: u64,
    /// Frames the camera model lost before the app.
    pub camera_lost: u64,
    /// Frames replaced by a newer one before the app looked (slow app).
    pub superseded: u64,
    /// Frames read but not yet due when a --duration ended the run (0 or 1).
    pub pending: u64,
    /// The camera's Telescope at the end, its counters as they are (`telescope::Stats`:
    /// frames put, pushed and out, drops by reason, the rate and size, the encoder...).
    #[serde(flatten)]
    pub telescope: telescope::Stats,
    /// Iterations in which the app got this camera's previous frame again.
    pub cached_iterations: u64,
    pub unavailable_iterations: u64,
    /// Fresh frames per second of node time.
    pub input_fps: f64,
    /// Time between fresh frames.
    pub input_interval_ms: Percentiles,
    /// Output frames per second of node time.
    pub output_fps: f64,
    /// Time `put` took, as the app's loop sees it.
    pub put_latency_us: Percentiles,
    pub kvs: Vec<KvsReport>,
    pub rtsp_clients: u64,
    /// Access units each RTSP mount handed to its media (shared by its viewers).
    #[serde(default)]
    pub rtsp_delivered: u64,
    /// `put` latency in log buckets: (upper bound in us, count).
    #[serde(default)]
    pub put_latency_histogram_us: Vec<(f64, u64)>,
}

impl CameraReport {
    /// Frames that vanished: read but neither lost, superseded, pending, encoded nor dropped
    /// with a reason. 0 when everything is accounted for.
    pub fn unaccounted(&self) -> i64 {
        let t = &self.telescope;
        (self.frames_in as i64
            - (self.camera_lost + self.superseded + self.pending + t.frames_put) as i64)
            .abs()
            + (t.frames_put as i64 - (t.frames_pushed + t.dropped_total()) as i64).abs()
    }
}

/// The whole run.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Report {
    pub schema_version: u32,
    pub command: String,
    pub seed: u64,
    pub virtual_clock: bool,
    /// Node time the run covered.
    pub duration_seconds: f64,
    pub wall_seconds: f64,
    pub iterations: u64,
    pub interrupted: bool,
    pub cameras: Vec<CameraReport>,
    /// The process over the run (CPU, memory).
    #[serde(default)]
    pub process: Option<crate::sample::ProcessReport>,
    /// One sample per interval (`--sample-ms`, wall time).
    #[serde(default)]
    pub timeline: Vec<crate::sample::Sample>,
    /// The `--budget-*` limits and whether the run kept them.
    #[serde(default)]
    pub verdicts: Vec<Verdict>,
    /// The sample app's work (`--annotate`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub app: Option<AppReport>,
}

/// What the `--annotate` sample app did.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct AppReport {
    /// The app: `motion`.
    pub name: String,
    /// Frames it analysed (all cameras).
    pub frames: u64,
    /// Rectangles it drew.
    pub boxes: u64,
    /// Frames it could not analyse (passed on undrawn).
    pub errors: u64,
    /// The last such failure.
    pub last_error: Option<String>,
}

impl Report {
    /// Writes `DIR/report.json` and `DIR/report.html` (creating DIR).
    pub fn write(&self, dir: &Path) -> Result<()> {
        std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
        write_atomic(&dir.join("report.json"), &serde_json::to_vec_pretty(self)?)?;
        write_atomic(
            &dir.join("report.html"),
            crate::html::render(&[(dir.display().to_string(), self)]).as_bytes(),
        )
    }

    /// Reads `DIR/report.json`.
    pub fn read(dir: &Path) -> Result<Report> {
        let path = dir.join("report.json");
        let bytes =
            std::fs::read(&path).with_context(|| format!("cannot read {}", path.display()))?;
        let report: Report = serde_json::from_slice(&bytes)
            .with_context(|| format!("{} is not a report", path.display()))?;
        if report.schema_version > SCHEMA_VERSION {
            anyhow::bail!(
                "{} has schema version {}; this telescope reads up to {SCHEMA_VERSION}",
                path.display(),
                report.schema_version
            );
        }
        Ok(report)
    }

    /// Whether every verdict passed (true when there are none).
    pub fn passed(&self) -> bool {
        self.verdicts.iter().all(|v| v.pass)
    }
}

/// Write through a temporary file in the same directory, then rename.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let tmp = path.with_file_name(format!(".{name}.tmp"));
    std::fs::write(&tmp, bytes).with_context(|| format!("cannot write {}", tmp.display()))?;
    std::fs::rename(&tmp, path).with_context(|| format!("cannot write {}", path.display()))
}

/// Arguments of `telescope report`.
#[derive(Debug, clap::Args)]
#[command(after_help = "Examples:
  telescope report runs/monday                 re-render runs/monday/report.html
  telescope report runs/monday runs/tuesday    compare: runs/monday/compare.html")]
pub struct ReportArgs {
    /// A report directory (holding report.json), and optionally a second one to compare with.
    #[arg(required = true, num_args = 1..=2)]
    pub dirs: Vec<std::path::PathBuf>,
    /// Where to write the page (default: DIR/report.html, or DIR/compare.html for two runs).
    #[arg(long)]
    pub out: Option<std::path::PathBuf>,
}

/// `telescope report`: re-render one run's page, or compare two runs side by side.
pub fn run(args: ReportArgs) -> Result<()> {
    if let [dir] = args.dirs.as_slice() {
        if crate::run_app::is_app_report(dir) {
            let page = crate::run_app::write_html(dir, args.out.as_deref())?;
            println!("wrote {}", page.display());
            return Ok(());
        }
    }
    let reports: Vec<(String, Report)> = args
        .dirs
        .iter()
        .map(|d| Ok((d.display().to_string(), Report::read(d)?)))
        .collect::<Result<_>>()?;
    let runs: Vec<(String, &Report)> = reports.iter().map(|(l, r)| (l.clone(), r)).collect();
    let page = crate::html::render(&runs);
    let out = args.out.clone().unwrap_or_else(|| {
        args.dirs[0].join(if runs.len() == 1 {
            "report.html"
        } else {
            "compare.html"
        })
    });
    write_atomic(&out, page.as_bytes())?;
    print!("{}", comparison(&runs));
    println!("wrote {}", out.display());
    Ok(())
}

/// One figure of a run, as text.
pub type Figure = (&'static str, fn(&Report) -> String);

/// The figures that sum a run up: the page's "Run" table and `telescope report`'s comparison.
pub const KEY_FIGURES: [Figure; 13] = [
    ("command", |r| r.command.clone()),
    ("duration (node time)", |r| {
        format!("{:.1} s", r.duration_seconds)
    }),
    ("wall time", |r| format!("{:.1} s", r.wall_seconds)),
    ("cameras", |r| r.cameras.len().to_string()),
    ("CPU mean (% of a core)", |r| {
        r.process
            .as_ref()
            .map_or("-".into(), |p| format!("{:.1}", p.cpu_percent_mean))
    }),
    ("CPU % per stream", |r| {
        r.process
            .as_ref()
            .map_or("-".into(), |p| format!("{:.1}", p.cpu_percent_per_stream))
    }),
    ("RSS first / last / max (MiB)", |r| {
        r.process.as_ref().map_or("-".into(), |p| {
            format!(
                "{:.0} / {:.0} / {:.0}",
                p.rss_mib_first, p.rss_mib_last, p.rss_mib_max
            )
        })
    }),
    ("RSS growth", |r| {
        r.process
            .as_ref()
            .map_or("-".into(), |p| format!("{:.1} %", p.rss_growth_percent))
    }),
    ("frames in / out", |r| {
        let (i, o) = r.cameras.iter().fold((0, 0), |(i, o), c| {
            (i + c.frames_in, o + c.telescope.frames_out)
        });
        format!("{i} / {o}")
    }),
    ("app: frames / boxes / errors", |r| {
        r.app.as_ref().map_or("-".into(), |a| {
            format!("{} / {} / {}", a.frames, a.boxes, a.errors)
        })
    }),
    ("put p99 us (worst)", |r| {
        format!(
            "{:.0}",
            r.cameras
                .iter()
                .map(|c| c.put_latency_us.p99)
                .fold(0.0, f64::max)
        )
    }),
    ("verdict", |r| {
        if r.verdicts.is_empty() {
            "-".into()
        } else if r.passed() {
            "pass".into()
        } else {
            "FAIL".into()
        }
    }),
    ("seed, clock", |r| {
        format!(
            "{}, {}",
            r.seed,
            if r.virtual_clock { "virtual" } else { "system" }
        )
    }),
];

/// The key figures of each run, one column per run.
fn comparison(runs: &[(String, &Report)]) -> String {
    let mut out = format!("{:<30}", "");
    for (label, _) in runs {
        out.push_str(&format!(" {label:>24}"));
    }
    out.push('\n');
    for (name, f) in KEY_FIGURES {
        out.push_str(&format!("{name:<30}"));
        for (_, r) in runs {
            out.push_str(&format!(" {:>24}", f(r)));
        }
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_use_nearest_rank() {
        let v: Vec<u64> = (1..=100).collect();
        let p = Percentiles::of(&v, 1.0);
        assert_eq!(
            (p.count, p.p50, p.p90, p.p99, p.max),
            (100, 50.0, 90.0, 99.0, 100.0)
        );
        assert_eq!(Percentiles::of(&[], 1.0), Percentiles::default());
        assert_eq!(Percentiles::of(&[7000], 1e-3).p50, 7.0);
    }

    #[test]
    fn histogram_buckets_have_two_significant_bits() {
        let h = log_histogram(&[1, 3, 4, 5, 9, 10, 100, 1000, 1000], 1.0);
        // 9 and 10 share the bucket ending at 10 (5 * 2); 100 -> 112 (7 * 16); 1000 -> 1024.
        assert_eq!(
            h,
            vec![
                (1.0, 1),
                (3.0, 1),
                (4.0, 1),
                (5.0, 1),
                (10.0, 2),
                (112.0, 1),
                (1024.0, 2)
            ]
        );
        let total: u64 = log_histogram(&(0..10_000).collect::<Vec<_>>(), 1.0)
            .iter()
            .map(|(_, n)| n)
            .sum();
        assert_eq!(total, 10_000);
    }

    #[test]
    fn budgets_judge_what_was_measured() {
        let report = Report {
            process: Some(crate::sample::ProcessReport {
                cpu_percent_per_stream: 12.0,
                rss_mib_max: 300.0,
                rss_growth_percent: 1.0,
                ..Default::default()
            }),
            cameras: vec![CameraReport {
                put_latency_us: Percentiles {
                    p99: 2500.0,
                    ..Default::default()
                },
                ..Default::default()
            }],
            ..Default::default()
        };
        let budgets = Budgets {
            cpu_percent_per_stream: Some(15.0),
            rss_mib: Some(256.0),
            rss_growth_percent: None,
            put_p99_ms: Some(1.0),
        };
        let v = budgets.judge(&report);
        let verdicts: Vec<(&str, bool)> = v.iter().map(|v| (v.name.as_str(), v.pass)).collect();
        assert_eq!(
            verdicts,
            vec![
                ("CPU per stream", true),
                ("RSS max", false),
                ("put p99 (worst camera)", false)
            ]
        );
        assert_eq!(v[2].measured, 2.5);
    }

    /// A camera as schema 1 wrote it before the layers' counters were embedded.
    const OLD_CAMERA: &str = r#"{
        "name": "0", "source": "a.avi", "frames_in": 31, "camera_lost": 2, "superseded": 0,
        "pending": 1, "frames_put": 28, "frames_pushed": 27, "frames_out": 30,
        "frames_duplicated": 2, "frames_rate_dropped": 0,
        "dropped": {"failed": 0, "not_running": 0, "out_of_order": 0, "pipeline_refused": 0,
                    "queue_full": 1, "size_mismatch": 0, "warmup_budget": 0},
        "cached_iterations": 0, "unavailable_iterations": 0, "input_fps": 9.5,
        "input_interval_ms": {"count": 1, "p50": 1.0, "p90": 1.0, "p99": 1.0, "max": 1.0},
        "output_fps": 10.0,
        "put_latency_us": {"count": 1, "p50": 1.0, "p90": 1.0, "p99": 1.0, "max": 1.0},
        "rate": "30000/1001", "width": 160, "height": 120, "warmup_frames": 22,
        "encoder": "x264enc", "restarts": 0, "last_error": null,
        "kvs": [{"stream": "cam", "fragments": 5, "sent": 6, "received": 5, "persisted": 5,
                 "resent": 1, "evicted": 0, "rejected": 0, "connections": 2, "errors": 1,
                 "bytes_sent": 1000, "ack_latency_ms_max": 40}],
        "rtsp_clients": 0
    }"#;

    #[test]
    fn schema_1_cameras_read_back_and_keep_every_field() {
        let old: serde_json::Value = serde_json::from_str(OLD_CAMERA).unwrap();
        let camera: CameraReport = serde_json::from_value(old.clone()).unwrap();
        assert_eq!(camera.telescope.frames_put, 28);
        assert_eq!(
            camera.telescope.dropped(telescope::DropReason::QueueFull),
            1
        );
        assert_eq!(camera.kvs[0].delivery.resent, 1);
        assert_eq!(camera.unaccounted(), 0);
        // Written again, every field of the old schema is there with its value: fields are
        // only ever added.
        let again = serde_json::to_value(&camera).unwrap();
        for (key, value) in old.as_object().unwrap() {
            if key == "kvs" {
                for (k, v) in value[0].as_object().unwrap() {
                    assert_eq!(&again["kvs"][0][k], v, "kvs.{k}");
                }
            } else {
                assert_eq!(&again[key], value, "{key}");
            }
        }
    }
}
