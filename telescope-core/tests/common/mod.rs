//! Helpers shared by the integration tests: synthetic frames and ffprobe.
#![allow(dead_code)]

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use telescope::{Frame, PixelFormat};

/// A BGR frame whose content changes with `n` (so the encoder has something to encode).
pub fn bgr_frame(width: u32, height: u32, n: u64, at: Duration) -> Frame {
    let mut data = vec![0u8; (width * height * 3) as usize];
    for (i, px) in data.chunks_exact_mut(3).enumerate() {
        let x = (i as u32 % width) as u64;
        let y = (i as u32 / width) as u64;
        px[0] = ((x + n * 4) % 256) as u8;
        px[1] = ((y + n * 2) % 256) as u8;
        px[2] = ((x + y + n) % 256) as u8;
    }
    Frame::from_vec(data, PixelFormat::Bgr8, width, height)
        .unwrap()
        .at(at)
}

/// What ffprobe says about a file's first video stream.
#[derive(Debug, Clone, PartialEq)]
pub struct Probe {
    pub frames: u64,
    pub width: u32,
    pub height: u32,
    pub rate: String,
    pub codec: String,
    pub duration: f64,
}

/// Count decoded frames and read size, rate, codec and duration with ffprobe.
pub fn probe(path: &Path) -> Probe {
    let out = Command::new("ffprobe")
        .args([
            "-v",
            "error",
            "-count_frames",
            "-select_streams",
            "v:0",
            "-show_entries",
        ])
        .arg("stream=nb_read_frames,width,height,r_frame_rate,codec_name:format=duration")
        .args(["-of", "json"])
        .arg(path)
        .output()
        .expect("ffprobe runs (ci/setup installs ffmpeg)");
    assert!(
        out.status.success(),
        "ffprobe failed on {}: {}",
        path.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let s = &v["streams"][0];
    Probe {
        frames: s["nb_read_frames"].as_str().unwrap_or("0").parse().unwrap(),
        width: s["width"].as_u64().unwrap() as u32,
        height: s["height"].as_u64().unwrap() as u32,
        rate: s["r_frame_rate"].as_str().unwrap().to_owned(),
        codec: s["codec_name"].as_str().unwrap().to_owned(),
        duration: v["format"]["duration"]
            .as_str()
            .unwrap_or("0")
            .parse()
            .unwrap(),
    }
}
