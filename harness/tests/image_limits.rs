//! Image bombs: a PNG of a few dozen bytes that declares 100000x100000 pixels (40 GB) aborted
//! `telescope annotate` and `replay images:` with an allocation failure; a 10 MB label took
//! 100 s to draw. Both are refused up front with a one-line error.

use std::process::{Command, Output};

fn telescope(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_telescope"))
        .args(args)
        .output()
        .unwrap()
}

#[test]
fn annotate_and_replay_refuse_image_bombs_with_one_line() {
    let dir = tempfile::tempdir().unwrap();
    let images = dir.path().join("images");
    std::fs::create_dir(&images).unwrap();
    let bomb = images.join("bomb.png");
    std::fs::write(&bomb, testkit::png_declaring(100_000, 100_000)).unwrap();
    let scene = dir.path().join("scene.json");
    std::fs::write(&scene, r#"{"annotations":[]}"#).unwrap();
    let out = dir.path().join("out.png");
    let o = telescope(&[
        "annotate",
        "--image",
        bomb.to_str().unwrap(),
        "--scene",
        scene.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
    ]);
    testkit::assert_one_line_error(&o, "declares 100000x100000 pixels");

    // The same header in a JPEG, refused before GStreamer's decoder sees it.
    let jpeg = dir.path().join("bomb.jpg");
    let mut bytes = vec![
        0xFF, 0xD8, 0xFF, 0xC0, 0x00, 0x11, 0x08, 0xEA, 0x60, 0xEA, 0x60, 3,
    ];
    bytes.extend_from_slice(&[0; 9]);
    std::fs::write(&jpeg, bytes).unwrap();
    let o = telescope(&[
        "annotate",
        "--image",
        jpeg.to_str().unwrap(),
        "--scene",
        scene.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
    ]);
    testkit::assert_one_line_error(&o, "declares 60000x60000 pixels");

    let o = telescope(&[
        "replay",
        &format!("images:{}@10", images.display()),
        "--sink",
        &format!("file:{}", dir.path().join("out.mkv").display()),
        "--quiet",
    ]);
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert!(
        o.status.code().is_some(),
        "killed by a signal: {:?} {stderr}",
        o.status
    );
    assert!(stderr.contains("declares 100000x100000 pixels"), "{stderr}");
}

#[test]
fn annotate_refuses_a_ten_megabyte_label() {
    let dir = tempfile::tempdir().unwrap();
    let image = dir.path().join("small.png");
    let frame =
        telescope::Frame::from_vec(vec![0; 64 * 48 * 3], telescope::PixelFormat::Bgr8, 64, 48)
            .unwrap();
    telescope::images::write_png(&image, &frame).unwrap();
    let scene = dir.path().join("scene.json");
    std::fs::write(
        &scene,
        format!(
            r#"{{"annotations":[{{"type":"label","text":"{}","at":[0,0],"size":1.0}}]}}"#,
            "W".repeat(10_000_000)
        ),
    )
    .unwrap();
    let started = std::time::Instant::now();
    let o = telescope(&[
        "annotate",
        "--image",
        image.to_str().unwrap(),
        "--scene",
        scene.to_str().unwrap(),
        "--out",
        dir.path().join("out.png").to_str().unwrap(),
    ]);
    testkit::assert_one_line_error(&o, "more than the 1024 drawn");
    assert!(
        started.elapsed() < std::time::Duration::from_secs(20),
        "{:?}",
        started.elapsed()
    );
}
