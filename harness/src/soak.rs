//! `telescope soak FOOTAGE --duration 10m --fault ...`: replay in real time, loop the footage,
//! drive faults on a schedule, and judge the invariants at the end: no frame lost that the
//! store could hold, RSS growth under a bound, nothing stuck. Exit 0 when every verdict passes,
//! 1 when one fails (2 for errors).
//!
//! Without `--sink` it starts its own mock-kvs, with a TCP proxy (`mock_kvs::netem`) in front
//! of its data plane for network conditions and link faults, and gives the KVS sink temporary
//! credentials that expire on the fault's schedule.

use std::net::TcpListener;
use std::str::FromStr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use clap::Args;
use mock_kvs::netem::{Network, Proxy};
use mock_kvs::Fault;
use mock_kvs::{MockKvs, MockKvsConfig};
use serde::{Deserialize, Serialize};
use telescope::credentials::faults::FaultInjectingProvider;
use telescope::credentials::{CredentialSource, SystemWallClock};

use crate::replay::ReplayArgs;
use crate::report::{Budgets, Report, Verdict};

/// Arguments of `telescope soak`.
#[derive(Debug, Args)]
#[command(after_help = "Examples:
  telescope soak vtest.avi --duration 10m --report soak/
  telescope soak vtest.avi --duration 90s --fault credential-expiry:30s --fault connection-reset
  telescope soak pattern:ball@1280x720@30 --duration 10m --network latency=80ms,jitter=20ms,bandwidth=2mbit --fault link-cut:30s

Faults (EVERY defaults to a third of --duration (connection-reset: a quarter), DURATION to a
tenth, at most 30 s):
  credential-expiry[:EVERY]  temporary credentials expire every EVERY; the endpoint drops
                             connections signed with them
  connection-reset[:EVERY]   every open connection to KVS is reset
  ack-stall[:DURATION]       KVS holds its PERSISTED acks back for DURATION, mid-run
  camera-stall[:EVERY]       the camera freezes for 3 s every EVERY
  link-cut[:DURATION]        the uplink is down for DURATION, mid-run")]
pub struct SoakArgs {
    /// Footage (looped for the whole run): files, URIs, images:DIR, pattern:NAME@WxH@RATE.
    #[arg(required = true, value_name = "SOURCE")]
    pub footage: Vec<String>,
    /// How long to soak: 90s, 10m, 1h.
    #[arg(long, value_parser = telescope::units::parse_duration)]
    pub duration: Duration,
    /// Sinks as for replay (default: a KVS stream on a mock-kvs this command starts).
    #[arg(long = "sink")]
    pub sinks: Vec<String>,
    /// A fault to drive (repeatable), see below.
    #[arg(long = "fault")]
    pub faults: Vec<SoakFault>,
    /// Network conditions between Telescope and the mock-kvs data plane, e.g.
    /// latency=80ms,jitter=20ms,bandwidth=2mbit.
    #[arg(long)]
    pub network: Option<Network>,
    /// Write DIR/report.json and DIR/report.html.
    #[arg(long, value_name = "DIR")]
    pub report: Option<std::path::PathBuf>,
    /// Bound on RSS growth from a quarter of the run to its end, percent.
    #[arg(long, default_value_t = 10.0)]
    pub max_rss_growth: f64,
    /// Longest time without output that is not a stuck state, seconds (camera stalls add theirs).
    #[arg(long, default_value_t = 10.0)]
    pub max_output_gap: f64,
    #[command(flatten)]
    pub budgets: Budgets,
    /// Seed of the camera model and the network jitter.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Print nothing but errors (and the report JSON with --json).
    #[arg(long)]
    pub quiet: bool,
    /// Print the report as JSON on stdout.
    #[arg(long)]
    pub json: bool,
}

/// One scheduled fault.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum SoakFault {
    CredentialExpiry(Option<Duration>),
    ConnectionReset(Option<Duration>),
    AckStall(Option<Duration>),
    CameraStall(Option<Duration>),
    LinkCut(Option<Duration>),
}

impl FromStr for SoakFault {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let (name, arg) = match s.split_once(':') {
            Some((n, a)) => (n, Some(a)),
            None => (s, None),
        };
        let arg = arg
            .map(|a| {
                telescope::units::parse_duration(a)
                    .ok()
                    .filter(|d| !d.is_zero())
                    .ok_or_else(|| format!("`{s}`: `{a}` is not a duration (90s, 10m, 500ms)"))
            })
            .transpose()?;
        Ok(match name {
            "credential-expiry" => SoakFault::CredentialExpiry(arg),
            "connection-reset" => SoakFault::ConnectionReset(arg),
            "ack-stall" => SoakFault::AckStall(arg),
            "camera-stall" => SoakFault::CameraStall(arg),
            "link-cut" => SoakFault::LinkCut(arg),
            _ => {
                return Err(format!(
                    "unknown fault `{s}` (known: credential-expiry, connection-reset, ack-stall, \
                     camera-stall, link-cut; each with an optional :DURATION)"
                ))
            }
        })
    }
}

/// What happened when, for the report.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FaultEvent {
    /// Wall seconds since the soak started.
    pub t: f64,
    pub fault: String,
    pub detail: String,
}

#[derive(Debug, Clone, Copy)]
enum Action {
    ResetAll(&'static str),
    AckStall(Duration),
    AckStallEnd,
    Cut(Duration),
}

/// The schedule: (offset from start, action), sorted.
fn schedule(faults: &[SoakFault], total: Duration) -> Vec<(Duration, Action)> {
    let every = total / 3;
    let window = (total / 10).min(Duration::from_secs(30));
    let mut out = Vec::new();
    let repeat = |out: &mut Vec<(Duration, Action)>, period: Duration, action: Action| {
        let period = period.max(Duration::from_secs(1));
        let mut t = period;
        while t < total {
            out.push((t, action));
            t += period;
        }
    };
    for f in faults {
        match *f {
            SoakFault::CredentialExpiry(e) => repeat(
                &mut out,
                e.unwrap_or(every),
                Action::ResetAll("credential-expiry"),
            ),
            // A quarter by default, so that resets and expiries do not coincide.
            SoakFault::ConnectionReset(e) => repeat(
                &mut out,
                e.unwrap_or(total / 4),
                Action::ResetAll("connection-reset"),
            ),
            SoakFault::AckStall(d) => {
                let d = d.unwrap_or(window);
                out.push((total / 2, Action::AckStall(d)));
                out.push((total / 2 + d, Action::AckStallEnd));
            }
            SoakFault::LinkCut(d) => out.push((total / 2, Action::Cut(d.unwrap_or(window)))),
            SoakFault::CameraStall(_) => {}
        }
    }
    out.sort_by_key(|(t, _)| *t);
    out
}

/// The built-in endpoint: mock-kvs with its data plane behind the network proxy, and the
/// temporary credentials the KVS sink is given.
struct Endpoint {
    mock: MockKvs,
    proxy: Proxy,
    credentials: FaultInjectingProvider,
}

impl Endpoint {
    /// Starts mock-kvs and the proxy; credentials live as long as the credential-expiry fault
    /// says (an hour without it).
    fn start(args: &SoakArgs) -> Result<Endpoint> {
        let listener = TcpListener::bind("127.0.0.1:0").context("cannot bind the proxy")?;
        let proxy_url = format!("http://{}", listener.local_addr()?);
        let mock = MockKvs::start(MockKvsConfig {
            listen: "127.0.0.1:0".parse()?,
            data_endpoint: Some(proxy_url),
            // Count frames, keep no media: this process's memory is then Telescope's.
            keep_media: false,
            ..MockKvsConfig::default()
        })
        .context("cannot start mock-kvs")?;
        let network = args.network.unwrap_or_default();
        let proxy = Proxy::start(listener, mock.addr(), network, args.seed)
            .context("cannot start the network proxy")?;
        let lifetime = args
            .faults
            .iter()
            .find_map(|f| match f {
                SoakFault::CredentialExpiry(e) => Some(e.unwrap_or(args.duration / 3)),
                _ => None,
            })
            .unwrap_or(Duration::from_secs(3600));
        let credentials = FaultInjectingProvider::new(Arc::new(SystemWallClock), lifetime);
        Ok(Endpoint {
            mock,
            proxy,
            credentials,
        })
    }

    /// The `--sink` streaming each camera to this endpoint.
    fn sink(&self) -> String {
        format!(
            "kvs://soak-{{camera}}?endpoint={}&region=us-east-1",
            self.mock.url()
        )
    }

    /// The credentials as the KVS sink takes them.
    fn credential_source(&self) -> CredentialSource {
        CredentialSource::Provider(
            aws_credential_types::provider::SharedCredentialsProvider::new(
                self.credentials.clone(),
            ),
        )
    }
}

/// How often the camera freezes (for 3 s), when the camera-stall fault is asked for.
fn camera_stall(args: &SoakArgs) -> Option<Duration> {
    args.faults.iter().find_map(|f| match f {
        SoakFault::CameraStall(e) => Some(e.unwrap_or(args.duration / 3)),
        _ => None,
    })
}

/// How long a camera stall lasts.
const CAMERA_STALL: Duration = Duration::from_secs(3);

/// The replay a soak runs: the footage looped for the whole duration in real time, into the
/// given sinks (or the built-in endpoint), creating its streams, printing nothing.
fn replay_plan(args: &SoakArgs, endpoint: Option<&Endpoint>) -> ReplayArgs {
    let mut sinks = args.sinks.clone();
    sinks.extend(endpoint.map(Endpoint::sink));
    ReplayArgs {
        loops: 0,
        duration: Some(args.duration),
        seed: args.seed,
        create_stream: true,
        quiet: true,
        stall_every: camera_stall(args).map(|every| every.as_secs_f64()),
        stall_ms: CAMERA_STALL.as_millis() as u64,
        budgets: args.budgets.clone(),
        ..ReplayArgs::new(args.footage.clone(), sinks)
    }
}

pub fn run(args: SoakArgs) -> Result<()> {
    let needs_mock = args.network.is_some()
        || args
            .faults
            .iter()
            .any(|f| !matches!(f, SoakFault::CameraStall(_)));
    if !args.sinks.is_empty() && needs_mock {
        bail!(
            "--network and every fault but camera-stall act on the built-in mock-kvs: omit --sink"
        );
    }
    let chatty = !args.quiet && !args.json;
    let endpoint = match args.sinks.is_empty() {
        true => Some(Endpoint::start(&args)?),
        false => None,
    };
    if let (Some(e), true) = (&endpoint, chatty) {
        println!(
            "soak: mock-kvs on {}, data plane through {} ({})",
            e.mock.url(),
            e.proxy.addr(),
            args.network
                .map_or("no added network conditions".into(), |n| format!("{n:?}"))
        );
    }
    let (mut report, events) = replay_under_faults(&args, endpoint.as_ref(), chatty)?;
    report.command = "soak".into();
    let soak_verdicts = judge(&report, &args, endpoint.as_ref().map(|e| &e.mock));
    report.verdicts.extend(soak_verdicts);
    if let Some(dir) = &args.report {
        write_report(dir, &report, &events, endpoint.as_ref())?;
    }
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else if chatty {
        print_summary(&report, endpoint.as_ref());
    }
    drop(endpoint);
    if !report.passed() {
        return Err(crate::report::BudgetExceeded.into());
    }
    Ok(())
}

/// Runs the replay with the fault schedule beside it (when there is an endpoint to act on);
/// the replay's report and what the schedule did.
fn replay_under_faults(
    args: &SoakArgs,
    endpoint: Option<&Endpoint>,
    chatty: bool,
) -> Result<(Report, Vec<FaultEvent>)> {
    let replay = replay_plan(args, endpoint);
    let events: Mutex<Vec<FaultEvent>> = Mutex::default();
    let stop = AtomicBool::new(false);
    let plan = schedule(&args.faults, args.duration);
    let started = Instant::now();
    let report = std::thread::scope(|scope| -> Result<Report> {
        if let Some(e) = endpoint {
            let (events, stop, plan) = (&events, &stop, &plan);
            scope.spawn(move || drive(plan, &e.mock, &e.proxy, started, events, stop, chatty));
        }
        let result = crate::replay::run_with(
            replay,
            crate::replay::Hooks {
                credentials: endpoint.map(Endpoint::credential_source),
                progress: chatty,
            },
        );
        stop.store(true, Ordering::Relaxed);
        result
    })?;
    let events = events.into_inner().unwrap_or_else(|p| p.into_inner());
    Ok((report, events))
}

/// `DIR/report.json` and `report.html` as a replay writes them, and `DIR/soak.json`: the
/// faults driven, the proxy's counters and the credentials issued.
fn write_report(
    dir: &std::path::Path,
    report: &Report,
    events: &[FaultEvent],
    endpoint: Option<&Endpoint>,
) -> Result<()> {
    report.write(dir)?;
    let proxy = endpoint.map(|e| {
        let s = e.proxy.stats();
        serde_json::json!({
            "connections": s.connections, "refused": s.refused, "resets": s.resets,
            "bytes_up": s.bytes_up, "bytes_down": s.bytes_down,
        })
    });
    let soak = serde_json::json!({
        "faults": events,
        "proxy": proxy,
        "credentials_issued": endpoint.map(|e| e.credentials.issued()),
    });
    crate::report::write_atomic(&dir.join("soak.json"), &serde_json::to_vec_pretty(&soak)?)
}

/// Per camera what reached KVS, the credentials issued, the verdicts.
fn print_summary(report: &Report, endpoint: Option<&Endpoint>) {
    for c in &report.cameras {
        let kvs = c.kvs.first().map(|k| &k.delivery);
        println!(
            "camera {}: {} frames out, {} fragments, {} persisted, {} resent, {} connections",
            c.name,
            c.telescope.frames_out,
            kvs.map_or(0, |k| k.fragments),
            kvs.map_or(0, |k| k.persisted),
            kvs.map_or(0, |k| k.resent),
            kvs.map_or(0, |k| k.connections)
        );
    }
    if let Some(e) = endpoint {
        println!("credentials issued: {}", e.credentials.issued());
    }
    crate::replay::print_verdicts(report);
    println!("verdict: {}", if report.passed() { "PASS" } else { "FAIL" });
}

/// Run the schedule until it ends or `stop` is set.
fn drive(
    plan: &[(Duration, Action)],
    mock: &MockKvs,
    proxy: &Proxy,
    started: Instant,
    events: &Mutex<Vec<FaultEvent>>,
    stop: &AtomicBool,
    chatty: bool,
) {
    for (at, action) in plan {
        // Bounded wait: wake every 50 ms to notice the end of the run.
        while started.elapsed() < *at {
            if stop.load(Ordering::Relaxed) {
                return;
            }
            std::thread::sleep(Duration::from_millis(50).min(*at - started.elapsed().min(*at)));
        }
        let (fault, detail) = match *action {
            Action::ResetAll(name) => (name, format!("{} connections reset", proxy.reset_all())),
            Action::AckStall(d) => {
                mock.set_faults(vec![Fault::DelayAcks(d.as_millis() as u64)]);
                ("ack-stall", format!("acks held back {} ms", d.as_millis()))
            }
            Action::AckStallEnd => {
                mock.set_faults(Vec::new());
                ("ack-stall", "acks flow again".to_owned())
            }
            Action::Cut(d) => {
                proxy.cut(d);
                ("link-cut", format!("link down for {} ms", d.as_millis()))
            }
        };
        let t = started.elapsed().as_secs_f64();
        if chatty {
            println!("{t:7.1} s  {fault}: {detail}");
        }
        events
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(FaultEvent {
                t,
                fault: fault.to_owned(),
                detail,
            });
    }
}

/// The soak's invariants.
fn judge(report: &Report, args: &SoakArgs, mock: Option<&MockKvs>) -> Vec<Verdict> {
    let verdict = Verdict::at_most;
    let mut out = Vec::new();
    if let Some(mock) = mock {
        // Every frame encoded reached the store, once its resent duplicates are set aside.
        let mut lost = 0i64;
        for c in &report.cameras {
            let (_, stored) = mock.stored(&format!("soak-{}", c.name));
            lost += c.telescope.frames_out as i64 - stored as i64;
        }
        out.push(verdict("frames lost", "frames", 0.0, lost.max(0) as f64));
    }
    let unpersisted: u64 = report
        .cameras
        .iter()
        .flat_map(|c| &c.kvs)
        .map(|k| &k.delivery)
        .map(|k| k.fragments.saturating_sub(k.persisted) + k.evicted)
        .sum();
    out.push(verdict(
        "fragments not persisted or evicted",
        "fragments",
        0.0,
        unpersisted as f64,
    ));
    if let Some(p) = &report.process {
        out.push(verdict(
            "RSS growth",
            "%",
            args.max_rss_growth,
            p.rss_growth_percent,
        ));
    }
    // Stuck: the longest stretch of samples with no output from some camera.
    let mut longest = 0.0f64;
    let cameras = report.cameras.len();
    for i in 0..cameras {
        let mut since: Option<f64> = None;
        for s in &report.timeline {
            let out_fps = s.cameras.get(i).map_or(0.0, |c| c.output_fps);
            if out_fps > 0.0 {
                since = None;
            } else {
                let start = *since.get_or_insert(s.t);
                longest = longest.max(s.t - start);
            }
        }
    }
    let allowance =
        args.max_output_gap + camera_stall(args).map_or(0.0, |_| CAMERA_STALL.as_secs_f64());
    out.push(verdict("longest output gap", "s", allowance, longest));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn faults_parse_with_defaults_scaled_to_the_duration() {
        let f: Vec<SoakFault> = ["credential-expiry", "connection-reset:20s", "ack-stall:5s"]
            .iter()
            .map(|s| s.parse().unwrap())
            .collect();
        let plan = schedule(&f, Duration::from_secs(60));
        let at: Vec<(u64, String)> = plan
            .iter()
            .map(|(t, a)| (t.as_secs(), format!("{a:?}")))
            .collect();
        assert_eq!(
            at,
            vec![
                (20, "ResetAll(\"credential-expiry\")".to_owned()),
                (20, "ResetAll(\"connection-reset\")".to_owned()),
                (30, "AckStall(5s)".to_owned()),
                (35, "AckStallEnd".to_owned()),
                (40, "ResetAll(\"credential-expiry\")".to_owned()),
                (40, "ResetAll(\"connection-reset\")".to_owned()),
            ]
        );
        assert!("link-cut:soon".parse::<SoakFault>().is_err());
        assert!("flood".parse::<SoakFault>().unwrap_err().contains("known"));
        let cut = schedule(&["link-cut".parse().unwrap()], Duration::from_secs(600));
        assert_eq!(cut.len(), 1);
        assert!(matches!(cut[0].1, Action::Cut(d) if d == Duration::from_secs(30)));
    }
}
