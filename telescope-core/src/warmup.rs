//! Infer the frame rate and size of a stream from its first frames' capture timestamps.
//!
//! Cameras deliver frames late, in bursts, or not at all, so consecutive intervals are a poor
//! guide. The estimator looks for the period whose grid the timestamps sit on best (a circular
//! periodogram searched around the median interval, which ignores dropped frames and tolerates
//! jitter), numbers the frames on that grid, and fits a line through (frame number, timestamp)
//! with outliers trimmed. The fit's standard error says when the estimate is good enough; the
//! result snaps to a common rate (24000/1001, 25, 30000/1001, ...) when one is within tolerance.

use std::time::Duration;

use crate::rate::Rate;

/// Tuning of the warmup; the defaults suit cameras from 1 to 120 fps.
#[derive(Debug, Clone, PartialEq)]
pub struct WarmupConfig {
    /// Never look at more than this many frames (default 100).
    pub max_frames: usize,
    /// Never look at more than this much capture time (default 3 s): a slow or irregular
    /// camera streams with the best estimate by then rather than keep viewers waiting. A
    /// small rate error is harmless: the output timeline follows the capture times.
    pub max_duration: Duration,
    /// Never finish before this many frames (default 8).
    pub min_frames: usize,
    /// Finish once the relative standard error of the period is below this (default 0.002).
    pub precision: f64,
    /// Finish only after this many consecutive estimates agree (default 4).
    pub stable_frames: usize,
    /// Snap to a common rate within this relative distance (default 0.005).
    pub snap_tolerance: f64,
    /// Rate to use when the timestamps carry no usable timing at all (default 15).
    pub fallback: Rate,
    /// Frames kept while warming up, in bytes, to be streamed once it ends (default 64 MiB);
    /// reaching it ends the warmup with the best estimate so far, so no frame is dropped.
    pub memory_budget: usize,
}

impl Default for WarmupConfig {
    fn default() -> Self {
        WarmupConfig {
            max_frames: 100,
            max_duration: Duration::from_secs(3),
            min_frames: 8,
            precision: 0.002,
            stable_frames: 4,
            snap_tolerance: 0.005,
            fallback: Rate::new(15, 1).unwrap_or(Rate::new(1, 1).expect("1/1 is a rate")),
            memory_budget: 64 << 20,
        }
    }
}

/// What the warmup found.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct WarmupEstimate {
    /// The frame rate.
    pub rate: Rate,
    /// Frame width in pixels.
    pub width: u32,
    /// Frame height in pixels.
    pub height: u32,
    /// Frames observed before the estimate was settled.
    pub frames: usize,
    /// The rate before snapping, in frames per second.
    pub measured_fps: f64,
    /// Relative standard error of the measured period.
    pub relative_error: f64,
    /// Whether the rate came from the configuration instead of measurement.
    pub configured: bool,
}

/// The incremental estimator. Feed it frames with [`Warmup::observe`] until it returns `Some`.
#[derive(Debug, Clone)]
pub struct Warmup {
    config: WarmupConfig,
    known_rate: Option<Rate>,
    known_size: Option<(u32, u32)>,
    size: Option<(u32, u32)>,
    origin: Option<Duration>,
    times: Vec<f64>,
    recent: Vec<Rate>,
    done: Option<WarmupEstimate>,
}

impl Warmup {
    /// An estimator that measures both rate and size.
    pub fn new(config: WarmupConfig) -> Self {
        Self::with_known(config, None, None)
    }

    /// An estimator for which some facts are already known; with both it finishes at once.
    pub fn with_known(config: WarmupConfig, rate: Option<Rate>, size: Option<(u32, u32)>) -> Self {
        Warmup {
            config,
            known_rate: rate,
            known_size: size,
            size,
            origin: None,
            times: Vec::new(),
            recent: Vec::new(),
            done: None,
        }
    }

    /// The warmup needs no frames at all: both rate and size are configured.
    pub fn is_skipped(&self) -> bool {
        self.known_rate.is_some() && self.known_size.is_some()
    }

    /// The final estimate, once there is one.
    pub fn estimate(&self) -> Option<WarmupEstimate> {
        self.done
    }

    /// Frames observed so far.
    pub fn frames(&self) -> usize {
        self.times.len()
    }

    /// Record one frame; returns the final estimate when the warmup has finished.
    pub fn observe(
        &mut self,
        captured_at: Duration,
        width: u32,
        height: u32,
    ) -> Option<WarmupEstimate> {
        if self.done.is_some() {
            return self.done;
        }
        if self.size.is_none() {
            self.size = Some((width, height));
        }
        let origin = *self.origin.get_or_insert(captured_at);
        let t = if captured_at >= origin {
            (captured_at - origin).as_secs_f64()
        } else {
            -(origin - captured_at).as_secs_f64()
        };
        self.times.push(t);
        let (w, h) = self.size.unwrap_or((width, height));

        if let Some(rate) = self.known_rate {
            return Some(self.finish_estimate(rate, rate.fps(), 0.0, true, w, h));
        }
        let n = self.times.len();
        let fit = fit_period(&self.times);
        if let Some(fit) = fit {
            let candidate = self.choose_rate(fit.period, fit.relative_error);
            self.recent.push(candidate);
            let agree = self.recent.len() >= self.config.stable_frames
                && self.recent[self.recent.len() - self.config.stable_frames..]
                    .iter()
                    .all(|r| *r == candidate);
            if n >= self.config.min_frames && fit.relative_error <= self.config.precision && agree {
                return Some(self.finish_estimate(
                    candidate,
                    1.0 / fit.period,
                    fit.relative_error,
                    false,
                    w,
                    h,
                ));
            }
        } else {
            self.recent.clear();
        }
        let waited = self.times.iter().copied().fold(0.0, f64::max);
        if n >= self.config.max_frames
            || (n >= 2 && waited >= self.config.max_duration.as_secs_f64())
        {
            return Some(self.finish_now());
        }
        None
    }

    /// End the warmup with the best estimate so far (for example when the stream stops early).
    pub fn finish_now(&mut self) -> WarmupEstimate {
        if let Some(done) = self.done {
            return done;
        }
        let (w, h) = self.size.unwrap_or((0, 0));
        if let Some(rate) = self.known_rate {
            return self.finish_estimate(rate, rate.fps(), 0.0, true, w, h);
        }
        match fit_period(&self.times) {
            Some(fit) => {
                let rate = self.choose_rate(fit.period, fit.relative_error);
                self.finish_estimate(rate, 1.0 / fit.period, fit.relative_error, false, w, h)
            }
            None if self.times.len() >= 2 => {
                // Too few frames to fit a grid: the median interval is the best there is.
                let mut intervals: Vec<f64> = self.times.windows(2).map(|w| w[1] - w[0]).collect();
                match median(&mut intervals).filter(|p| *p > 1e-6) {
                    Some(period) => {
                        let rate = self.choose_rate(period, 0.01);
                        self.finish_estimate(rate, 1.0 / period, f64::INFINITY, false, w, h)
                    }
                    None => self.fall_back(w, h),
                }
            }
            None => self.fall_back(w, h),
        }
    }

    fn fall_back(&mut self, w: u32, h: u32) -> WarmupEstimate {
        let fallback = self.config.fallback;
        tracing::warn!(%fallback, frames = self.times.len(), "warmup found no timing in the capture timestamps; using the fallback rate");
        self.finish_estimate(fallback, fallback.fps(), f64::INFINITY, false, w, h)
    }

    fn choose_rate(&self, period: f64, relative_error: f64) -> Rate {
        let fps = 1.0 / period;
        Rate::snap(fps, self.config.snap_tolerance)
            .or_else(|| Rate::approximate_within(fps, (2.0 * relative_error).max(1e-6)))
            .unwrap_or(self.config.fallback)
    }

    fn finish_estimate(
        &mut self,
        rate: Rate,
        fps: f64,
        err: f64,
        configured: bool,
        w: u32,
        h: u32,
    ) -> WarmupEstimate {
        let est = WarmupEstimate {
            rate,
            width: w,
            height: h,
            frames: self.times.len(),
            measured_fps: fps,
            relative_error: err,
            configured,
        };
        tracing::info!(rate = %rate, width = w, height = h, frames = est.frames, measured_fps = fps, "warmup finished");
        self.done = Some(est);
        est
    }
}

/// A period fitted to timestamps.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PeriodFit {
    /// Seconds between frames.
    pub period: f64,
    /// Relative standard error of `period`.
    pub relative_error: f64,
}

fn median(values: &mut [f64]) -> Option<f64> {
    if values.is_empty() {
        return None;
    }
    values.sort_by(f64::total_cmp);
    let m = values.len() / 2;
    Some(if values.len() % 2 == 1 {
        values[m]
    } else {
        0.5 * (values[m - 1] + values[m])
    })
}

/// How tightly timestamps gather on a grid of period `p`: 1 = exactly, about 0 = not at all.
/// Returns the concentration and the grid's phase in seconds.
fn grid_concentration(times: &[f64], p: f64) -> (f64, f64) {
    let (mut c, mut s) = (0.0, 0.0);
    for t in times {
        let a = std::f64::consts::TAU * t / p;
        c += a.cos();
        s += a.sin();
    }
    let n = times.len() as f64;
    (
        (c * c + s * s).sqrt() / n,
        s.atan2(c) / std::f64::consts::TAU * p,
    )
}

/// Fit the frame period to timestamps (seconds); `None` until there is timing to fit.
pub fn fit_period(times: &[f64]) -> Option<PeriodFit> {
    if times.len() < 3 {
        return None;
    }
    let mut intervals: Vec<f64> = times
        .windows(2)
        .map(|w| w[1] - w[0])
        .filter(|d| *d > 1e-9)
        .collect();
    let t0 = median(&mut intervals)?;
    let span = times.iter().copied().fold(f64::MIN, f64::max)
        - times.iter().copied().fold(f64::MAX, f64::min);
    if span <= 0.0 {
        return None;
    }
    // Search periods around the median interval finely enough that the grid cannot slip by
    // more than a twentieth of a frame across the whole span, then refine around the best.
    let (lo, hi) = (0.7 * t0, 1.45 * t0);
    let cycles = span / t0;
    let steps = ((hi - lo) / t0 * cycles * 20.0).clamp(50.0, 20_000.0) as usize;
    let mut best = (f64::MIN, t0, 0.0);
    for i in 0..=steps {
        let p = lo + (hi - lo) * i as f64 / steps as f64;
        let (r, phase) = grid_concentration(times, p);
        // Prefer the longest period among equals: half a period also fits every frame.
        if r > best.0 + 1e-9 {
            best = (r, p, phase);
        }
    }
    let step = (hi - lo) / steps as f64;
    let (mut lo2, mut hi2) = (best.1 - step, best.1 + step);
    for _ in 0..40 {
        let m1 = lo2 + (hi2 - lo2) / 3.0;
        let m2 = hi2 - (hi2 - lo2) / 3.0;
        if grid_concentration(times, m1).0 < grid_concentration(times, m2).0 {
            lo2 = m1;
        } else {
            hi2 = m2;
        }
    }
    let p = 0.5 * (lo2 + hi2);
    let (_, phase) = grid_concentration(times, p);

    // Number every frame on the grid, then least squares with residual trimming.
    let points: Vec<(f64, f64)> = times
        .iter()
        .map(|t| (((t - phase) / p).round(), *t))
        .collect();
    let mut keep: Vec<bool> = vec![true; points.len()];
    let mut result = None;
    for _ in 0..3 {
        let fit = least_squares(
            points
                .iter()
                .zip(&keep)
                .filter(|(_, k)| **k)
                .map(|(pt, _)| *pt),
        )?;
        result = Some(fit);
        let mut residuals: Vec<f64> = points
            .iter()
            .zip(&keep)
            .filter(|(_, k)| **k)
            .map(|((k, t), _)| (t - (fit.0 + fit.1 * k)).abs())
            .collect();
        let mad = median(&mut residuals).unwrap_or(0.0);
        let limit = (4.0 * 1.4826 * mad).max(0.05 * fit.1.abs()).max(1e-7);
        let mut changed = false;
        for ((k, t), keep) in points.iter().zip(keep.iter_mut()) {
            let out = (t - (fit.0 + fit.1 * k)).abs() > limit;
            if *keep && out {
                *keep = false;
                changed = true;
            }
        }
        if !changed {
            break;
        }
    }
    let (_, slope, stderr) = result?;
    if slope <= 0.0 {
        return None;
    }
    Some(PeriodFit {
        period: slope,
        relative_error: stderr / slope,
    })
}

/// Least squares `t = a + b k`; returns (a, b, standard error of b).
fn least_squares(points: impl Iterator<Item = (f64, f64)>) -> Option<(f64, f64, f64)> {
    let pts: Vec<(f64, f64)> = points.collect();
    let n = pts.len() as f64;
    if pts.len() < 3 {
        return None;
    }
    let mk = pts.iter().map(|p| p.0).sum::<f64>() / n;
    let mt = pts.iter().map(|p| p.1).sum::<f64>() / n;
    let skk: f64 = pts.iter().map(|p| (p.0 - mk).powi(2)).sum();
    if skk <= 0.0 {
        return None;
    }
    let skt: f64 = pts.iter().map(|p| (p.0 - mk) * (p.1 - mt)).sum();
    let b = skt / skk;
    let a = mt - b * mk;
    let sse: f64 = pts.iter().map(|p| (p.1 - a - b * p.0).powi(2)).sum();
    let s2 = sse / (n - 2.0);
    Some((a, b, (s2 / skk).sqrt()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use rand::{Rng, SeedableRng};

    fn run(times: &[Duration]) -> Option<WarmupEstimate> {
        run_with(WarmupConfig::default(), times)
    }

    fn run_with(config: WarmupConfig, times: &[Duration]) -> Option<WarmupEstimate> {
        let mut w = Warmup::new(config);
        times.iter().find_map(|t| w.observe(*t, 640, 480))
    }

    /// The estimator's precision when it may look as long as it likes.
    fn unhurried() -> WarmupConfig {
        WarmupConfig {
            max_duration: Duration::MAX,
            ..WarmupConfig::default()
        }
    }

    /// A camera at about 2.3 fps with frames 0.33-0.67 s apart settles within the time bound
    /// (it needed 49 frames, 21 s, with the frame bound alone), near its mean rate.
    #[test]
    fn a_slow_irregular_camera_settles_within_the_time_bound() {
        let mut rng = rand::rngs::StdRng::seed_from_u64(23);
        let mut t = 10.0f64;
        let times: Vec<Duration> = (0..100)
            .map(|_| {
                let at = Duration::from_secs_f64(t);
                t += rng.random_range(0.33..=0.67);
                at
            })
            .collect();
        let est = run(&times).expect("the warmup ends");
        let waited = times[est.frames - 1] - times[0];
        assert!(
            waited < Duration::from_secs(3) + Duration::from_millis(670),
            "{waited:?} {est:?}"
        );
        assert!((1.5..3.5).contains(&est.rate.fps()), "{est:?}");
        let unbounded = run_with(unhurried(), &times).expect("the warmup ends");
        assert!(unbounded.frames > est.frames, "{unbounded:?}");
    }

    #[test]
    fn exact_timestamps_give_exact_fractional_rates_quickly() {
        for rate in [
            Rate::new(24000, 1001),
            Rate::new(30000, 1001),
            Rate::new(25, 1),
            Rate::new(10, 1),
        ] {
            let rate = rate.unwrap();
            let times: Vec<Duration> = (0..100)
                .map(|i| Duration::from_secs(7) + rate.frame_time(i))
                .collect();
            let est = run(&times).expect("warmup must finish");
            assert_eq!(est.rate, rate);
            assert!(est.frames <= 12, "{rate}: took {} frames", est.frames);
            assert_eq!((est.width, est.height), (640, 480));
        }
    }

    /// What an RTSP receiver's jitter buffer does to a 15 fps camera's timestamps while it
    /// learns the sender's clock: intervals dip up to 0.75 % short over the first 2.5 s, then
    /// recover. The warmup must not settle on the dip.
    #[test]
    fn a_receivers_clock_learning_at_the_start_does_not_bias_the_rate() {
        let nominal = 1.0 / 15.0;
        let mut t = 0.0f64;
        let times: Vec<Duration> = (0..100)
            .map(|k| {
                let at = Duration::from_secs_f64(t);
                let dip = if k < 38 {
                    0.0075 * (std::f64::consts::PI * f64::from(k) / 38.0).sin()
                } else {
                    0.0
                };
                t += nominal * (1.0 - dip);
                at
            })
            .collect();
        let est = run(&times).unwrap();
        assert_eq!(est.rate, Rate::new(15, 1).unwrap(), "{est:?}");
    }

    #[test]
    fn uncommon_rates_are_measured_not_forced() {
        let rate = Rate::new(173, 10).unwrap();
        let times: Vec<Duration> = (0..100).map(|i| rate.frame_time(i)).collect();
        assert_eq!(run(&times).unwrap().rate, rate);
    }

    #[test]
    fn known_rate_and_size_skip_the_warmup() {
        let rate = Rate::new(15, 1).unwrap();
        let mut w = Warmup::with_known(WarmupConfig::default(), Some(rate), Some((320, 240)));
        assert!(w.is_skipped());
        let est = w.observe(Duration::ZERO, 99, 99).unwrap();
        assert!(est.configured);
        assert_eq!(
            (est.rate, est.width, est.height, est.frames),
            (rate, 320, 240, 1)
        );
    }

    #[test]
    fn no_timing_falls_back_at_max_frames() {
        let mut w = Warmup::new(WarmupConfig {
            max_frames: 20,
            ..WarmupConfig::default()
        });
        let est = (0..20)
            .find_map(|_| w.observe(Duration::from_secs(1), 8, 8))
            .unwrap();
        assert_eq!(est.rate, WarmupConfig::default().fallback);
        assert_eq!(est.frames, 20);
    }

    #[test]
    fn dropped_frames_do_not_halve_the_rate() {
        let rate = Rate::new(30, 1).unwrap();
        // Every third frame lost: intervals are 1,1,2,1,1,2... periods.
        let times: Vec<Duration> = (0..150)
            .filter(|i| i % 3 != 2)
            .map(|i| rate.frame_time(i))
            .collect();
        assert_eq!(run(&times).unwrap().rate, rate);
    }

    /// Timestamps on a `rate` grid with uniform jitter of `jitter` periods, a fraction
    /// `outliers` of frames delayed by up to 0.9 period or dropped, seeded.
    fn noisy(rate: f64, jitter: f64, outliers: f64, seed: u64) -> Vec<Duration> {
        let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
        let p = 1.0 / rate;
        let mut out = Vec::new();
        let mut last = 0.0f64;
        for i in 0..200 {
            let mut t = 5.0 + i as f64 * p + rng.random_range(-jitter..=jitter) * p;
            if rng.random_bool(outliers) {
                if rng.random_bool(0.5) {
                    continue;
                }
                t += rng.random_range(0.0..0.9) * p;
            }
            t = t.max(last);
            last = t;
            out.push(Duration::from_secs_f64(t));
        }
        out
    }

    proptest! {
        #![proptest_config(ProptestConfig {
            cases: 200,
            rng_seed: proptest::test_runner::RngSeed::Fixed(0x7e1e5c0e),
            failure_persistence: None,
            ..ProptestConfig::default()
        })]

        #[test]
        fn estimate_is_within_one_percent_under_jitter_and_outliers(
            fps in 2.0f64..120.0,
            jitter in 0.0f64..=0.3,
            seed in any::<u64>(),
        ) {
            let times = noisy(fps, jitter, 0.05, seed);
            let est = run_with(unhurried(), &times).unwrap_or_else(|| {
                let mut w = Warmup::new(unhurried());
                for t in &times { w.observe(*t, 1, 1); }
                w.finish_now()
            });
            let err = (est.rate.fps() - fps).abs() / fps;
            prop_assert!(err < 0.01, "fps {fps} jitter {jitter}: estimated {} ({}) after {} frames", est.rate, est.measured_fps, est.frames);
            prop_assert!(est.frames <= WarmupConfig::default().max_frames);
        }

        #[test]
        fn the_default_warmup_ends_within_its_time_bound_near_the_rate(
            fps in 2.0f64..120.0,
            jitter in 0.0f64..=0.3,
            seed in any::<u64>(),
        ) {
            let times = noisy(fps, jitter, 0.05, seed);
            let est = run(&times).expect("the warmup ends");
            let waited = times[est.frames - 1] - times[0];
            prop_assert!(waited.as_secs_f64() < 3.0 + 2.0 / fps, "{waited:?}");
            let err = (est.rate.fps() - fps).abs() / fps;
            prop_assert!(err < 0.05, "fps {fps} jitter {jitter}: estimated {} after {} frames", est.rate, est.frames);
        }
    }
}
