//! After a run: each camera's report from its counters, what people read on stdout, and the
//! files the options ask for.

use super::*;

/// The mock-kvs viewer URL of a KVS sink's stream, when its endpoint is on loopback.
pub(super) fn mock_viewer(k: &telescope::sink::KvsSink) -> Option<String> {
    let endpoint = k.data_endpoint().trim_end_matches('/');
    let local = endpoint.starts_with("http://127.") || endpoint.starts_with("http://localhost");
    local.then(|| format!("{endpoint}/?stream={}", k.stream_name()))
}

/// What people read on stdout after a run (nothing with --quiet or --json).
pub(super) fn print_run(args: &ReplayArgs, report: &Report, outputs: &Outputs, camera_model: bool) {
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
pub(super) fn write_outputs(args: &ReplayArgs, report: &Report) -> Result<()> {
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

pub(super) fn camera_report(
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
pub(super) fn rtsp_delivered(lane: &Lane) -> u64 {
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

pub(super) fn print_summary(report: &Report, lanes: &[Lane]) {
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
pub(super) fn print_camera(c: &CameraReport, wall_seconds: f64) {
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
pub(super) fn print_sinks(sinks: &[SinkConfig]) {
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
pub(super) fn print_rtsp_servers(lanes: &[Lane]) {
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
