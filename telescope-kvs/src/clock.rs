//! Time, in one place: the monotonic [`Clock`] that stamps frames and drives timeouts, and the
//! [`WallClock`] that credentials expire on and Matroska timecodes are read from. Both have a
//! virtual form for fast deterministic tests; `SystemTime::now()` is called only here.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// A monotonic clock. Telescope stamps frames without a capture time with `now()`.
pub trait Clock: Send + Sync + std::fmt::Debug {
    /// Time since this clock's origin.
    fn now(&self) -> Duration;
}

/// Real monotonic time, measured from when the clock was created.
#[derive(Debug, Clone)]
pub struct SystemClock {
    origin: Instant,
}

impl SystemClock {
    /// A clock whose origin is now.
    pub fn new() -> Self {
        SystemClock {
            origin: Instant::now(),
        }
    }
}

impl Default for SystemClock {
    fn default() -> Self {
        Self::new()
    }
}

impl Clock for SystemClock {
    fn now(&self) -> Duration {
        self.origin.elapsed()
    }
}

/// Simulated time that moves only when told to, for fast deterministic tests and replays.
///
/// Clones share the same time.
#[derive(Debug, Clone, Default)]
pub struct VirtualClock {
    nanos: Arc<AtomicU64>,
}

impl VirtualClock {
    /// A virtual clock at zero.
    pub fn new() -> Self {
        Self::default()
    }

    /// Move time forward by `by`.
    pub fn advance(&self, by: Duration) {
        self.nanos.fetch_add(saturating_nanos(by), Ordering::SeqCst);
    }

    /// Move time to `to` if that is later than now (time never goes backwards).
    pub fn advance_to(&self, to: Duration) {
        self.nanos.fetch_max(saturating_nanos(to), Ordering::SeqCst);
    }
}

fn saturating_nanos(d: Duration) -> u64 {
    u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)
}

impl Clock for VirtualClock {
    fn now(&self) -> Duration {
        Duration::from_nanos(self.nanos.load(Ordering::SeqCst))
    }
}

/// Wall-clock time, injectable so that expiry handling is tested without waiting.
pub trait WallClock: Send + Sync + std::fmt::Debug {
    /// The current time.
    fn now(&self) -> SystemTime;

    /// Milliseconds since the Unix epoch (0 for a clock set before it).
    fn unix_ms(&self) -> u64 {
        self.now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_millis() as u64)
            .unwrap_or_default()
    }

    /// How long from now until `at` (zero when it has passed).
    fn until(&self, at: SystemTime) -> Duration {
        at.duration_since(self.now()).unwrap_or_default()
    }
}

/// The system's wall clock.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemWallClock;

impl WallClock for SystemWallClock {
    fn now(&self) -> SystemTime {
        SystemTime::now()
    }
}

/// A wall clock that starts at `epoch` and moves with a [`VirtualClock`].
#[derive(Debug, Clone)]
pub struct VirtualWallClock {
    epoch: SystemTime,
    clock: VirtualClock,
}

impl VirtualWallClock {
    /// Wall time `epoch` plus whatever `clock` has advanced.
    pub fn new(epoch: SystemTime, clock: VirtualClock) -> Self {
        VirtualWallClock { epoch, clock }
    }
}

impl WallClock for VirtualWallClock {
    fn now(&self) -> SystemTime {
        self.epoch + self.clock.now()
    }
}

/// A doubling wait between retries: `initial`, twice that, four times... never over `max`.
/// Every retry loop of the workspace (pipeline restarts, PutMedia reconnects, throttled control
/// calls, accept errors) waits by one of these.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Backoff {
    /// The first wait.
    pub initial: Duration,
    /// The longest wait.
    pub max: Duration,
}

impl Backoff {
    /// Doubling from `initial` up to `max`.
    pub const fn new(initial: Duration, max: Duration) -> Self {
        Backoff { initial, max }
    }

    /// The wait before retry `attempt` (0: the first retry).
    pub fn delay(&self, attempt: u32) -> Duration {
        let factor = 1u32.checked_shl(attempt.min(31)).unwrap_or(u32::MAX);
        self.initial.saturating_mul(factor).min(self.max)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_backoff_doubles_up_to_its_cap_without_overflow() {
        let b = Backoff::new(Duration::from_millis(200), Duration::from_secs(10));
        let waits: Vec<u128> = (0..8).map(|a| b.delay(a).as_millis()).collect();
        assert_eq!(waits, [200, 400, 800, 1600, 3200, 6400, 10_000, 10_000]);
        assert_eq!(b.delay(u32::MAX), Duration::from_secs(10));
    }

    #[test]
    fn virtual_clock_moves_only_forward_and_is_shared() {
        let a = VirtualClock::new();
        let b = a.clone();
        a.advance(Duration::from_millis(40));
        assert_eq!(b.now(), Duration::from_millis(40));
        b.advance_to(Duration::from_millis(10));
        assert_eq!(a.now(), Duration::from_millis(40));
        b.advance_to(Duration::from_secs(2));
        assert_eq!(a.now(), Duration::from_secs(2));
    }
}
