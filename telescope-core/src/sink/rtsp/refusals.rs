//! What the RTSP server refuses, counted, summarised in the log at a bounded rate, and the
//! throttle that slows guessing of passwords from one address.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

/// Failed logins an address gets within [`FAILURE_WINDOW`] before it is refused for a while.
pub const FREE_FAILURES: u32 = 5;
/// Failures further apart than this (after any refusal period) are forgiven.
pub const FAILURE_WINDOW: Duration = Duration::from_secs(60);
/// The first refusal period; each failure after one doubles it, up to [`LONGEST_PENALTY`].
pub const FIRST_PENALTY: Duration = Duration::from_secs(1);
/// The longest refusal period.
pub const LONGEST_PENALTY: Duration = Duration::from_secs(300);
/// Addresses remembered at once (a flood from more addresses forgets the quietest).
const MAX_TRACKED: usize = 4096;
/// At most one summary line per interval (the first refusal after a quiet one is logged at once).
pub const LOG_INTERVAL: Duration = Duration::from_secs(10);
/// Addresses named in one summary line.
const NAMED: usize = 5;

/// A kind of refusal.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// Credentials sent and wrong.
    WrongCredentials,
    /// Refused without checking: the address is in a refusal period.
    Throttled,
    /// A request over a size limit or framed ambiguously; its connection was closed.
    Oversized,
    /// A connection over the server's or the address's limit; closed at once.
    Crowded,
}

/// One address's recent failed logins.
#[derive(Debug, Clone)]
struct Record {
    failures: u32,
    last: Instant,
    until: Option<Instant>,
    next_penalty: Duration,
}

impl Record {
    /// When this record no longer matters.
    fn forgotten_at(&self) -> Instant {
        self.until.map_or(self.last, |u| u.max(self.last)) + FAILURE_WINDOW
    }
}

/// Failed logins per address, and the refusal periods they earned. Time is passed in, so the
/// policy is tested without waiting.
#[derive(Debug, Default)]
pub struct Throttle {
    records: HashMap<IpAddr, Record>,
}

impl Throttle {
    /// How long `ip` is still refused, if it is.
    pub fn refused_for(&self, ip: IpAddr, now: Instant) -> Option<Duration> {
        let until = self.records.get(&ip)?.until?;
        (until > now).then(|| until - now)
    }

    /// Note a failed login; returns the refusal period it starts, if any.
    pub fn failed(&mut self, ip: IpAddr, now: Instant) -> Option<Duration> {
        if self.records.len() >= MAX_TRACKED && !self.records.contains_key(&ip) {
            self.records.retain(|_, r| r.forgotten_at() > now);
            if self.records.len() >= MAX_TRACKED {
                // Still full of active guessers: make room by forgetting the oldest.
                if let Some(oldest) = self
                    .records
                    .iter()
                    .min_by_key(|(_, r)| r.last)
                    .map(|(k, _)| *k)
                {
                    self.records.remove(&oldest);
                }
            }
        }
        let record = self.records.entry(ip).or_insert(Record {
            failures: 0,
            last: now,
            until: None,
            next_penalty: FIRST_PENALTY,
        });
        if record.forgotten_at() <= now {
            record.failures = 0;
            record.until = None;
            record.next_penalty = FIRST_PENALTY;
        }
        record.failures += 1;
        record.last = now;
        if record.failures < FREE_FAILURES {
            return None;
        }
        let penalty = record.next_penalty;
        record.until = Some(now + penalty);
        record.next_penalty = (penalty * 2).min(LONGEST_PENALTY);
        Some(penalty)
    }

    /// Note a successful login: the address's failures are forgiven.
    pub fn succeeded(&mut self, ip: IpAddr) {
        self.records.remove(&ip);
    }
}

#[derive(Debug, Default)]
struct Summary {
    /// When the last line was logged.
    logged: Option<Instant>,
    counts: [u64; 4],
    by_address: HashMap<IpAddr, u64>,
}

/// Counters of refusals, the throttle, and the summary not yet logged.
#[derive(Debug, Default)]
pub struct Refusals {
    counts: [AtomicU64; 4],
    throttle: Mutex<Throttle>,
    summary: Mutex<Summary>,
}

fn index(kind: Refusal) -> usize {
    match kind {
        Refusal::WrongCredentials => 0,
        Refusal::Throttled => 1,
        Refusal::Oversized => 2,
        Refusal::Crowded => 3,
    }
}

impl Refusals {
    /// Refusals of one kind so far.
    pub fn count(&self, kind: Refusal) -> u64 {
        self.counts[index(kind)].load(Ordering::Relaxed)
    }

    /// The throttle, locked.
    pub fn throttle(&self) -> MutexGuard<'_, Throttle> {
        self.throttle.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn summary(&self) -> MutexGuard<'_, Summary> {
        self.summary.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Count a refusal of `ip` and log it within the bounded rate.
    pub fn note(&self, kind: Refusal, ip: IpAddr) {
        self.note_at(kind, ip, Instant::now());
    }

    fn note_at(&self, kind: Refusal, ip: IpAddr, now: Instant) {
        self.counts[index(kind)].fetch_add(1, Ordering::Relaxed);
        let mut s = self.summary();
        s.counts[index(kind)] += 1;
        if s.by_address.len() < MAX_TRACKED || s.by_address.contains_key(&ip) {
            *s.by_address.entry(ip).or_default() += 1;
        }
        Self::log(&mut s, now, false);
    }

    /// Log what is pending if an interval has passed since the last line (called on a timer, so
    /// a burst's summary is not held back until the next refusal).
    pub fn flush(&self) {
        Self::log(&mut self.summary(), Instant::now(), false);
    }

    /// Log what is pending now (when the server stops: no count goes unsaid).
    pub fn flush_now(&self) {
        Self::log(&mut self.summary(), Instant::now(), true);
    }

    fn log(s: &mut Summary, now: Instant, now_anyway: bool) {
        if s.counts.iter().all(|&c| c == 0)
            || (!now_anyway
                && s.logged
                    .is_some_and(|at| now.duration_since(at) < LOG_INTERVAL))
        {
            return;
        }
        let mut named: Vec<(IpAddr, u64)> = s.by_address.drain().collect();
        let addresses = named.len();
        named.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
        let named = named
            .iter()
            .take(NAMED)
            .map(|(ip, n)| format!("{ip} ({n})"))
            .collect::<Vec<_>>()
            .join(", ");
        let [wrong_credentials, throttled, oversized, crowded] = std::mem::take(&mut s.counts);
        tracing::warn!(
            wrong_credentials,
            throttled,
            oversized,
            crowded,
            addresses,
            from = %named,
            "RTSP clients refused"
        );
        s.logged = Some(now);
    }

    /// Refusals not yet in a logged line.
    #[cfg(test)]
    fn pending(&self) -> u64 {
        self.summary().counts.iter().sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_address_is_refused_after_its_free_failures_for_doubling_periods() {
        let ip: IpAddr = [10, 0, 0, 1].into();
        let other: IpAddr = [10, 0, 0, 2].into();
        let t0 = Instant::now();
        let mut t = Throttle::default();
        for i in 1..FREE_FAILURES {
            assert_eq!(t.failed(ip, t0), None, "failure {i} is free");
        }
        assert_eq!(t.failed(ip, t0), Some(FIRST_PENALTY));
        assert_eq!(t.refused_for(ip, t0), Some(FIRST_PENALTY));
        assert_eq!(t.refused_for(other, t0), None, "only the guessing address");
        let after = t0 + FIRST_PENALTY;
        assert_eq!(t.refused_for(ip, after), None, "the period ends");
        assert_eq!(t.failed(ip, after), Some(FIRST_PENALTY * 2), "and doubles");
        let mut at = after + FIRST_PENALTY * 2;
        for _ in 0..20 {
            let p = t.failed(ip, at).unwrap();
            assert!(p <= LONGEST_PENALTY);
            at += p;
        }
        assert_eq!(t.failed(ip, at), Some(LONGEST_PENALTY));
        // Quiet for a window after the period: forgiven.
        let later = at + LONGEST_PENALTY + FAILURE_WINDOW;
        assert_eq!(t.failed(ip, later), None);
        t.succeeded(ip);
        assert_eq!(t.refused_for(ip, later), None);
    }

    #[test]
    fn a_flood_of_refusals_is_summarised_not_logged_one_by_one() {
        let r = Refusals::default();
        let t0 = Instant::now();
        let ip: IpAddr = [10, 0, 0, 1].into();
        r.note_at(Refusal::WrongCredentials, ip, t0);
        assert_eq!(r.pending(), 0, "the first is logged at once");
        for _ in 0..199 {
            r.note_at(Refusal::Throttled, ip, t0 + Duration::from_millis(100));
        }
        assert_eq!(r.pending(), 199, "the rest wait for the interval");
        r.note_at(Refusal::Throttled, ip, t0 + LOG_INTERVAL);
        assert_eq!(r.pending(), 0, "one summary line for all of them");
        assert_eq!(r.count(Refusal::Throttled), 200);
        assert_eq!(r.count(Refusal::WrongCredentials), 1);
    }
}
