//! Helpers shared by the integration tests: synthetic frames and ffprobe.
#![allow(dead_code)]

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

#[allow(unused_imports)]
pub use testkit::probe;
