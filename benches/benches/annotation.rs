//! Annotation rendering: 100 mixed annotations on a 1920x1080 BGR frame (target under 2 ms).

use criterion::{criterion_group, criterion_main, Criterion};
use telescope::annotation::layout::lower;
use telescope::annotation::opencv::FrameDriver;
use telescope::annotation::{Driver, Scene};
use telescope::{Frame, PixelFormat};

/// 100 annotations: 40 bounding boxes with captions, 20 labels, 15 lines, 15 markers, 5
/// polylines (2 filled translucent), 4 rectangles, 1 timestamp. Deterministic positions.
pub fn mixed_scene() -> Scene {
    let mut parts = Vec::new();
    let at = |i: usize, k: usize| ((i * 37 + k * 11) % 90) as f64 / 100.0;
    for i in 0..40 {
        parts.push(format!(
            r#"{{"type":"bounding_box","rect":[{},{},{},{}],"label":"person","confidence":0.{:02},"track_id":{i}}}"#,
            at(i, 0), at(i, 1), at(i, 0) + 0.08, at(i, 1) + 0.15, 50 + i
        ));
    }
    for i in 0..20 {
        parts.push(format!(
            r##"{{"type":"label","text":"label {i}","at":[{},{}],"background":"#00000080"}}"##,
            at(i, 2),
            at(i, 3)
        ));
    }
    for i in 0..15 {
        parts.push(format!(
            r#"{{"type":"line","from":[{},{}],"to":[{},{}],"thickness":3}}"#,
            at(i, 4),
            at(i, 5),
            at(i, 6),
            at(i, 7)
        ));
    }
    let styles = [
        "cross", "plus", "diamond", "square", "triangle", "star", "circle",
    ];
    for i in 0..15 {
        parts.push(format!(
            r#"{{"type":"marker","at":[{},{}],"style":"{}"}}"#,
            at(i, 8),
            at(i, 9),
            styles[i % 7]
        ));
    }
    for i in 0..5 {
        let fill = if i < 2 {
            r##","fill":true,"color":"#ffff0060""##
        } else {
            ""
        };
        parts.push(format!(
            r#"{{"type":"polyline","points":[[{},{}],[{},{}],[{},{}],[{},{}]],"closed":true{fill}}}"#,
            at(i, 10), at(i, 11), at(i, 12), at(i, 13), at(i, 14), at(i, 15), at(i, 16), at(i, 17)
        ));
    }
    for i in 0..4 {
        parts.push(format!(
            r##"{{"type":"rect","rect":[{},{},{},{}],"color":"#ff0000"}}"##,
            at(i, 18),
            at(i, 19),
            at(i, 18) + 0.1,
            at(i, 19) + 0.1
        ));
    }
    parts.push(r#"{"type":"timestamp","time":"2026-11-30T07:15:09Z"}"#.to_owned());
    let json = format!(r#"{{"annotations":[{}]}}"#, parts.join(","));
    Scene::from_json(&json).unwrap_or_else(|e| panic!("{e}"))
}

fn rendering(c: &mut Criterion) {
    let scene = mixed_scene();
    assert_eq!(scene.annotations.len(), 100);
    let mut frame =
        Frame::from_vec(vec![90u8; 1920 * 1080 * 3], PixelFormat::Bgr8, 1920, 1080).unwrap();
    c.bench_function("annotation/100 mixed on 1080p (layout + draw)", |b| {
        b.iter(|| FrameDriver::new(&mut frame).draw(&scene, None).unwrap())
    });
    c.bench_function("annotation/100 mixed layout only", |b| {
        b.iter(|| lower(&scene, 1920, 1080, None))
    });
    c.bench_function("annotation/scene JSON parse (100)", |b| {
        let json = scene.to_json();
        b.iter(|| Scene::from_json(&json).unwrap())
    });
}

criterion_group!(benches, rendering);
criterion_main!(benches);
