//! Annotation rendering: 100 mixed annotations on a 1920x1080 BGR frame (target under 2 ms).
//!
//! Three ways to draw it: the same scene on every frame (a static overlay), a stream whose
//! detections move and whose confidences change on every frame (30 different scenes in turn,
//! zones and labels staying put), and from nothing (the driver's mask caches emptied before
//! every draw: the first frame of a stream). Then the cost of each kind of annotation alone.

use criterion::{criterion_group, criterion_main, Criterion};
use telescope::annotation::layout::lower;
use telescope::annotation::opencv::{clear_caches, FrameDriver};
use telescope::annotation::{Driver, Scene};
use telescope::{Frame, PixelFormat};

/// The annotations of the mixed scene by kind, as JSON objects, on frame `frame` of a stream:
/// 40 bounding boxes with captions (moving 0.3 % of the frame per frame, confidence changing),
/// 20 labels with translucent backgrounds, 15 lines, 15 markers (every style), 5 closed
/// polylines (2 filled translucent, spanning most of the frame), 4 rectangles, 1 timestamp.
fn parts(frame: usize) -> Vec<(&'static str, Vec<String>)> {
    let at = |i: usize, k: usize| ((i * 37 + k * 11) % 90) as f64 / 100.0;
    let drift = (frame % 30) as f64 * 0.003;
    let boxes = (0..40)
        .map(|i| {
            let (x, y) = (at(i, 0) + drift, at(i, 1) + drift / 2.0);
            format!(
                r#"{{"type":"bounding_box","rect":[{x},{y},{},{}],"label":"person","confidence":0.{:02},"track_id":{i}}}"#,
                x + 0.08,
                y + 0.15,
                50 + (i + frame) % 50
            )
        })
        .collect();
    let labels = (0..20)
        .map(|i| {
            format!(
                r##"{{"type":"label","text":"label {i}","at":[{},{}],"background":"#00000080"}}"##,
                at(i, 2),
                at(i, 3)
            )
        })
        .collect();
    let lines = (0..15)
        .map(|i| {
            format!(
                r#"{{"type":"line","from":[{},{}],"to":[{},{}],"thickness":3}}"#,
                at(i, 4),
                at(i, 5),
                at(i, 6),
                at(i, 7)
            )
        })
        .collect();
    let styles = [
        "cross", "plus", "diamond", "square", "triangle", "star", "circle",
    ];
    let markers = (0..15)
        .map(|i| {
            format!(
                r#"{{"type":"marker","at":[{},{}],"style":"{}"}}"#,
                at(i, 8),
                at(i, 9),
                styles[i % 7]
            )
        })
        .collect();
    let polylines = (0..5)
        .map(|i| {
            let fill = if i < 2 {
                r##","fill":true,"color":"#ffff0060""##
            } else {
                ""
            };
            format!(
                r#"{{"type":"polyline","points":[[{},{}],[{},{}],[{},{}],[{},{}]],"closed":true{fill}}}"#,
                at(i, 10), at(i, 11), at(i, 12), at(i, 13), at(i, 14), at(i, 15), at(i, 16), at(i, 17)
            )
        })
        .collect();
    let rects = (0..4)
        .map(|i| {
            format!(
                r##"{{"type":"rect","rect":[{},{},{},{}],"color":"#ff0000"}}"##,
                at(i, 18),
                at(i, 19),
                at(i, 18) + 0.1,
                at(i, 19) + 0.1
            )
        })
        .collect();
    let timestamp = vec![r#"{"type":"timestamp","time":"2026-11-30T07:15:09Z"}"#.to_owned()];
    vec![
        ("40 bounding boxes", boxes),
        ("20 translucent labels", labels),
        ("15 lines", lines),
        ("15 markers", markers),
        ("5 polylines, 2 filled translucent", polylines),
        ("4 rectangles", rects),
        ("1 timestamp", timestamp),
    ]
}

fn scene(parts: &[String]) -> Scene {
    let json = format!(r#"{{"annotations":[{}]}}"#, parts.join(","));
    Scene::from_json(&json).unwrap_or_else(|e| panic!("{e}"))
}

/// The 100 annotations of frame `frame`.
pub fn mixed_scene(frame: usize) -> Scene {
    let all: Vec<String> = parts(frame).into_iter().flat_map(|(_, p)| p).collect();
    scene(&all)
}

fn rendering(c: &mut Criterion) {
    let still = mixed_scene(0);
    assert_eq!(still.annotations.len(), 100);
    let stream: Vec<Scene> = (0..30).map(mixed_scene).collect();
    let mut frame =
        Frame::from_vec(vec![90u8; 1920 * 1080 * 3], PixelFormat::Bgr8, 1920, 1080).unwrap();
    c.bench_function("annotation/100 mixed on 1080p (layout + draw)", |b| {
        b.iter(|| FrameDriver::new(&mut frame).draw(&still, None).unwrap())
    });
    c.bench_function(
        "annotation/100 mixed on 1080p, detections moving every frame",
        |b| {
            let mut i = 0;
            b.iter(|| {
                i = (i + 1) % stream.len();
                FrameDriver::new(&mut frame).draw(&stream[i], None).unwrap()
            })
        },
    );
    c.bench_function("annotation/100 mixed on 1080p, from nothing", |b| {
        b.iter(|| {
            clear_caches();
            FrameDriver::new(&mut frame).draw(&still, None).unwrap()
        })
    });
    c.bench_function("annotation/100 mixed layout only", |b| {
        b.iter(|| lower(&still, 1920, 1080, None))
    });
    c.bench_function("annotation/scene JSON parse (100)", |b| {
        let json = still.to_json();
        b.iter(|| Scene::from_json(&json).unwrap())
    });
    for (kind, p) in parts(0) {
        let one = scene(&p);
        c.bench_function(&format!("annotation/by kind/{kind}"), |b| {
            b.iter(|| FrameDriver::new(&mut frame).draw(&one, None).unwrap())
        });
    }
}

criterion_group!(benches, rendering);
criterion_main!(benches);
