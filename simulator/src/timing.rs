//! Camera timing models: when each frame is captured and when it reaches the application.
//!
//! A real camera behind a network is not a metronome: delivery jitters, frames are lost (alone
//! or in bursts), the camera freezes for a while and resumes, and its clock runs at 29.97 while
//! the app believes 30. Each effect is a field of [`TimingConfig`]; all randomness comes from
//! one seeded generator, so the same seed gives the same run, bit for bit.

use std::time::Duration;

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use rand_distr::{Distribution, Normal};
use telescope::Rate;

/// Delivery jitter around the capture time.
#[derive(Debug, Clone, Copy, PartialEq)]
#[non_exhaustive]
pub enum Jitter {
    /// Frames arrive exactly when captured.
    None,
    /// Uniformly distributed delay in `[0, max]` milliseconds.
    Uniform {
        /// Largest delay in milliseconds.
        max_ms: f64,
    },
    /// Normally distributed delay (mean `mean_ms`, standard deviation `sd_ms`), never negative.
    Normal {
        /// Mean delay in milliseconds.
        mean_ms: f64,
        /// Standard deviation in milliseconds.
        sd_ms: f64,
    },
}

/// One camera's timing.
#[derive(Debug, Clone, PartialEq)]
pub struct TimingConfig {
    /// The camera's real frame rate (29.97 where the app expects 30 is a rate mismatch).
    pub rate: Rate,
    /// Delivery jitter.
    pub jitter: Jitter,
    /// Probability that a frame starts a loss burst.
    pub drop_probability: f64,
    /// Frames lost per burst (default 1).
    pub drop_burst: u32,
    /// The camera freezes this often (capture time between freezes); `None`: never.
    pub stall_every: Option<Duration>,
    /// How long each freeze lasts.
    pub stall_for: Duration,
    /// Seed of every random choice.
    pub seed: u64,
}

impl TimingConfig {
    /// A perfect camera at `rate`.
    pub fn steady(rate: Rate) -> Self {
        TimingConfig {
            rate,
            jitter: Jitter::None,
            drop_probability: 0.0,
            drop_burst: 1,
            stall_every: None,
            stall_for: Duration::ZERO,
            seed: 0,
        }
    }
}

/// A camera model as the command lines describe it (`replay`, `run-app`, the Python runtime):
/// all defaults is a perfect camera (no model at all).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct CameraModelOptions {
    /// Largest (uniform) or typical (normal) delivery delay in milliseconds.
    pub jitter_ms: Option<f64>,
    /// Normal jitter (mean `jitter_ms / 2`, sd `jitter_ms / 6`) instead of uniform.
    pub normal_jitter: bool,
    /// Probability that a frame starts a loss burst.
    pub drop: f64,
    /// Frames lost per burst (0 counts as 1).
    pub drop_burst: u32,
    /// Seconds of capture between freezes.
    pub stall_every: Option<f64>,
    /// Milliseconds each freeze lasts.
    pub stall_ms: u64,
    /// The camera's own rate (else the fallback rate).
    pub camera_fps: Option<Rate>,
}

/// Why camera-model options make no camera.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CameraModelError {
    /// The drop probability is outside [0, 1].
    #[error("the drop probability must be between 0 and 1")]
    Drop,
    /// The stall period is not a positive number of seconds.
    #[error("the stall period must be a positive number of seconds")]
    StallEvery,
    /// The jitter is negative or not a number.
    #[error("the jitter must be a non-negative number of milliseconds")]
    Jitter,
    /// A model needs a rate and neither the camera nor the stream has one.
    #[error("the camera model needs a frame rate: give the camera's or the stream's")]
    NoRate,
}

impl CameraModelOptions {
    /// The timing these options describe, `None` when they describe a perfect camera;
    /// `fallback` is the rate when no camera rate is given (the stream's, or the source's).
    pub fn timing(
        &self,
        fallback: Option<Rate>,
        seed: u64,
    ) -> Result<Option<TimingConfig>, CameraModelError> {
        if self.jitter_ms.is_none()
            && self.drop == 0.0
            && self.stall_every.is_none()
            && self.camera_fps.is_none()
        {
            return Ok(None);
        }
        if !(0.0..=1.0).contains(&self.drop) {
            return Err(CameraModelError::Drop);
        }
        let rate = self
            .camera_fps
            .or(fallback)
            .ok_or(CameraModelError::NoRate)?;
        let stall_every = match self.stall_every {
            Some(s) if s.is_finite() && s > 0.0 => Some(Duration::from_secs_f64(s)),
            Some(_) => return Err(CameraModelError::StallEvery),
            None => None,
        };
        let jitter = match self.jitter_ms {
            Some(j) if j.is_finite() && j >= 0.0 => {
                if self.normal_jitter {
                    Jitter::Normal {
                        mean_ms: j / 2.0,
                        sd_ms: j / 6.0,
                    }
                } else {
                    Jitter::Uniform { max_ms: j }
                }
            }
            Some(_) => return Err(CameraModelError::Jitter),
            None => Jitter::None,
        };
        Ok(Some(TimingConfig {
            rate,
            jitter,
            drop_probability: self.drop,
            drop_burst: self.drop_burst.max(1),
            stall_every,
            stall_for: Duration::from_millis(self.stall_ms),
            seed,
        }))
    }
}

/// What happened to one frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Delivery {
    /// Captured at `captured`, handed to the app at `arrives` (never before capture, never
    /// before the previous frame).
    Delivered {
        index: u64,
        captured: Duration,
        arrives: Duration,
    },
    /// Captured at `captured` and lost on the way.
    Lost { index: u64, captured: Duration },
}

/// The frame-by-frame generator for one camera.
#[derive(Debug, Clone)]
pub struct TimingModel {
    config: TimingConfig,
    rng: StdRng,
    normal: Option<Normal<f64>>,
    index: u64,
    /// Capture time lost to freezes so far.
    frozen: Duration,
    next_stall: Option<Duration>,
    burst_left: u32,
    last_arrival: Duration,
}

impl TimingModel {
    /// A model starting at frame 0, time 0.
    pub fn new(config: TimingConfig) -> Self {
        let normal = match config.jitter {
            Jitter::Normal { mean_ms, sd_ms } => Normal::new(mean_ms, sd_ms.max(0.0)).ok(),
            _ => None,
        };
        TimingModel {
            rng: StdRng::seed_from_u64(config.seed),
            normal,
            index: 0,
            frozen: Duration::ZERO,
            next_stall: config.stall_every,
            burst_left: 0,
            last_arrival: Duration::ZERO,
            config,
        }
    }

    /// The next frame's fate.
    pub fn next_frame(&mut self) -> Delivery {
        let index = self.index;
        self.index += 1;
        let mut captured = self.config.rate.frame_time(index) + self.frozen;
        if let Some(at) = self.next_stall {
            if captured >= at {
                // The camera freezes: nothing is captured for `stall_for`.
                self.frozen += self.config.stall_for;
                captured += self.config.stall_for;
                self.next_stall = self
                    .config
                    .stall_every
                    .map(|every| at + self.config.stall_for + every);
            }
        }
        let delay_ms = match self.config.jitter {
            Jitter::None => 0.0,
            Jitter::Uniform { max_ms } => self.rng.random_range(0.0..=max_ms.max(0.0)),
            Jitter::Normal { .. } => self
                .normal
                .map_or(0.0, |n| n.sample(&mut self.rng))
                .max(0.0),
        };
        let lost = if self.burst_left > 0 {
            self.burst_left -= 1;
            true
        } else if self.config.drop_probability > 0.0
            && self.rng.random_bool(self.config.drop_probability.min(1.0))
        {
            self.burst_left = self.config.drop_burst.max(1) - 1;
            true
        } else {
            false
        };
        if lost {
            return Delivery::Lost { index, captured };
        }
        let arrives =
            (captured + Duration::from_secs_f64(delay_ms / 1000.0)).max(self.last_arrival);
        self.last_arrival = arrives;
        Delivery::Delivered {
            index,
            captured,
            arrives,
        }
    }
}

impl Iterator for TimingModel {
    type Item = Delivery;
    fn next(&mut self) -> Option<Delivery> {
        Some(self.next_frame())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rate(n: u32, d: u32) -> Rate {
        Rate::new(n, d).unwrap()
    }

    fn delays(config: TimingConfig, n: usize) -> Vec<f64> {
        TimingModel::new(config)
            .take(n)
            .filter_map(|d| match d {
                Delivery::Delivered {
                    captured, arrives, ..
                } => Some((arrives - captured).as_secs_f64() * 1000.0),
                Delivery::Lost { .. } => None,
            })
            .collect()
    }

    fn mean_sd(v: &[f64]) -> (f64, f64) {
        let m = v.iter().sum::<f64>() / v.len() as f64;
        (
            m,
            (v.iter().map(|x| (x - m).powi(2)).sum::<f64>() / v.len() as f64).sqrt(),
        )
    }

    #[test]
    fn uniform_jitter_has_the_configured_statistics() {
        // A 10 ms frame interval keeps the no-reordering clamp out of the way of 8 ms jitter.
        let config = TimingConfig {
            jitter: Jitter::Uniform { max_ms: 8.0 },
            seed: 11,
            ..TimingConfig::steady(rate(100, 1))
        };
        let (m, sd) = mean_sd(&delays(config, 20_000));
        assert!((m - 4.0).abs() < 0.1, "mean {m}");
        assert!((sd - 8.0 / 12f64.sqrt()).abs() < 0.1, "sd {sd}");
    }

    #[test]
    fn normal_jitter_has_the_configured_statistics() {
        let config = TimingConfig {
            jitter: Jitter::Normal {
                mean_ms: 20.0,
                sd_ms: 3.0,
            },
            seed: 5,
            ..TimingConfig::steady(rate(10, 1))
        };
        let (m, sd) = mean_sd(&delays(config, 20_000));
        assert!((m - 20.0).abs() < 0.15, "mean {m}");
        assert!((sd - 3.0).abs() < 0.1, "sd {sd}");
    }

    #[test]
    fn drops_come_at_the_configured_rate_and_in_bursts() {
        let config = TimingConfig {
            drop_probability: 0.02,
            drop_burst: 5,
            seed: 3,
            ..TimingConfig::steady(rate(30, 1))
        };
        let frames: Vec<Delivery> = TimingModel::new(config).take(50_000).collect();
        let lost: Vec<u64> = frames
            .iter()
            .filter_map(|d| {
                if let Delivery::Lost { index, .. } = d {
                    Some(*index)
                } else {
                    None
                }
            })
            .collect();
        // Each burst removes 5 frames; bursts start on a surviving frame with probability 2 %.
        let expected = 50_000.0 * 5.0 * 0.02 / (1.0 + 4.0 * 0.02);
        assert!(
            ((lost.len() as f64) - expected).abs() / expected < 0.08,
            "{} lost, expected about {expected}",
            lost.len()
        );
        let runs = lost.windows(2).filter(|w| w[1] != w[0] + 1).count() + 1;
        assert!(lost.len() >= runs * 5 - 5, "losses come in runs of 5");
    }

    #[test]
    fn stalls_freeze_capture_and_rate_mismatch_drifts() {
        let config = TimingConfig {
            stall_every: Some(Duration::from_secs(10)),
            stall_for: Duration::from_secs(3),
            ..TimingConfig::steady(rate(10, 1))
        };
        let captured: Vec<Duration> = TimingModel::new(config)
            .take(250)
            .map(|d| match d {
                Delivery::Delivered { captured, .. } | Delivery::Lost { captured, .. } => captured,
            })
            .collect();
        let gaps: Vec<Duration> = captured
            .windows(2)
            .map(|w| w[1] - w[0])
            .filter(|g| *g > Duration::from_millis(100))
            .collect();
        assert_eq!(
            gaps,
            vec![Duration::from_millis(3100), Duration::from_millis(3100)]
        );
        // 29.97 against 30: after 30000 frames the camera is 30 frames (1.001 s) behind.
        let mut ntsc = TimingModel::new(TimingConfig::steady(rate(30000, 1001)));
        let last = ntsc.nth(30_000).unwrap();
        assert!(
            matches!(last, Delivery::Delivered { captured, .. } if captured == Duration::from_secs(1001))
        );
    }

    #[test]
    fn the_same_seed_gives_the_same_run_and_another_seed_does_not() {
        let config = |seed| TimingConfig {
            jitter: Jitter::Normal {
                mean_ms: 10.0,
                sd_ms: 4.0,
            },
            drop_probability: 0.05,
            drop_burst: 2,
            seed,
            ..TimingConfig::steady(rate(25, 1))
        };
        let a: Vec<Delivery> = TimingModel::new(config(42)).take(5000).collect();
        let b: Vec<Delivery> = TimingModel::new(config(42)).take(5000).collect();
        let c: Vec<Delivery> = TimingModel::new(config(43)).take(5000).collect();
        assert_eq!(a, b);
        assert_ne!(a, c);
        // Arrivals never go backwards and never precede capture.
        let mut last = Duration::ZERO;
        for d in &a {
            if let Delivery::Delivered {
                captured, arrives, ..
            } = d
            {
                assert!(*arrives >= *captured && *arrives >= last);
                last = *arrives;
            }
        }
    }
}
