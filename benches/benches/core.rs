//! Hot paths of telescope-core: the warmup estimator and wrapping frames.

use criterion::{criterion_group, criterion_main, BatchSize, Criterion};
use telescope::{Frame, PixelFormat, Rate, Warmup, WarmupConfig};

fn warmup(c: &mut Criterion) {
    let rate = Rate::new(30000, 1001).unwrap_or(Rate::whole(30).unwrap_or_else(|| unreachable!()));
    for (name, jitter) in [("warmup/exact", 0.0), ("warmup/jitter30", 0.3)] {
        let times = benches::jittered_times(rate, 100, jitter);
        c.bench_function(name, |b| {
            b.iter(|| {
                let mut w = Warmup::new(WarmupConfig::default());
                times
                    .iter()
                    .find_map(|t| w.observe(*t, 1280, 720))
                    .unwrap_or_else(|| w.finish_now())
            })
        });
    }
}

fn frame_wrap(c: &mut Criterion) {
    for (w, h) in [(640u32, 480u32), (1280, 720), (1920, 1080)] {
        let bytes = (w * h * 3) as usize;
        c.bench_function(&format!("frame/from_vec/{w}x{h}"), |b| {
            b.iter_batched(
                || vec![0u8; bytes],
                |data| Frame::from_vec(data, PixelFormat::Bgr8, w, h),
                BatchSize::LargeInput,
            )
        });
    }
}

criterion_group!(benches, warmup, frame_wrap);
criterion_main!(benches);
