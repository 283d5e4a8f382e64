//! `report.html`: one self-contained page (inline SVG, no script, no external file) per run, or
//! two runs side by side. Charts: CPU, RSS, input/output fps and queue depth over time, and the
//! put latency histogram; tables: the verdicts against the budgets, the process, the cameras.

use std::fmt::Write;

use crate::report::{CameraReport, Report};

const COLORS: [&str; 6] = [
    "#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#17becf",
];

/// Escape text for HTML content and attribute values.
pub fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// A line chart of `series` (name, points), axes from 0 to the maxima.
pub fn line_chart(title: &str, unit: &str, series: &[(String, Vec<(f64, f64)>)]) -> String {
    // Title, then the legend in rows of four under it, then the plot.
    let rows = series.len().div_ceil(4).max(1) as f64;
    let top = 34.0 + 14.0 * rows;
    let (w, h, left, bottom, right) = (640.0, 200.0 + top, 56.0, 28.0, 12.0);
    let finite = |v: f64| if v.is_finite() { v } else { 0.0 };
    let xmax = series
        .iter()
        .flat_map(|(_, p)| p.iter().map(|(x, _)| finite(*x)))
        .fold(0.0, f64::max)
        .max(1e-9);
    let ymax = nice_max(
        series
            .iter()
            .flat_map(|(_, p)| p.iter().map(|(_, y)| finite(*y)))
            .fold(0.0, f64::max),
    );
    let px = |x: f64| left + finite(x) / xmax * (w - left - right);
    let py = |y: f64| h - bottom - finite(y) / ymax * (h - bottom - top);
    let mut s = String::new();
    let _ = write!(
        s,
        r#"<figure><svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {w} {h}" width="{w}" height="{h}" role="img" aria-label="{t}">"#,
        t = escape(title)
    );
    let _ = write!(
        s,
        r##"<text x="{left}" y="14" font-size="13" font-weight="bold">{}</text>"##,
        escape(title)
    );
    for i in 0..=4 {
        let y = ymax * f64::from(i) / 4.0;
        let _ = write!(
            s,
            r##"<line x1="{left}" x2="{x2}" y1="{yy:.1}" y2="{yy:.1}" stroke="#ddd"/><text x="{tx}" y="{ty:.1}" font-size="10" text-anchor="end">{y}</text>"##,
            x2 = w - right,
            yy = py(y),
            tx = left - 4.0,
            ty = py(y) + 3.0,
            y = short(y)
        );
    }
    let _ = write!(
        s,
        r##"<text x="{x}" y="{y}" font-size="10" text-anchor="end">{xm} s</text><text x="{left}" y="{ym}" font-size="10" text-anchor="end">{u}</text>"##,
        x = w - right,
        y = h - 8.0,
        xm = short(xmax),
        ym = top - 8.0,
        u = escape(unit)
    );
    for (i, (name, points)) in series.iter().enumerate() {
        let color = COLORS[i % COLORS.len()];
        let path: Vec<String> = points
            .iter()
            .map(|(x, y)| format!("{:.1},{:.1}", px(*x), py(*y)))
            .collect();
        if !path.is_empty() {
            let _ = write!(
                s,
                r#"<polyline fill="none" stroke="{color}" stroke-width="1.5" points="{}"/>"#,
                path.join(" ")
            );
        }
        let _ = write!(
            s,
            r#"<text x="{x}" y="{y}" font-size="11" fill="{color}">&#9632; {}</text>"#,
            escape(name),
            x = left + 140.0 * (i % 4) as f64,
            y = 32.0 + 14.0 * (i / 4) as f64
        );
    }
    s.push_str("</svg></figure>");
    s
}

/// A bar chart of a histogram's buckets (upper bound, count), bars in bucket order.
pub fn histogram_chart(title: &str, unit: &str, buckets: &[(f64, u64)]) -> String {
    let (w, h, left, bottom, top) = (640.0, 200.0, 48.0, 36.0, 24.0);
    let max = buckets.iter().map(|(_, n)| *n).max().unwrap_or(0).max(1) as f64;
    let n = buckets.len().max(1) as f64;
    let bw = (w - left - 8.0) / n;
    let mut s = format!(
        r#"<figure><svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {w} {h}" width="{w}" height="{h}" role="img" aria-label="{t}"><text x="{left}" y="14" font-size="13" font-weight="bold">{t}</text>"#,
        t = escape(title)
    );
    let step = (buckets.len() / 8).max(1);
    for (i, (bound, count)) in buckets.iter().enumerate() {
        let bh = *count as f64 / max * (h - bottom - top);
        let x = left + i as f64 * bw;
        let _ = write!(
            s,
            r##"<rect x="{x:.1}" y="{y:.1}" width="{bw2:.1}" height="{bh:.1}" fill="#1f77b4"><title>&lt;= {b} {u}: {count}</title></rect>"##,
            y = h - bottom - bh,
            bw2 = (bw - 1.0).max(0.5),
            b = short(*bound),
            u = escape(unit)
        );
        if i % step == 0 {
            let _ = write!(
                s,
                r#"<text x="{x:.1}" y="{y}" font-size="9">{b}</text>"#,
                y = h - bottom + 12.0,
                b = short(*bound)
            );
        }
    }
    let _ = write!(
        s,
        r#"<text x="{left}" y="{y}" font-size="10">{u} (bucket upper bound); tallest bar {m} calls</text></svg></figure>"#,
        y = h - 6.0,
        u = escape(unit),
        m = max
    );
    s
}

fn nice_max(v: f64) -> f64 {
    if v <= 0.0 {
        return 1.0;
    }
    let p = 10f64.powf(v.log10().floor());
    for m in [1.0, 2.0, 2.5, 5.0, 10.0] {
        if v <= m * p {
            return m * p;
        }
    }
    10.0 * p
}

fn short(v: f64) -> String {
    if v >= 100.0 || v == v.trunc() {
        format!("{v:.0}")
    } else {
        format!("{v:.2}")
    }
}

/// The page style every report shares (replay's and run-app's).
pub const STYLE: &str = "body{font-family:system-ui,sans-serif;margin:24px;color:#222}\
table{border-collapse:collapse;margin:8px 0 16px}td,th{border:1px solid #ccc;padding:3px 8px;\
text-align:right}th{background:#f4f4f4}td:first-child,th:first-child{text-align:left}\
.pass{color:#2a7d2a;font-weight:bold}.fail{color:#c62828;font-weight:bold}figure{margin:8px 0}";

/// The page for one run, or for several side by side (labels name them).
pub fn render(runs: &[(String, &Report)]) -> String {
    let mut s = String::new();
    let title = if runs.len() == 1 {
        format!("Telescope report: {}", runs[0].0)
    } else {
        format!(
            "Telescope reports compared: {}",
            runs.iter()
                .map(|(l, _)| l.as_str())
                .collect::<Vec<_>>()
                .join(" vs ")
        )
    };
    let _ = write!(
        s,
        "<!DOCTYPE html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>{t}</title><style>{STYLE}</style></head><body><h1>{t}</h1>",
        t = escape(&title)
    );
    verdicts(&mut s, runs);
    summary(&mut s, runs);
    threads(&mut s, runs);
    cameras(&mut s, runs);
    charts(&mut s, runs);
    s.push_str("</body></html>\n");
    s
}

fn verdicts(s: &mut String, runs: &[(String, &Report)]) {
    if runs.iter().all(|(_, r)| r.verdicts.is_empty()) {
        s.push_str("<p>No budgets were given (<code>--budget-cpu</code>, <code>--budget-rss</code>, <code>--budget-rss-growth</code>, <code>--budget-put-p99-ms</code>).</p>");
        return;
    }
    s.push_str("<h2>Verdict</h2><table><tr><th>run</th><th>budget</th><th>limit</th><th>measured</th><th>verdict</th></tr>");
    for (label, r) in runs {
        for v in &r.verdicts {
            let _ = write!(
                s,
                "<tr><td>{}</td><td>{}</td><td>{} {u}</td><td>{:.2} {u}</td><td class=\"{c}\">{}</td></tr>",
                escape(label),
                escape(&v.name),
                short(v.limit),
                v.measured,
                if v.pass { "pass" } else { "FAIL" },
                u = escape(&v.unit),
                c = if v.pass { "pass" } else { "fail" }
            );
        }
    }
    s.push_str("</table>");
}

fn summary(s: &mut String, runs: &[(String, &Report)]) {
    s.push_str("<h2>Run</h2><table><tr><th></th>");
    for (label, _) in runs {
        let _ = write!(s, "<th>{}</th>", escape(label));
    }
    s.push_str("</tr>");
    for (name, f) in crate::report::KEY_FIGURES {
        let _ = write!(s, "<tr><td>{name}</td>");
        for (_, r) in runs {
            let _ = write!(s, "<td>{}</td>", escape(&f(r)));
        }
        s.push_str("</tr>");
    }
    s.push_str("</table>");
}

fn threads(s: &mut String, runs: &[(String, &Report)]) {
    let any = runs
        .iter()
        .any(|(_, r)| r.process.as_ref().is_some_and(|p| !p.threads.is_empty()));
    if !any {
        return;
    }
    s.push_str("<h2>CPU by thread group</h2><table><tr><th>run</th><th>group</th><th>threads</th><th>% of a core</th></tr>");
    for (label, r) in runs {
        for t in r.process.iter().flat_map(|p| &p.threads) {
            let _ = write!(
                s,
                "<tr><td>{}</td><td>{}</td><td>{}</td><td>{:.1}</td></tr>",
                escape(label),
                escape(&t.group),
                t.threads,
                t.cpu_percent
            );
        }
    }
    s.push_str("</table>");
}

fn cameras(s: &mut String, runs: &[(String, &Report)]) {
    s.push_str("<h2>Cameras</h2><table><tr><th>run / camera</th><th>in</th><th>lost</th><th>superseded</th><th>put</th><th>dropped</th><th>out</th><th>dup</th><th>in fps</th><th>out fps</th><th>put p50 / p99 / max (us)</th><th>KVS persisted / fragments / resent</th><th>RTSP viewers / units</th><th>encoder</th></tr>");
    for (label, r) in runs {
        for c in &r.cameras {
            camera_row(s, label, c);
        }
    }
    s.push_str("</table>");
}

fn camera_row(s: &mut String, label: &str, c: &CameraReport) {
    let t = &c.telescope;
    let dropped = t.dropped_total();
    let kvs = c
        .kvs
        .iter()
        .map(|k| &k.delivery)
        .fold((0, 0, 0), |(p, f, r), k| {
            (p + k.persisted, f + k.fragments, r + k.resent)
        });
    let _ = write!(
        s,
        "<tr><td>{} / {}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{dropped}</td><td>{}</td><td>{}</td><td>{:.2}</td><td>{:.2}</td><td>{:.0} / {:.0} / {:.0}</td><td>{} / {} / {}</td><td>{} / {}</td><td>{}</td></tr>",
        escape(label),
        escape(&c.name),
        c.frames_in,
        c.camera_lost,
        c.superseded,
        t.frames_put,
        t.frames_out,
        t.frames_duplicated,
        c.input_fps,
        c.output_fps,
        c.put_latency_us.p50,
        c.put_latency_us.p99,
        c.put_latency_us.max,
        kvs.0,
        kvs.1,
        kvs.2,
        c.rtsp_clients,
        c.rtsp_delivered,
        escape(t.encoder.as_deref().unwrap_or("-"))
    );
}

fn charts(s: &mut String, runs: &[(String, &Report)]) {
    let many = runs.len() > 1;
    let name = |label: &str, what: &str| {
        if many {
            format!("{label} {what}")
        } else {
            what.to_owned()
        }
    };
    let mut cpu = Vec::new();
    let mut rss = Vec::new();
    let mut fps = Vec::new();
    let mut queue = Vec::new();
    for (label, r) in runs {
        let t = &r.timeline;
        cpu.push((
            name(label, "CPU"),
            t.iter().map(|x| (x.t, x.cpu_percent)).collect::<Vec<_>>(),
        ));
        rss.push((
            name(label, "RSS"),
            t.iter().map(|x| (x.t, x.rss_mib)).collect::<Vec<_>>(),
        ));
        for (i, c) in r.cameras.iter().enumerate() {
            let series = |f: fn(&crate::sample::CameraSample) -> f64| -> Vec<(f64, f64)> {
                t.iter()
                    .filter_map(|x| x.cameras.get(i).map(|c| (x.t, f(c))))
                    .collect()
            };
            fps.push((
                name(label, &format!("camera {} in", c.name)),
                series(|c| c.input_fps),
            ));
            fps.push((
                name(label, &format!("camera {} out", c.name)),
                series(|c| c.output_fps),
            ));
            queue.push((name(label, &c.name), series(|c| c.queue_depth as f64)));
        }
    }
    s.push_str("<h2>Over time</h2>");
    if runs.iter().all(|(_, r)| r.timeline.is_empty()) {
        s.push_str("<p>No samples: the run was shorter than one sampling interval.</p>");
        return;
    }
    s.push_str(&line_chart("CPU", "% of one core", &cpu));
    s.push_str(&line_chart("Resident memory", "MiB", &rss));
    s.push_str(&line_chart("Frames per second (wall time)", "fps", &fps));
    s.push_str(&line_chart("Telescope queue depth", "frames", &queue));
    for (label, r) in runs {
        for c in &r.cameras {
            s.push_str(&histogram_chart(
                &name(label, &format!("put latency, camera {}", c.name)),
                "us",
                &c.put_latency_histogram_us,
            ));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_is_escaped_and_the_page_is_self_contained() {
        let report = Report {
            command: "replay".into(),
            cameras: vec![CameraReport {
                name: "<cam&1>".into(),
                put_latency_histogram_us: vec![(4.0, 2), (8.0, 5)],
                ..Default::default()
            }],
            timeline: vec![crate::sample::Sample {
                t: 1.0,
                cpu_percent: 12.5,
                rss_mib: 80.0,
                cameras: vec![Default::default()],
                ..Default::default()
            }],
            ..Default::default()
        };
        let page = render(&[("run \"a\"".into(), &report)]);
        assert!(page.contains("&lt;cam&amp;1&gt;"));
        assert!(!page.contains("<cam&1>"));
        assert!(page.contains("run &quot;a&quot;"));
        assert!(
            page.matches("<svg").count() >= 5,
            "four charts and a histogram"
        );
        assert!(!page.contains("<script") && !page.contains("src=\"http"));
        let both = render(&[("a".into(), &report), ("b".into(), &report)]);
        assert!(both.contains("a vs b") && both.contains("b camera &lt;cam&amp;1&gt; in"));
    }

    #[test]
    fn axes_round_up_and_odd_values_do_not_break_the_chart() {
        assert_eq!(nice_max(0.0), 1.0);
        assert_eq!(nice_max(7.3), 10.0);
        assert_eq!(nice_max(130.0), 200.0);
        let svg = line_chart("x", "u", &[("s".into(), vec![(0.0, f64::NAN), (1.0, 3.0)])]);
        assert!(!svg.contains("NaN"), "{svg}");
    }
}
