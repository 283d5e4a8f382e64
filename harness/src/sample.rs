//! Measurement while a run goes on: a thread that wakes once per interval and records the
//! process's CPU (user and system, from `getrusage`) and resident memory (`/proc/self/statm`),
//! and per camera the counters of its Telescope and sinks. Reading a few counters and one
//! small proc file per second costs far below 1 % of a core.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

/// One camera's counters at a sampling instant (cumulative, as the Telescope reports them).
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct CameraCounters {
    pub frames_put: u64,
    pub frames_out: u64,
    pub queue_depth: usize,
    pub kvs_persisted: u64,
    pub rtsp_clients: u64,
}

/// One camera over one sampling interval.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct CameraSample {
    /// Frames put per second of wall time over the interval.
    pub input_fps: f64,
    /// Frames the encoder's input emitted per second over the interval.
    pub output_fps: f64,
    /// Frames waiting in Telescope's queue at the sampling instant.
    pub queue_depth: usize,
    /// KVS fragments persisted so far.
    pub kvs_persisted: u64,
    /// RTSP viewers connected now.
    pub rtsp_clients: u64,
}

/// The process and every camera at one sampling instant.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Sample {
    /// Wall seconds since the run started.
    pub t: f64,
    /// CPU over the interval, percent of one core (user + system).
    pub cpu_percent: f64,
    pub user_percent: f64,
    pub sys_percent: f64,
    /// Resident memory, MiB.
    pub rss_mib: f64,
    pub cameras: Vec<CameraSample>,
}

/// CPU time of this process so far: (user, system).
pub fn process_cpu() -> (Duration, Duration) {
    // SAFETY: an all-zero rusage is a valid value; getrusage fills it.
    let mut u: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: RUSAGE_SELF with a valid pointer to a rusage.
    unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut u) };
    (timeval(u.ru_utime), timeval(u.ru_stime))
}

/// A `timeval` as a duration (negative fields, which the kernel never reports, read as 0).
pub fn timeval(t: libc::timeval) -> Duration {
    Duration::from_secs(u64::try_from(t.tv_sec).unwrap_or(0))
        + Duration::from_micros(u64::try_from(t.tv_usec).unwrap_or(0))
}

/// Resident memory of this process in bytes, from `/proc/self/statm` (0 where unreadable).
pub fn rss_bytes() -> u64 {
    // SAFETY: sysconf has no memory-safety preconditions.
    let page = u64::try_from(unsafe { libc::sysconf(libc::_SC_PAGESIZE) }).unwrap_or(4096);
    std::fs::read_to_string("/proc/self/statm")
        .ok()
        .and_then(|s| s.split_whitespace().nth(1)?.parse::<u64>().ok())
        .map_or(0, |pages| pages * page)
}

/// Memory the kernel says new work can have (`MemAvailable` in `/proc/meminfo`), in bytes;
/// `None` where it does not say.
pub fn available_memory() -> Option<u64> {
    let info = std::fs::read_to_string("/proc/meminfo").ok()?;
    parse_mem_available(&info)
}

fn parse_mem_available(info: &str) -> Option<u64> {
    let line = info.lines().find(|l| l.starts_with("MemAvailable:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}

/// Samples until stopped; `read` returns every camera's counters.
pub struct Sampler {
    stop: Arc<AtomicBool>,
    samples: Arc<Mutex<Vec<Sample>>>,
    thread: Option<JoinHandle<()>>,
}

impl Sampler {
    pub fn start(
        interval: Duration,
        read: impl Fn() -> Vec<CameraCounters> + Send + 'static,
    ) -> std::io::Result<Sampler> {
        let stop = Arc::new(AtomicBool::new(false));
        let samples: Arc<Mutex<Vec<Sample>>> = Arc::default();
        let thread = {
            let (stop, samples) = (stop.clone(), samples.clone());
            std::thread::Builder::new()
                .name("telescope-sampler".into())
                .spawn(move || {
                    let start = Instant::now();
                    let mut last = (Instant::now(), process_cpu(), read());
                    let mut next = start + interval;
                    // Bounded by the run: the owner sets `stop` when it ends.
                    while !stop.load(Ordering::Relaxed) {
                        let now = Instant::now();
                        if now < next {
                            // Wake at least every 50 ms to notice `stop`.
                            std::thread::sleep((next - now).min(Duration::from_millis(50)));
                            continue;
                        }
                        next += interval;
                        let (cpu, counters) = (process_cpu(), read());
                        let sample = make_sample(start, &last, now, cpu, &counters);
                        samples
                            .lock()
                            .unwrap_or_else(|p| p.into_inner())
                            .push(sample);
                        last = (now, cpu, counters);
                    }
                })?
        };
        Ok(Sampler {
            stop,
            samples,
            thread: Some(thread),
        })
    }

    /// Stop and return the samples.
    pub fn finish(mut self) -> Vec<Sample> {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
        std::mem::take(&mut *self.samples.lock().unwrap_or_else(|p| p.into_inner()))
    }
}

impl Drop for Sampler {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

type Last = (Instant, (Duration, Duration), Vec<CameraCounters>);

fn make_sample(
    start: Instant,
    last: &Last,
    now: Instant,
    cpu: (Duration, Duration),
    counters: &[CameraCounters],
) -> Sample {
    let dt = now.duration_since(last.0).as_secs_f64().max(1e-6);
    let pct = |a: Duration, b: Duration| a.saturating_sub(b).as_secs_f64() / dt * 100.0;
    let user = pct(cpu.0, last.1 .0);
    let sys = pct(cpu.1, last.1 .1);
    let cameras = counters
        .iter()
        .enumerate()
        .map(|(i, c)| {
            let before = last.2.get(i).copied().unwrap_or_default();
            let rate = |a: u64, b: u64| a.saturating_sub(b) as f64 / dt;
            CameraSample {
                input_fps: rate(c.frames_put, before.frames_put),
                output_fps: rate(c.frames_out, before.frames_out),
                queue_depth: c.queue_depth,
                kvs_persisted: c.kvs_persisted,
                rtsp_clients: c.rtsp_clients,
            }
        })
        .collect();
    Sample {
        t: now.duration_since(start).as_secs_f64(),
        cpu_percent: user + sys,
        user_percent: user,
        sys_percent: sys,
        rss_mib: rss_bytes() as f64 / (1024.0 * 1024.0),
        cameras,
    }
}

/// Summary of the process over the run.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ProcessReport {
    /// Mean CPU over the run, percent of one core (user + system).
    pub cpu_percent_mean: f64,
    /// `cpu_percent_mean` divided by the number of camera streams.
    pub cpu_percent_per_stream: f64,
    pub user_percent_mean: f64,
    pub sys_percent_mean: f64,
    /// Resident memory at the first and last sample and its maximum, MiB.
    pub rss_mib_first: f64,
    pub rss_mib_last: f64,
    pub rss_mib_max: f64,
    /// Growth from the sample at a quarter of the run (after start-up) to the last, percent.
    pub rss_growth_percent: f64,
    /// The CPU above split by what the threads do (from their names), largest first.
    #[serde(default)]
    pub threads: Vec<ThreadCpu>,
}

/// CPU of one group of threads over the run, percent of one core.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ThreadCpu {
    /// What the threads do: `encode`, `decode`, `main`...
    pub group: String,
    /// Threads alive at the end of the run in this group (0 for `ended`).
    pub threads: usize,
    pub cpu_percent: f64,
}

/// Each live thread of this process: its id, name and the CPU seconds it has used (user +
/// system), from `/proc/self/task/*/stat`. Empty where /proc cannot be read.
pub fn thread_cpu_seconds() -> Vec<(u64, String, f64)> {
    // SAFETY: sysconf has no preconditions.
    let ticks = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as f64;
    let Ok(tasks) = std::fs::read_dir("/proc/self/task") else {
        return Vec::new();
    };
    tasks
        .flatten()
        .filter_map(|t| std::fs::read_to_string(t.path().join("stat")).ok())
        .filter_map(|stat| {
            let tid = stat.split_whitespace().next()?.parse().ok()?;
            let (name, seconds) = parse_task_stat(&stat, ticks)?;
            Some((tid, name, seconds))
        })
        .collect()
}

/// What each thread alive at `end` used since `start` (all of it for threads born since).
pub fn thread_cpu_since(
    start: &[(u64, String, f64)],
    end: &[(u64, String, f64)],
) -> Vec<(String, f64)> {
    end.iter()
        .map(|(tid, name, seconds)| {
            let before = start
                .iter()
                .find(|(t, _, _)| t == tid)
                .map_or(0.0, |(_, _, s)| *s);
            (name.clone(), (seconds - before).max(0.0))
        })
        .collect()
}

/// `tid (name) state ...`: the name (which may hold spaces or parentheses) and utime + stime.
fn parse_task_stat(stat: &str, ticks_per_second: f64) -> Option<(String, f64)> {
    let open = stat.find('(')?;
    let close = stat.rfind(')')?;
    let name = stat.get(open + 1..close)?.to_owned();
    let fields: Vec<&str> = stat.get(close + 1..)?.split_whitespace().collect();
    // After the name: state is field 3 of proc(5), utime 14 and stime 15.
    let utime: f64 = fields.get(11)?.parse().ok()?;
    let stime: f64 = fields.get(12)?.parse().ok()?;
    Some((name, (utime + stime) / ticks_per_second))
}

/// What a thread does, from its name: GStreamer names streaming threads after the pad that
/// drives them (`src:src` is a Telescope's appsrc, which also runs the conversion, the overlay
/// and the encoder, whose own worker threads inherit the name; a Telescope's `NAME-worker`
/// converts BGR frames to I420 before pushing them), and threads without a name of their own
/// inherit their creator's.
pub fn thread_group(name: &str) -> &'static str {
    let has = |p: &str| name.contains(p);
    if name == "src:src" || has("x264") || has("enc") || name.ends_with("-worker") {
        "encode (convert, overlay, H.264)"
    } else if has("demux")
        || has("multiqueue")
        || has("typefind")
        || has("decodebin")
        || has("parse")
        || has("dec")
        || has("source")
    {
        "decode (footage)"
    } else if name.starts_with("sink") || has("mux") || has("filesink") {
        "sinks (mux, files, KVS hand-over)"
    } else if has("rtsp") || name.starts_with("pool-") {
        "RTSP server"
    } else if has("putmedia") || has("tokio") || has("worker") {
        "KVS and async I/O"
    } else if name == "telescope" || name == "main" {
        "main (node, app, put)"
    } else if name.starts_with("telescope-") || name == "ctrl-c" {
        "harness (sampler, signals)"
    } else {
        "other"
    }
}

/// Groups live threads' CPU; what ended threads used (the process total minus the live
/// threads) is its own group, `threads that ended`.
pub fn by_thread_group(
    threads: &[(String, f64)],
    process_seconds: f64,
    wall: f64,
) -> Vec<ThreadCpu> {
    let wall = wall.max(1e-6);
    let mut groups: Vec<ThreadCpu> = Vec::new();
    for (name, seconds) in threads {
        let group = thread_group(name);
        match groups.iter_mut().find(|g| g.group == group) {
            Some(g) => {
                g.threads += 1;
                g.cpu_percent += seconds / wall * 100.0;
            }
            None => groups.push(ThreadCpu {
                group: group.to_owned(),
                threads: 1,
                cpu_percent: seconds / wall * 100.0,
            }),
        }
    }
    let live: f64 = threads.iter().map(|(_, s)| s).sum();
    let ended = (process_seconds - live) / wall * 100.0;
    if ended > 0.05 {
        groups.push(ThreadCpu {
            group: "threads that ended".into(),
            threads: 0,
            cpu_percent: ended,
        });
    }
    groups.sort_by(|a, b| b.cpu_percent.total_cmp(&a.cpu_percent));
    groups
}

impl ProcessReport {
    /// From the whole run's CPU time, the samples and the threads' CPU (taken with
    /// [`thread_cpu_seconds`] before the pipelines stop, while their threads still live).
    pub fn new(
        cpu: (Duration, Duration),
        wall: Duration,
        streams: usize,
        samples: &[Sample],
        threads: &[(String, f64)],
    ) -> Self {
        let wall = wall.as_secs_f64().max(1e-6);
        let user = cpu.0.as_secs_f64() / wall * 100.0;
        let sys = cpu.1.as_secs_f64() / wall * 100.0;
        let rss: Vec<f64> = samples.iter().map(|s| s.rss_mib).collect();
        let now = rss_bytes() as f64 / (1024.0 * 1024.0);
        let first = rss.first().copied().unwrap_or(now);
        let last = rss.last().copied().unwrap_or(now);
        let settled = rss.get(rss.len() / 4).copied().unwrap_or(first);
        ProcessReport {
            cpu_percent_mean: user + sys,
            cpu_percent_per_stream: (user + sys) / streams.max(1) as f64,
            user_percent_mean: user,
            sys_percent_mean: sys,
            rss_mib_first: first,
            rss_mib_last: last,
            rss_mib_max: rss.iter().copied().fold(now.max(first), f64::max),
            rss_growth_percent: if settled > 0.0 {
                (last - settled) / settled * 100.0
            } else {
                0.0
            },
            threads: by_thread_group(threads, cpu.0.as_secs_f64() + cpu.1.as_secs_f64(), wall),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn available_memory_is_read_from_meminfo() {
        let info = "MemTotal:       24000000 kB\nMemFree:  100 kB\nMemAvailable:   2048 kB\n";
        assert_eq!(parse_mem_available(info), Some(2048 * 1024));
        assert_eq!(parse_mem_available("MemTotal: 5 kB\n"), None);
        assert!(available_memory().is_some_and(|b| b > 0));
    }

    #[test]
    fn thread_stats_parse_and_group_with_what_ended_apart() {
        assert_eq!(thread_group("0-worker"), "encode (convert, overlay, H.264)");
        let stat = "4242 (src:src) S 1 2 3 4 5 6 7 8 9 10 250 50 0 0 20 0 7 0";
        assert_eq!(parse_task_stat(stat, 100.0), Some(("src:src".into(), 3.0)));
        // A name with spaces and parentheses.
        let odd = "7 (a (b) c) R 1 2 3 4 5 6 7 8 9 10 100 0 0 0";
        assert_eq!(parse_task_stat(odd, 100.0), Some(("a (b) c".into(), 1.0)));
        assert_eq!(parse_task_stat("7 (short) R 1 2", 100.0), None);
        let threads = vec![
            ("src:src".to_owned(), 4.0),
            ("src:src".to_owned(), 2.0),
            ("telescope".to_owned(), 1.0),
            ("avidemux0:sink".to_owned(), 1.0),
        ];
        let groups = by_thread_group(&threads, 10.0, 10.0);
        let got: Vec<(&str, usize, f64)> = groups
            .iter()
            .map(|g| (g.group.as_str(), g.threads, g.cpu_percent))
            .collect();
        assert_eq!(
            got,
            vec![
                ("encode (convert, overlay, H.264)", 2, 60.0),
                ("threads that ended", 0, 20.0),
                ("main (node, app, put)", 1, 10.0),
                ("decode (footage)", 1, 10.0),
            ]
        );
        // This process: its own threads are readable and add up to at most its CPU.
        let live = thread_cpu_seconds();
        assert!(!live.is_empty());
        let (u, s) = process_cpu();
        let total: f64 = live.iter().map(|(_, _, c)| c).sum();
        let none = thread_cpu_since(&live, &live);
        assert!(none.iter().all(|(_, c)| *c == 0.0));
        assert!(
            total <= (u + s).as_secs_f64() + 0.05,
            "{total} vs {:?}",
            u + s
        );
    }

    #[test]
    fn rates_and_cpu_come_from_differences_over_the_interval() {
        let start = Instant::now();
        let t0 = start;
        let t1 = t0 + Duration::from_secs(2);
        let before = vec![CameraCounters {
            frames_put: 10,
            frames_out: 8,
            ..Default::default()
        }];
        let after = [CameraCounters {
            frames_put: 70,
            frames_out: 68,
            queue_depth: 3,
            kvs_persisted: 2,
            rtsp_clients: 1,
        }];
        let last = (
            t0,
            (Duration::from_millis(100), Duration::from_millis(50)),
            before,
        );
        let s = make_sample(
            start,
            &last,
            t1,
            (Duration::from_millis(600), Duration::from_millis(150)),
            &after,
        );
        assert!((s.user_percent - 25.0).abs() < 1e-9, "{s:?}");
        assert!((s.sys_percent - 5.0).abs() < 1e-9, "{s:?}");
        assert_eq!(s.cameras[0].input_fps, 30.0);
        assert_eq!(s.cameras[0].output_fps, 30.0);
        assert_eq!(s.cameras[0].queue_depth, 3);
        assert!(s.rss_mib > 0.0);
    }

    #[test]
    fn rss_growth_is_measured_after_start_up() {
        let samples: Vec<Sample> = [50.0, 100.0, 100.0, 100.0, 100.0, 100.0, 100.0, 103.0]
            .iter()
            .enumerate()
            .map(|(i, r)| Sample {
                t: i as f64,
                rss_mib: *r,
                ..Default::default()
            })
            .collect();
        let p = ProcessReport::new(
            (Duration::from_secs(3), Duration::from_secs(1)),
            Duration::from_secs(8),
            2,
            &samples,
            &[],
        );
        assert!((p.rss_growth_percent - 3.0).abs() < 1e-9, "{p:?}");
        assert!((p.cpu_percent_mean - 50.0).abs() < 1e-9);
        assert!((p.cpu_percent_per_stream - 25.0).abs() < 1e-9);
        assert_eq!((p.rss_mib_first, p.rss_mib_last), (50.0, 103.0));
    }
}
