//! Every annotation type and option, drawn on a fixed background and on a real frame, compared
//! with the snapshots in `golden/snapshots/`.

use std::path::Path;

use golden::{background, compare, render, Golden, GoldenError, Outcome, Tolerance};
use rand::{Rng, SeedableRng};
use telescope::annotation::Scene;
use telescope::{Frame, PixelFormat};

const VTEST: &str = "/usr/share/doc/opencv-doc/examples/data/vtest.avi";

fn scene(json: &str) -> Scene {
    Scene::from_json(json).unwrap_or_else(|e| panic!("{e}\n{json}"))
}

/// One scene per annotation type and option.
fn cases() -> Vec<(&'static str, Scene)> {
    vec![
        (
            "label_default",
            scene(r#"{"annotations":[{"type":"label","text":"hello","at":[0.1,0.1]}]}"#),
        ),
        (
            "label_options",
            scene(
                r##"{"annotations":[
            {"type":"label","text":"top-left","at":[0.5,0.2],"color":"#ffffff","background":"#000080"},
            {"type":"label","text":"bottom-left","at":[0.5,0.5],"anchor":"bottom_left","color":"yellow","size":0.06},
            {"type":"label","text":"center","at":[0.5,0.7],"anchor":"center","color":"#ff00ff","background":"#ffffff80"},
            {"type":"label","text":"translucent","at":[0.05,0.85],"color":"#ffffff80","size":0.05},
            {"type":"label","text":"clipped at the right edge","at":[0.8,0.05]}]}"##,
            ),
        ),
        (
            "rect",
            scene(
                r##"{"annotations":[
            {"type":"rect","rect":[0.05,0.05,0.3,0.3]},
            {"type":"rect","rect":[0.35,0.05,0.6,0.3],"color":"#ff0000","thickness":6},
            {"type":"rect","rect":[0.65,0.05,0.95,0.3],"color":"#0000ff","fill":true},
            {"type":"rect","rect":[0.2,0.4,0.8,0.9],"color":"#ffff0080","fill":true}]}"##,
            ),
        ),
        (
            "line",
            scene(
                r##"{"annotations":[
            {"type":"line","from":[0,0],"to":[1,1]},
            {"type":"line","from":[0,1],"to":[1,0],"color":"#ff8000","thickness":8},
            {"type":"line","from":[0.1,0.5],"to":[0.9,0.5],"color":"#ffffff60","thickness":12}]}"##,
            ),
        ),
        (
            "markers",
            scene(
                r##"{"annotations":[
            {"type":"marker","at":[0.15,0.3],"style":"cross"},
            {"type":"marker","at":[0.3,0.3],"style":"plus","color":"#ff0000"},
            {"type":"marker","at":[0.45,0.3],"style":"diamond","color":"#ffffff"},
            {"type":"marker","at":[0.6,0.3],"style":"square","color":"#0000ff"},
            {"type":"marker","at":[0.75,0.3],"style":"triangle","color":"#ffff00"},
            {"type":"marker","at":[0.15,0.7],"style":"star","size":0.08,"color":"#ff00ff"},
            {"type":"marker","at":[0.45,0.7],"style":"circle","size":0.06},
            {"type":"marker","at":[0.75,0.7],"style":"star","size":0.05,"color":"#00ffff80"}]}"##,
            ),
        ),
        (
            "polyline",
            scene(
                r##"{"annotations":[
            {"type":"polyline","points":[[0.05,0.9],[0.2,0.5],[0.35,0.8],[0.45,0.2]]},
            {"type":"polyline","points":[[0.55,0.1],[0.95,0.1],[0.95,0.45],[0.55,0.45]],"closed":true,"color":"#ff0000","thickness":3},
            {"type":"polyline","points":[[0.55,0.55],[0.95,0.6],[0.75,0.95]],"fill":true,"color":"#0000ff"},
            {"type":"polyline","points":[[0.5,0.5],[0.9,0.9],[0.9,0.5],[0.5,0.9]],"fill":true,"color":"#ffffff80"}]}"##,
            ),
        ),
        (
            "timestamp",
            scene(
                r##"{"annotations":[
            {"type":"timestamp","time":"2026-11-30T07:15:09Z"},
            {"type":"timestamp","time":"2026-11-30T07:15:09Z","format":"[hour]:[minute]:[second]","at":[0.6,0.85],"color":"#ffff00","size":0.06},
            {"type":"timestamp","time":"2026-11-30T07:15:09+01:00","format":"[day].[month].[year] [offset_hour sign:mandatory]","at":[0.05,0.5],"background":"#ffffff","color":"#000000"}]}"##,
            ),
        ),
        (
            "bounding_box",
            scene(
                r##"{"annotations":[
            {"type":"bounding_box","rect":[0.1,0.3,0.35,0.9],"label":"person","confidence":0.93},
            {"type":"bounding_box","rect":[0.4,0.0,0.6,0.4],"label":"at the top","track_id":7},
            {"type":"bounding_box","rect":[0.65,0.35,0.9,0.6],"track_id":12},
            {"type":"bounding_box","rect":[0.65,0.7,0.95,0.95],"confidence":0.5,"color":"#ffffff"}]}"##,
            ),
        ),
        (
            "out_of_range",
            scene(
                r##"{"annotations":[
            {"type":"rect","rect":[-0.2,-0.2,0.3,0.3],"color":"#ff0000","thickness":4},
            {"type":"line","from":[-0.5,0.5],"to":[1.5,0.6]},
            {"type":"marker","at":[1.4,1.2],"style":"square","size":0.05},
            {"type":"label","text":"far away","at":[3.0,-2.0],"background":"#000000"},
            {"type":"bounding_box","rect":[0.7,0.7,1.3,1.3],"label":"partly outside"}]}"##,
            ),
        ),
    ]
}

fn check(golden: &Golden, name: &str, image: &Frame) -> Option<String> {
    match golden.check(name, image) {
        Ok(Outcome::Matched(_)) | Ok(Outcome::Accepted) => None,
        Err(e) => Some(e.to_string()),
    }
}

#[test]
fn every_annotation_type_matches_its_snapshot() {
    let golden = Golden::new();
    let bg = background(320, 240);
    let failures: Vec<String> = cases()
        .iter()
        .filter_map(|(name, scene)| check(&golden, name, &render(scene, &bg).unwrap()))
        .collect();
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn gray_frames_draw_in_luma() {
    let bg = Frame::from_vec(
        (0..160u32 * 120).map(|i| (i % 160) as u8).collect(),
        PixelFormat::Gray8,
        160,
        120,
    )
    .unwrap();
    let (_, scene) = &cases()[7];
    let image = render(scene, &bg).unwrap();
    assert_eq!(check(&Golden::new(), "gray_bounding_box", &image), None);
}

/// The first frame of vtest.avi (decoded by GStreamer).
fn vtest_frame() -> Frame {
    let mut footage = simulator::Footage::open(Path::new(VTEST)).expect("vtest.avi (run ci/setup)");
    footage.next_frame().unwrap().expect("a frame")
}

#[test]
fn detections_on_a_real_frame_match() {
    let scene = scene(
        r##"{"annotations":[
        {"type":"bounding_box","rect":[0.325,0.37,0.38,0.54],"label":"person","confidence":0.91,"track_id":1},
        {"type":"bounding_box","rect":[0.825,0.405,0.9,0.565],"label":"person","confidence":0.77,"track_id":2},
        {"type":"bounding_box","rect":[0.655,0.265,0.695,0.41],"label":"person","confidence":0.64,"track_id":3},
        {"type":"polyline","points":[[0.0,0.95],[0.35,0.6],[0.65,0.6],[1.0,0.95]],"color":"#ffff0060","fill":true},
        {"type":"line","from":[0.0,0.75],"to":[1.0,0.75],"color":"#ff0000","thickness":2},
        {"type":"label","text":"entry line","at":[0.01,0.74],"anchor":"bottom_left","color":"#ff0000"},
        {"type":"timestamp","time":"2026-11-30T07:15:09Z"}]}"##,
    );
    let image = render(&scene, &vtest_frame()).unwrap();
    assert_eq!(check(&Golden::new(), "vtest_detections", &image), None);
}

/// The check is only worth something if it fails when a drawing moves, and passes when a few
/// pixels change slightly.
#[test]
fn a_moved_box_fails_and_rasterization_noise_passes() {
    let dir = tempfile::tempdir().unwrap();
    let golden = Golden {
        snapshots: Golden::new().snapshots,
        reports: dir.path().join("reports"),
        tolerance: Tolerance::default(),
        accept: false,
    };
    let bg = background(320, 240);
    let json = |x0: f64| {
        format!(
            r#"{{"annotations":[{{"type":"bounding_box","rect":[{x0},0.3,{},0.9],"label":"person","confidence":0.93}}]}}"#,
            x0 + 0.25
        )
    };
    let original = render(&scene(&json(0.1)), &bg).unwrap();
    let moved = render(&scene(&json(0.12)), &bg).unwrap();
    // Compared in memory: nothing is written into snapshots/ by this test.
    let d = compare(&moved, &original, golden.tolerance);
    assert!(!d.within(golden.tolerance), "{d}");
    let mut noisy = original.clone();
    let mut rng = rand::rngs::StdRng::seed_from_u64(7);
    let len = noisy.data().len();
    for _ in 0..60 {
        let i = rng.random_range(0..len);
        noisy.data_mut()[i] = noisy.data()[i].saturating_add(rng.random_range(1..=60));
    }
    let d = compare(&noisy, &original, golden.tolerance);
    assert!(d.within(golden.tolerance), "{d}");
    // And through the snapshot on disk: a mismatch leaves actual/expected/diff for review.
    let snapshots = dir.path().join("snapshots");
    std::fs::create_dir_all(&snapshots).unwrap();
    let golden = Golden {
        snapshots: snapshots.clone(),
        ..golden
    };
    assert!(matches!(
        golden.check("box", &original),
        Err(GoldenError::Missing { .. })
    ));
    std::fs::rename(snapshots.join("box.png.new"), snapshots.join("box.png")).unwrap();
    assert_eq!(
        golden
            .check("box", &noisy)
            .ok()
            .map(|o| matches!(o, Outcome::Matched(_))),
        Some(true)
    );
    match golden.check("box", &moved) {
        Err(GoldenError::Mismatch { difference, .. }) => assert!(difference.differing > 100),
        other => panic!("expected a mismatch, got {other:?}"),
    }
    for suffix in ["actual", "expected", "diff"] {
        assert!(dir
            .path()
            .join(format!("reports/box.{suffix}.png"))
            .exists());
    }
    assert_eq!(golden::pending(&snapshots).unwrap().len(), 1);
}
