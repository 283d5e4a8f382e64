//! The PutMedia upload as a state machine without I/O.
//!
//! [`Upload`] decides; a driver (the tokio loop in `putmedia::driver`, or a test) does. Inputs
//! are the producer's header, fragments, `finish` and `close`; the connection's life
//! (`connected`, `failed`), the acks read from it, and the answer to a credential check. Outputs
//! are [`Action`]s from [`Upload::poll`], the next chunk of the request body from
//! [`Upload::poll_transmit`], and the instant to be woken at from [`Upload::poll_timeout`].
//! Time is passed in as the [`Clock`](crate::clock::Clock)'s `now()` (a `Duration` from its
//! origin), so every decision (backoff, credential rollover, ack latency) runs on virtual time
//! in tests.
//!
//! What it guarantees: every fragment handed in is sent on a connection in the order it was
//! handed in, after the stream header; a fragment stays in the store until KVS says PERSISTED
//! (or rejects it for good), and each new connection resends the header and every fragment
//! still stored, oldest first; only a full store drops a fragment unacknowledged (counted as
//! evicted).

use std::collections::VecDeque;
use std::time::Duration;

use bytes::Bytes;

use super::PutMediaStats;
use crate::ack::{AckEvent, FragmentAck};
use crate::clock::Backoff;

/// How the upload behaves (the decisions only; where it connects is the driver's business).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UploadPolicy {
    /// Bytes of unacknowledged fragments kept for resending.
    pub store_bytes: usize,
    /// The wait between a failed connection and the next attempt.
    pub backoff: Backoff,
    /// Look for fresher credentials when the ones in use expire within this.
    pub credential_margin: Duration,
    /// How often to look again while the credentials in use are within the margin.
    pub credential_check: Duration,
}

/// What the driver must do next.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Open a connection and send a PutMedia request whose producer start time is this
    /// fragment's; answer with [`Upload::connected`] or [`Upload::failed`].
    Connect {
        /// Timecode of the oldest stored fragment (milliseconds).
        first_timecode_ms: u64,
    },
    /// Ask the credentials provider for its current credentials and answer with
    /// [`Upload::credentials_checked`].
    CheckCredentials,
    /// Drop the connection; the upload has already planned what comes next.
    Disconnect,
    /// End the request body (the chunked terminator): everything is persisted.
    EndBody,
    /// The upload is over: stop driving it.
    Stop {
        /// Nothing handed in is left undelivered (`finish` was asked and the store drained).
        drained: bool,
    },
}

/// The connection, as far as the upload knows.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Link {
    /// No connection; open one when there is a header and a fragment.
    Idle,
    /// Backing off after a failure until this time.
    Waiting { until: Duration },
    /// `Connect` was asked; waiting for `connected` or `failed`.
    Connecting,
    /// A request is on the wire.
    Open(Open),
    /// `Stop` was returned.
    Ended,
}

#[derive(Debug, Clone, Copy, PartialEq)]
struct Open {
    /// Connection number (1 for the first).
    id: u64,
    header_sent: bool,
    /// When the credentials that signed the request expire.
    expires_at: Option<Duration>,
    /// When to look for fresher credentials next.
    next_check: Duration,
    /// A `CheckCredentials` is outstanding.
    checking: bool,
}

#[derive(Debug, Clone)]
struct Stored {
    timecode_ms: u64,
    bytes: Bytes,
    /// Connection that last sent it (0: never sent).
    sent_on: u64,
    sent_at: Option<Duration>,
}

/// The upload's state: the store of unacknowledged fragments, the connection's state and the
/// counters.
#[derive(Debug)]
pub struct Upload {
    policy: UploadPolicy,
    header: Option<Bytes>,
    store: VecDeque<Stored>,
    store_bytes: usize,
    link: Link,
    connections: u64,
    retries: u32,
    finishing: bool,
    closed: bool,
    /// Actions decided by an input, returned by the next `poll`s in order.
    queued: VecDeque<Action>,
    stats: PutMediaStats,
}

impl Upload {
    /// A new upload with nothing to send.
    pub fn new(policy: UploadPolicy) -> Self {
        Upload {
            policy,
            header: None,
            store: VecDeque::new(),
            store_bytes: 0,
            link: Link::Idle,
            connections: 0,
            retries: 0,
            finishing: false,
            closed: false,
            queued: VecDeque::new(),
            stats: PutMediaStats::default(),
        }
    }

    /// The counters so far.
    pub fn stats(&self) -> &PutMediaStats {
        &self.stats
    }

    /// Timecodes of the fragments still stored (awaiting PERSISTED), oldest first.
    pub fn stored(&self) -> impl Iterator<Item = u64> + '_ {
        self.store.iter().map(|f| f.timecode_ms)
    }

    /// The stream header (EBML, Segment, Info, Tracks), sent first on every connection.
    pub fn header(&mut self, header: Bytes) {
        self.header = Some(header);
    }

    /// A complete fragment (one Cluster) with its absolute timecode. When the store passes its
    /// budget the oldest fragments are evicted (never the newest one).
    pub fn fragment(&mut self, timecode_ms: u64, bytes: Bytes) {
        self.stats.fragments += 1;
        self.store_bytes += bytes.len();
        self.store.push_back(Stored {
            timecode_ms,
            bytes,
            sent_on: 0,
            sent_at: None,
        });
        while self.store_bytes > self.policy.store_bytes && self.store.len() > 1 {
            if let Some(old) = self.store.pop_front() {
                self.store_bytes -= old.bytes.len();
                self.stats.evicted += 1;
                tracing::warn!(
                    timecode = old.timecode_ms,
                    "fragment store full: oldest fragment evicted unacknowledged"
                );
            }
        }
        self.stats.pending = self.store.len() as u64;
    }

    /// End the upload once everything stored is persisted.
    pub fn finish(&mut self) {
        self.finishing = true;
    }

    /// The producer is gone: stop now, whatever is left.
    pub fn close(&mut self) {
        self.closed = true;
    }

    /// The requested connection is open and its request sent, signed with credentials that
    /// expire `expires_in` from `now` (if they expire).
    pub fn connected(&mut self, now: Duration, expires_in: Option<Duration>) {
        if self.link != Link::Connecting {
            return;
        }
        self.connections += 1;
        self.stats.connections += 1;
        self.link = Link::Open(Open {
            id: self.connections,
            header_sent: false,
            expires_at: expires_in.map(|e| now + e),
            next_check: now,
            checking: false,
        });
    }

    /// The connection could not be opened, or it failed or ended (an HTTP error status, a
    /// reset, KVS closing it). The upload backs off, then reconnects and resends.
    pub fn failed(&mut self, now: Duration, reason: impl Into<String>) {
        if matches!(self.link, Link::Connecting | Link::Open(_)) {
            self.back_off(now, reason.into());
        }
    }

    /// An ack read from the connection (also after an earlier ack in the same read made the
    /// upload drop it: what KVS persisted is persisted).
    pub fn ack(&mut self, now: Duration, ack: &FragmentAck) {
        if self.link == Link::Ended {
            return;
        }
        match &ack.event {
            AckEvent::Received => self.stats.received += 1,
            AckEvent::Persisted => {
                if let Some(t) = ack.fragment_timecode {
                    self.persisted(now, t);
                }
            }
            AckEvent::Error { error_id, code } if matches!(self.link, Link::Open(_)) => {
                let message = format!(
                    "KVS ERROR ack {error_id} {} for fragment {:?}",
                    code.as_deref().unwrap_or_default(),
                    ack.fragment_timecode
                );
                if retryable(*error_id) {
                    // Resend it on a fresh connection.
                    self.queued.push_back(Action::Disconnect);
                    self.back_off(now, message);
                } else {
                    self.reject(ack.fragment_timecode);
                    self.error(format!("{message} (not retryable: fragment dropped)"));
                }
            }
            _ => {}
        }
    }

    /// The answer to [`Action::CheckCredentials`]: the provider's credentials now expire
    /// `fresher_expires_in` from `now` (`None`: they do not expire, or none could be had).
    pub fn credentials_checked(&mut self, now: Duration, fresher_expires_in: Option<Duration>) {
        let Link::Open(open) = &mut self.link else {
            return;
        };
        open.checking = false;
        open.next_check = now + self.policy.credential_check;
        let Some(expires_at) = open.expires_at else {
            return;
        };
        if fresher_expires_in.is_some_and(|f| now + f > expires_at) {
            // KVS ends a connection when the credentials that signed it expire: move to the
            // fresher ones now, without a backoff (nothing failed).
            tracing::info!("credentials renewed: reconnecting with the fresh ones");
            self.queued.push_back(Action::Disconnect);
            self.link = Link::Idle;
        } else if expires_at <= now {
            // Expired with nothing fresher: a failure like any other, retried after a backoff
            // (not at once, which would spin on the same expired credentials).
            self.queued.push_back(Action::Disconnect);
            let reason =
                "the credentials signing the connection expired and none fresher are available";
            self.back_off(now, reason.into());
        }
    }

    /// The next thing to do at `now`, if any. Call until it returns `None`.
    pub fn poll(&mut self, now: Duration) -> Option<Action> {
        if let Some(action) = self.queued.pop_front() {
            return Some(action);
        }
        if self.link == Link::Ended {
            return None;
        }
        if self.closed {
            return Some(self.end(false));
        }
        if self.finishing && self.store.is_empty() {
            let open = matches!(self.link, Link::Open(_));
            let stop = self.end(true);
            if open {
                self.queued.push_back(stop);
                return Some(Action::EndBody);
            }
            return Some(stop);
        }
        if let Link::Waiting { until } = self.link {
            if now >= until {
                self.link = Link::Idle;
            }
        }
        match &mut self.link {
            Link::Idle => {
                let first = self.store.front()?.timecode_ms;
                self.header.as_ref()?;
                self.link = Link::Connecting;
                Some(Action::Connect {
                    first_timecode_ms: first,
                })
            }
            Link::Open(open) => {
                let near = open
                    .expires_at
                    .is_some_and(|t| t <= now + self.policy.credential_margin);
                if near && !open.checking && now >= open.next_check {
                    open.checking = true;
                    return Some(Action::CheckCredentials);
                }
                None
            }
            _ => None,
        }
    }

    /// When the upload next needs a `poll` even if nothing else happens.
    pub fn poll_timeout(&self) -> Option<Duration> {
        match &self.link {
            Link::Waiting { until } => Some(*until),
            Link::Open(open) if !open.checking => open.expires_at.map(|t| {
                t.saturating_sub(self.policy.credential_margin)
                    .max(open.next_check)
            }),
            _ => None,
        }
    }

    /// Whether [`Upload::poll_transmit`] has a chunk for the open connection.
    pub fn has_transmit(&self) -> bool {
        match &self.link {
            Link::Open(open) => {
                !open.header_sent || self.store.iter().any(|f| f.sent_on != open.id)
            }
            _ => false,
        }
    }

    /// The next chunk of the open connection's body: the header, then each stored fragment
    /// not yet sent on this connection, oldest first.
    pub fn poll_transmit(&mut self, now: Duration) -> Option<Bytes> {
        let Link::Open(open) = &mut self.link else {
            return None;
        };
        let chunk = if !open.header_sent {
            open.header_sent = true;
            self.header.clone()?
        } else {
            let f = self.store.iter_mut().find(|f| f.sent_on != open.id)?;
            if f.sent_on != 0 {
                self.stats.resent += 1;
            }
            f.sent_on = open.id;
            f.sent_at = Some(now);
            self.stats.sent += 1;
            f.bytes.clone()
        };
        self.stats.bytes_sent += chunk.len() as u64;
        Some(chunk)
    }

    fn end(&mut self, drained: bool) -> Action {
        self.link = Link::Ended;
        Action::Stop { drained }
    }

    fn back_off(&mut self, now: Duration, reason: String) {
        self.error(reason);
        let wait = self.policy.backoff.delay(self.retries);
        self.retries = self.retries.saturating_add(1);
        self.link = Link::Waiting { until: now + wait };
    }

    fn error(&mut self, message: String) {
        self.stats.errors += 1;
        tracing::warn!(error = %message, "PutMedia");
        self.stats.last_error = Some(message);
    }

    fn persisted(&mut self, now: Duration, timecode: u64) {
        let Some(i) = self.store.iter().position(|f| f.timecode_ms == timecode) else {
            return;
        };
        // Fragments before a persisted one were persisted too (KVS acks in order).
        for f in self.store.drain(..=i) {
            self.store_bytes -= f.bytes.len();
            self.stats.persisted += 1;
            if let Some(at) = f.sent_at {
                let ms = now.saturating_sub(at).as_millis() as u64;
                self.stats.ack_latency_ms_last = ms;
                self.stats.ack_latency_ms_max = self.stats.ack_latency_ms_max.max(ms);
            }
        }
        // The connection works: the next failure starts the backoff afresh.
        self.retries = 0;
        self.stats.pending = self.store.len() as u64;
    }

    fn reject(&mut self, timecode: Option<u64>) {
        if let Some(i) = timecode.and_then(|t| self.store.iter().position(|f| f.timecode_ms == t)) {
            if let Some(f) = self.store.remove(i) {
                self.store_bytes -= f.bytes.len();
                self.stats.rejected += 1;
            }
        }
        self.stats.pending = self.store.len() as u64;
    }
}

/// KVS ERROR acks worth retrying: service-side failures (5000s) and stream read errors (4000).
fn retryable(error_id: u64) -> bool {
    error_id >= 5000 || error_id == 4000
}
