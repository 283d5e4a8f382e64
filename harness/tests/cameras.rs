//! Several cameras through the simulated node: every frame accounted for in report.json, the
//! same seed reproducing the same report, `{camera}` expanding per camera.

use std::path::Path;
use std::process::Command;

use testkit::{assert_one_line_error, probe};

const VTEST: &str = "/usr/share/doc/opencv-doc/examples/data/vtest.avi";

fn replay(args: &[&str]) -> serde_json::Value {
    let output = Command::new(env!("CARGO_BIN_EXE_telescope"))
        .arg("replay")
        .args(args)
        .output()
        .expect("the telescope binary runs");
    assert!(
        output.status.success(),
        "replay failed: {}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    let dir = args
        .iter()
        .position(|a| *a == "--report")
        .map(|i| args[i + 1])
        .expect("--report DIR");
    serde_json::from_slice(&std::fs::read(Path::new(dir).join("report.json")).unwrap()).unwrap()
}

fn accounted(camera: &serde_json::Value) {
    let n = |k: &str| {
        camera[k]
            .as_u64()
            .unwrap_or_else(|| panic!("{k} in {camera}"))
    };
    let dropped: u64 = camera["dropped"]
        .as_object()
        .unwrap()
        .values()
        .map(|v| v.as_u64().unwrap())
        .sum();
    assert_eq!(
        n("frames_in"),
        n("camera_lost") + n("superseded") + n("pending") + n("frames_put"),
        "{camera}"
    );
    assert_eq!(n("frames_put"), n("frames_pushed") + dropped, "{camera}");
}

#[test]
fn four_cameras_of_vtest_on_a_virtual_clock_account_for_every_frame() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("cam-{camera}.mkv");
    let report_dir = dir.path().join("report");
    let report = replay(&[
        VTEST,
        "--cameras",
        "4",
        "--sink",
        &format!("file:{}", out.display()),
        "--virtual-clock",
        "--jitter-ms",
        "20",
        "--drop",
        "0.02",
        "--app-ms",
        "60:20",
        "--duration",
        "20s",
        "--seed",
        "5",
        "--report",
        report_dir.to_str().unwrap(),
    ]);
    assert_eq!(report["schema_version"], 1);
    let cameras = report["cameras"].as_array().unwrap();
    assert_eq!(cameras.len(), 4);
    for (i, c) in cameras.iter().enumerate() {
        accounted(c);
        assert_eq!(c["name"], i.to_string());
        // 20 s of 10 fps footage; the app (60 ms per iteration) keeps up with 10 fps.
        let frames_in = c["frames_in"].as_u64().unwrap();
        assert!((199..=202).contains(&frames_in), "{c}");
        assert!(c["camera_lost"].as_u64().unwrap() > 0, "{c}");
        let file = dir.path().join(format!("cam-{i}.mkv"));
        let p = probe(&file);
        assert_eq!((p.width, p.height, p.rate.as_str()), (768, 576, "10/1"));
        assert_eq!(p.frames, c["frames_out"].as_u64().unwrap(), "{c}");
        let p50 = c["input_interval_ms"]["p50"].as_f64().unwrap();
        assert!((80.0..=120.0).contains(&p50), "{c}");
    }
    // Cameras have their own seeds: their timing differs.
    assert_ne!(
        cameras[0]["input_interval_ms"],
        cameras[1]["input_interval_ms"]
    );
}

/// Everything in the report except what depends on the machine's speed.
fn stable(report: &serde_json::Value) -> serde_json::Value {
    let mut r = report.clone();
    for volatile in ["wall_seconds", "process", "timeline"] {
        r[volatile] = serde_json::Value::Null;
    }
    for c in r["cameras"].as_array_mut().unwrap() {
        c["put_latency_us"] = serde_json::Value::Null;
        c["put_latency_histogram_us"] = serde_json::Value::Null;
    }
    r
}

#[test]
fn the_same_seed_gives_the_same_report_and_another_seed_does_not() {
    let dir = tempfile::tempdir().unwrap();
    let run = |seed: &str, name: &str| {
        let report_dir = dir.path().join(name);
        let out = dir.path().join(format!("{name}-{{camera}}.mkv"));
        replay(&[
            "pattern:ball@160x120@30",
            "pattern:smpte@160x120@25",
            "--sink",
            &format!("file:{}", out.display()),
            "--fps",
            "30",
            "--camera-fps",
            "29.97",
            "--virtual-clock",
            "--jitter-ms",
            "15",
            "--jitter-dist",
            "normal",
            "--drop",
            "0.03",
            "--drop-burst",
            "2",
            "--stall-every",
            "5",
            "--stall-ms",
            "800",
            "--app-ms",
            "30:15",
            "--duration",
            "12",
            "--seed",
            seed,
            "--report",
            report_dir.to_str().unwrap(),
        ])
    };
    let a = run("42", "a");
    let b = run("42", "b");
    let c = run("43", "c");
    assert_eq!(stable(&a), stable(&b));
    assert_ne!(stable(&a), stable(&c));
    for cam in a["cameras"].as_array().unwrap() {
        accounted(cam);
        assert!(cam["superseded"].as_u64().unwrap() > 0, "a slow app: {cam}");
        assert!(cam["cached_iterations"].as_u64().unwrap() > 0, "{cam}");
    }
}

#[test]
fn graph_cameras_name_the_streams_and_inconsistent_graphs_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let graph = dir.path().join("graph.json");
    let text = r#"{"nodeGraph":{"packages":[{"name":"1::APP"},{"name":"panorama::abstract_rtsp_media_source"}],
      "nodes":[{"name":"door","interface":"panorama::abstract_rtsp_media_source.rtsp_v1_interface"},
               {"name":"yard","interface":"panorama::abstract_rtsp_media_source.rtsp_v1_interface"},
               {"name":"code","interface":"1::APP.interface"}],
      "edges":[{"producer":"door.video_out","consumer":"code.video_in"},
               {"producer":"yard.video_out","consumer":"code.video_in"}]}}"#;
    std::fs::write(&graph, text).unwrap();
    let report_dir = dir.path().join("r");
    let report = replay(&[
        "pattern:ball@64x48@10",
        "--graph",
        graph.to_str().unwrap(),
        "--sink",
        &format!("file:{}/{{camera}}.mkv", dir.path().display()),
        "--virtual-clock",
        "--duration",
        "3",
        "--report",
        report_dir.to_str().unwrap(),
    ]);
    let names: Vec<&str> = report["cameras"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["door", "yard"]);
    assert!(dir.path().join("door.mkv").exists() && dir.path().join("yard.mkv").exists());

    std::fs::write(
        &graph,
        text.replace("code.video_in\"},", "ghost.video_in\"},"),
    )
    .unwrap();
    let output = Command::new(env!("CARGO_BIN_EXE_telescope"))
        .args([
            "replay",
            "pattern:ball",
            "--graph",
            graph.to_str().unwrap(),
            "--sink",
            "file:/tmp/never.mkv",
        ])
        .output()
        .unwrap();
    assert_one_line_error(&output, "`ghost` does not exist");
}

#[test]
fn a_scene_is_drawn_on_every_streamed_frame() {
    let dir = tempfile::tempdir().unwrap();
    let scene = dir.path().join("scene.json");
    std::fs::write(
        &scene,
        r##"{"annotations":[{"type":"rect","rect":[0.25,0.25,0.75,0.75],"color":"#ffffff","fill":true},
            {"type":"timestamp"}]}"##,
    )
    .unwrap();
    let out = dir.path().join("out.mkv");
    let report_dir = dir.path().join("r");
    let report = replay(&[
        "pattern:black@160x120@10",
        "--sink",
        &format!("file:{}", out.display()),
        "--scene",
        scene.to_str().unwrap(),
        "--virtual-clock",
        "--duration",
        "3",
        "--report",
        report_dir.to_str().unwrap(),
    ]);
    let frames = report["cameras"][0]["frames_out"].as_u64().unwrap();
    assert!(frames >= 29, "{report}");
    let mut decoded = simulator::Footage::open(&out).unwrap();
    let mut n = 0;
    while let Some(f) = decoded.next_frame().unwrap() {
        let px = |x: usize, y: usize| f.data()[y * f.stride() + x * 3];
        // Inside the box white, outside black (H.264 moves values a little).
        assert!(px(80, 60) > 230, "frame {n}: {}", px(80, 60));
        assert!(px(20, 100) < 30, "frame {n}: {}", px(20, 100));
        n += 1;
    }
    assert_eq!(n, frames);
}

/// `--annotate` runs the sample app in the node: the moving ball of a test pattern gets a green
/// box on (almost) every frame of the file, and the report says what the app did.
#[test]
fn the_sample_app_boxes_what_moves() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out.mkv");
    let report_dir = dir.path().join("r");
    let report = replay(&[
        "pattern:ball@160x120@10",
        "--annotate",
        "--sink",
        &format!("file:{}", out.display()),
        "--virtual-clock",
        "--duration",
        "3",
        "--report",
        report_dir.to_str().unwrap(),
    ]);
    let camera = &report["cameras"][0];
    let app = &report["app"];
    assert_eq!(app["name"], "motion", "{report}");
    assert_eq!(app["frames"], camera["frames_put"], "{report}");
    assert_eq!(app["errors"], 0, "{report}");
    let frames = camera["frames_out"].as_u64().unwrap();
    // The first frame only starts the background.
    assert!(app["boxes"].as_u64().unwrap() >= frames - 1, "{report}");
    let mut decoded = simulator::Footage::open(&out).unwrap();
    let mut boxed = 0;
    while let Some(f) = decoded.next_frame().unwrap() {
        let green = f
            .data()
            .chunks_exact(3)
            .filter(|p| p[1] > 150 && p[0] < 100 && p[2] < 100)
            .count();
        if green >= 40 {
            boxed += 1;
        }
    }
    assert!(boxed >= frames - 1, "{boxed} of {frames} frames boxed");
}

#[test]
fn annotate_draws_on_images_and_video_frames_and_rejects_bad_scenes() {
    let dir = tempfile::tempdir().unwrap();
    let scene = dir.path().join("scene.json");
    std::fs::write(
        &scene,
        r##"{"annotations":[{"type":"bounding_box","rect":[0.3,0.4,0.4,0.6],"label":"person","confidence":0.9},
            {"type":"label","text":"","at":[0,0]}]}"##,
    )
    .unwrap();
    let run = |args: &[&str]| {
        Command::new(env!("CARGO_BIN_EXE_telescope"))
            .arg("annotate")
            .args(args)
            .output()
            .unwrap()
    };
    let out = dir.path().join("frame.png");
    let o = run(&[
        "--image",
        VTEST,
        "--frame",
        "5",
        "--scene",
        scene.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert!(String::from_utf8_lossy(&o.stdout).contains("drew 1 of 2 annotations on 768x576"));
    assert!(String::from_utf8_lossy(&o.stderr).contains("annotation 1 drew nothing: empty text"));
    let image = telescope::images::read_png(&out).unwrap();
    assert_eq!((image.width(), image.height()), (768, 576));
    // And on the PNG just written.
    let again = dir.path().join("again.png");
    let o = run(&[
        "--image",
        out.to_str().unwrap(),
        "--scene",
        scene.to_str().unwrap(),
        "--out",
        again.to_str().unwrap(),
    ]);
    assert!(o.status.success());

    let bad = dir.path().join("bad.json");
    let bad_scenes: [(&[u8], &str); 3] = [
        (
            b"{\"annotations\": [\n  {\"type\": \"rect\", \"rect\": [0.5, 0.5, 0.1, 0.9]}\n]}",
            "inverted",
        ),
        (
            b"{\"annotations\": [\n  {\"type\": \"rect\", \"rect\": [0, 0, 1,]}\n]}",
            "line 2 column",
        ),
        (b"{\"annotations\": [\xff]}", "not UTF-8"),
    ];
    for (content, needle) in bad_scenes {
        std::fs::write(&bad, content).unwrap();
        let o = run(&[
            "--image",
            out.to_str().unwrap(),
            "--scene",
            bad.to_str().unwrap(),
            "--out",
            again.to_str().unwrap(),
        ]);
        assert_one_line_error(&o, needle);
    }
    let o = run(&[
        "--image",
        VTEST,
        "--frame",
        "100000",
        "--scene",
        scene.to_str().unwrap(),
        "--out",
        again.to_str().unwrap(),
    ]);
    assert_one_line_error(&o, "there is no frame 100000");
}

#[test]
fn the_hdmi_picture_tiles_every_camera_into_its_own_stream() {
    let dir = tempfile::tempdir().unwrap();
    let hdmi = dir.path().join("hdmi.mkv");
    let report_dir = dir.path().join("r");
    replay(&[
        "pattern:white@64x48@10",
        "pattern:black@64x48@10",
        "--sink",
        &format!("file:{}/{{camera}}.mkv", dir.path().display()),
        "--hdmi",
        &format!("file:{}", hdmi.display()),
        "--hdmi-size",
        "320x240",
        "--virtual-clock",
        "--duration",
        "3",
        "--report",
        report_dir.to_str().unwrap(),
    ]);
    let p = probe(&hdmi);
    assert_eq!((p.width, p.height), (320, 240));
    let mut decoded = simulator::Footage::open(&hdmi).unwrap();
    let f = decoded.next_frame().unwrap().expect("a frame");
    // Two cameras tile side by side: the white camera left, the black one right.
    let px = |x: usize, y: usize| f.data()[y * f.stride() + x * 3];
    assert!(px(80, 120) > 200, "{}", px(80, 120));
    assert!(px(240, 120) < 50, "{}", px(240, 120));
}
