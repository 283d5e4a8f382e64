//! Frame rates as exact fractions: 24000/1001 is a real rate, not 24.

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

/// A frame rate `num/den` frames per second, both positive.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Rate {
    num: u32,
    den: u32,
}

/// Rates cameras and files actually use; estimates close to one of these snap to it.
pub const COMMON_RATES: &[Rate] = &[
    Rate { num: 1, den: 1 },
    Rate { num: 2, den: 1 },
    Rate { num: 5, den: 1 },
    Rate { num: 6, den: 1 },
    Rate { num: 10, den: 1 },
    Rate { num: 12, den: 1 },
    Rate { num: 15, den: 1 },
    Rate {
        num: 15000,
        den: 1001,
    },
    Rate { num: 20, den: 1 },
    Rate {
        num: 24000,
        den: 1001,
    },
    Rate { num: 24, den: 1 },
    Rate { num: 25, den: 1 },
    Rate {
        num: 30000,
        den: 1001,
    },
    Rate { num: 30, den: 1 },
    Rate { num: 48, den: 1 },
    Rate { num: 50, den: 1 },
    Rate {
        num: 60000,
        den: 1001,
    },
    Rate { num: 60, den: 1 },
    Rate { num: 120, den: 1 },
];

impl Rate {
    /// `num/den` frames per second; `None` when either is zero.
    pub const fn new(num: u32, den: u32) -> Option<Rate> {
        if num == 0 || den == 0 {
            None
        } else {
            Some(Rate { num, den })
        }
    }

    /// A whole number of frames per second.
    pub const fn whole(fps: u32) -> Option<Rate> {
        Rate::new(fps, 1)
    }

    /// Numerator.
    pub fn num(self) -> u32 {
        self.num
    }
    /// Denominator.
    pub fn den(self) -> u32 {
        self.den
    }
    /// Frames per second as a float.
    pub fn fps(self) -> f64 {
        f64::from(self.num) / f64::from(self.den)
    }
    /// The time between two frames.
    pub fn interval(self) -> Duration {
        Duration::from_nanos(
            u64::try_from(u128::from(self.den) * 1_000_000_000 / u128::from(self.num))
                .unwrap_or(u64::MAX),
        )
    }
    /// The instant of frame `n` counted from zero, rounded down to the nanosecond.
    pub fn frame_time(self, n: u64) -> Duration {
        let ns = u128::from(n) * u128::from(self.den) * 1_000_000_000 / u128::from(self.num);
        Duration::from_nanos(u64::try_from(ns).unwrap_or(u64::MAX))
    }

    /// The common rate nearest to `fps` if it is within `tolerance` (relative), else `None`.
    pub fn snap(fps: f64, tolerance: f64) -> Option<Rate> {
        COMMON_RATES
            .iter()
            .map(|r| (*r, ((fps - r.fps()) / r.fps()).abs()))
            .filter(|(_, err)| *err <= tolerance)
            .min_by(|a, b| a.1.total_cmp(&b.1))
            .map(|(r, _)| r)
    }

    /// The simplest fraction within one part in a million of `fps` (continued fractions),
    /// for rates that are not common.
    pub fn approximate(fps: f64) -> Option<Rate> {
        Rate::approximate_within(fps, 1e-6)
    }

    /// The simplest fraction within `tolerance` (relative) of `fps`.
    pub fn approximate_within(fps: f64, tolerance: f64) -> Option<Rate> {
        if !fps.is_finite() || fps <= 0.0 || fps > 1.0e6 {
            return None;
        }
        let (mut h0, mut h1, mut k0, mut k1) = (0u64, 1u64, 1u64, 0u64);
        let mut x = fps;
        for _ in 0..32 {
            let a = x.floor();
            let ai = a as u64;
            let h2 = ai.checked_mul(h1)?.checked_add(h0)?;
            let k2 = ai.checked_mul(k1)?.checked_add(k0)?;
            if h2 > u64::from(u32::MAX) || k2 > u64::from(u32::MAX) {
                break;
            }
            (h0, h1, k0, k1) = (h1, h2, k1, k2);
            if ((h1 as f64 / k1 as f64 - fps) / fps).abs() < tolerance || x - a < 1e-12 {
                break;
            }
            x = 1.0 / (x - a);
        }
        Rate::new(u32::try_from(h1).ok()?, u32::try_from(k1).ok()?)
    }

    /// As a GStreamer fraction.
    pub fn to_fraction(self) -> gst::Fraction {
        gst::Fraction::new(self.num as i32, self.den as i32)
    }
}

impl fmt::Display for Rate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.den == 1 {
            write!(f, "{}", self.num)
        } else {
            write!(f, "{}/{}", self.num, self.den)
        }
    }
}

/// Why a string is not a frame rate.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("`{0}` is not a frame rate: use a positive number (25, 29.97) or a fraction (30000/1001)")]
pub struct ParseRateError(pub String);

impl FromStr for Rate {
    type Err = ParseRateError;

    /// Accepts `25`, `29.97` (snapped to 30000/1001 when that is what it means) and `30000/1001`.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let err = || ParseRateError(s.to_owned());
        let s = s.trim();
        if let Some((n, d)) = s.split_once('/') {
            let n = n.trim().parse::<u32>().map_err(|_| err())?;
            let d = d.trim().parse::<u32>().map_err(|_| err())?;
            return Rate::new(n, d).ok_or_else(err);
        }
        let fps: f64 = s.parse().map_err(|_| err())?;
        if fps.is_nan() || fps <= 0.0 {
            return Err(err());
        }
        if fps.fract() == 0.0 && fps <= f64::from(u32::MAX) {
            return Rate::new(fps as u32, 1).ok_or_else(err);
        }
        Rate::snap(fps, 0.001)
            .or_else(|| Rate::approximate(fps))
            .ok_or_else(err)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_whole_decimal_and_fractional_rates() {
        assert_eq!("25".parse::<Rate>().unwrap(), Rate::whole(25).unwrap());
        assert_eq!(
            "29.97".parse::<Rate>().unwrap(),
            Rate::new(30000, 1001).unwrap()
        );
        assert_eq!(
            "23.976".parse::<Rate>().unwrap(),
            Rate::new(24000, 1001).unwrap()
        );
        assert_eq!(
            "24000/1001".parse::<Rate>().unwrap().to_string(),
            "24000/1001"
        );
        assert_eq!("7.5".parse::<Rate>().unwrap(), Rate::new(15, 2).unwrap());
        for bad in ["0", "-3", "abc", "1/0", "nan", ""] {
            assert!(bad.parse::<Rate>().is_err(), "{bad} must be rejected");
        }
    }

    #[test]
    fn snapping_tells_24_from_23_976() {
        assert_eq!(Rate::snap(23.977, 0.0005), Rate::new(24000, 1001));
        assert_eq!(Rate::snap(23.999, 0.0005), Rate::new(24, 1));
        assert_eq!(Rate::snap(17.3, 0.01), None);
    }

    #[test]
    fn frame_times_are_exact_for_ntsc_rates() {
        let r = Rate::new(30000, 1001).unwrap();
        assert_eq!(r.frame_time(30000), Duration::from_secs(1001));
        assert_eq!(r.interval(), Duration::from_nanos(33_366_666));
    }
}
