//! What keeps bad input from exhausting the server: a budget of bytes all connections buffer
//! together, and an accept loop that backs off when the process runs out of descriptors.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// Bytes all PutMedia connections may hold at once in partly received elements (each one is
/// also bounded by the 50 MB fragment limit).
#[derive(Debug)]
pub struct ByteBudget {
    used: AtomicU64,
    cap: u64,
}

impl ByteBudget {
    /// A budget of `cap` bytes.
    pub fn new(cap: u64) -> Arc<ByteBudget> {
        Arc::new(ByteBudget {
            used: AtomicU64::new(0),
            cap,
        })
    }

    /// Bytes held now.
    pub fn used(&self) -> u64 {
        self.used.load(Ordering::Relaxed)
    }
}

/// One connection's share of a [`ByteBudget`], given back when dropped.
#[derive(Debug)]
pub struct Reservation {
    budget: Arc<ByteBudget>,
    held: u64,
}

impl Reservation {
    /// A share of nothing yet.
    pub fn new(budget: Arc<ByteBudget>) -> Reservation {
        Reservation { budget, held: 0 }
    }

    /// Hold `bytes` instead of what was held; `false` (holding what it held before) when the
    /// budget cannot cover the growth.
    pub fn resize(&mut self, bytes: u64) -> bool {
        if bytes <= self.held {
            self.budget
                .used
                .fetch_sub(self.held - bytes, Ordering::Relaxed);
            self.held = bytes;
            return true;
        }
        let more = bytes - self.held;
        let grown = self
            .budget
            .used
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |used| {
                (used + more <= self.budget.cap).then_some(used + more)
            });
        if grown.is_ok() {
            self.held = bytes;
        }
        grown.is_ok()
    }
}

impl Drop for Reservation {
    fn drop(&mut self) {
        self.budget.used.fetch_sub(self.held, Ordering::Relaxed);
    }
}

/// How long the accept loop waits after the `failures`-th accept error in a row: 10 ms
/// doubling to 1 s. EMFILE leaves the pending connection in the backlog, so accepting again at
/// once fails again at once: without the pause the loop spins a core.
pub fn accept_backoff(failures: u32) -> Duration {
    telescope_kvs::Backoff::new(Duration::from_millis(10), Duration::from_secs(1)).delay(failures)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reservations_share_one_cap_and_give_back_when_dropped() {
        let budget = ByteBudget::new(100);
        let mut a = Reservation::new(budget.clone());
        let mut b = Reservation::new(budget.clone());
        assert!(a.resize(60));
        assert!(!b.resize(50), "60 + 50 is over 100");
        assert!(b.resize(40));
        assert!(a.resize(10));
        assert_eq!(budget.used(), 50);
        drop(a);
        drop(b);
        assert_eq!(budget.used(), 0);
    }

    #[test]
    fn accept_backoff_grows_and_is_capped() {
        assert_eq!(accept_backoff(0), Duration::from_millis(10));
        assert_eq!(accept_backoff(3), Duration::from_millis(80));
        assert_eq!(accept_backoff(40), Duration::from_secs(1));
    }
}
