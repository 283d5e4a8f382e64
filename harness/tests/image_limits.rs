//! Image bombs: a PNG of a few dozen bytes that declares 100000x100000 pixels (40 GB) aborted
//! `telescope annotate` and `replay images:` with an allocation failure; a 10 MB label took
//! 100 s to draw. Both are refused up front with a one-line error.

use std::path::Path;
use std::process::{Command, Output};

fn crc32(bytes: &[u8]) -> u32 {
    let mut crc = 0xFFFF_FFFFu32;
    for b in bytes {
        crc ^= u32::from(*b);
        for _ in 0..8 {
            crc = if crc & 1 != 0 {
                (crc >> 1) ^ 0xEDB8_8320
            } else {
                crc >> 1
            };
        }
    }
    !crc
}

/// A PNG whose header declares `width`x`height` RGB pixels, with one tiny IDAT.
fn png_declaring(path: &Path, width: u32, height: u32) {
    let mut out = b"\x89PNG\r\n\x1a\n".to_vec();
    let mut chunk = |kind: &[u8], data: &[u8]| {
        out.extend_from_slice(&(data.len() as u32).to_be_bytes());
        let mut body = kind.to_vec();
        body.extend_from_slice(data);
        out.extend_from_slice(&body);
        out.extend_from_slice(&crc32(&body).to_be_bytes());
    };
    let mut ihdr = width.to_be_bytes().to_vec();
    ihdr.extend_from_slice(&height.to_be_bytes());
    ihdr.extend_from_slice(&[8, 2, 0, 0, 0]);
    chunk(b"IHDR", &ihdr);
    chunk(
        b"IDAT",
        &[
            0x78, 0x01, 0x01, 0x00, 0x00, 0xFF, 0xFF, 0x00, 0x00, 0x00, 0x01,
        ],
    );
    chunk(b"IEND", &[]);
    std::fs::write(path, out).unwrap();
}

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
    png_declaring(&bomb, 100_000, 100_000);
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
