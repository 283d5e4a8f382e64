//! Criterion benchmarks live in `benches/`; this library only hosts shared inputs.

use std::time::Duration;

use telescope::Rate;

/// Capture timestamps of `n` frames at `rate` with deterministic jitter of up to `jitter`
/// periods (a fixed linear-congruential sequence, so every run measures the same input).
pub fn jittered_times(rate: Rate, n: u64, jitter: f64) -> Vec<Duration> {
    let mut state = 0x2545_f491_4f6c_dd1du64;
    let period = rate.interval().as_secs_f64();
    (0..n)
        .map(|i| {
            state = state
                .wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(1_442_695_040_888_963_407);
            let u = (state >> 11) as f64 / (1u64 << 53) as f64 * 2.0 - 1.0;
            Duration::from_secs_f64(1.0 + i as f64 * period + u * jitter * period)
        })
        .collect()
}

/// A deterministic BGR test image (gradients), `width * height * 3` bytes.
pub fn test_image(width: u32, height: u32) -> Vec<u8> {
    let mut out = Vec::with_capacity(width as usize * height as usize * 3);
    for y in 0..height {
        for x in 0..width {
            out.extend_from_slice(&[(x % 256) as u8, (y % 256) as u8, ((x + y) % 256) as u8]);
        }
    }
    out
}
