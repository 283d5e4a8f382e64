//! The PutMedia upload's decisions, on virtual time and without sockets: what is sent, in which
//! order, when it reconnects, what it resends, what a full store drops, when credentials roll
//! over, and when a finishing upload stops. A proptest then drives it through thousands of seeded
//! schedules of acks, failures and credential changes against a model of KVS.

use std::collections::BTreeSet;
use std::time::Duration;

use bytes::Bytes;
use proptest::prelude::*;
use telescope_kvs::clock::Backoff;
use telescope_kvs::putmedia::{Action, Upload, UploadPolicy};
use telescope_kvs::{AckEvent, FragmentAck};

const MS: Duration = Duration::from_millis(1);

fn policy() -> UploadPolicy {
    UploadPolicy {
        store_bytes: 1000,
        backoff: Backoff::new(200 * MS, Duration::from_secs(10)),
        credential_margin: Duration::from_secs(30),
        credential_check: Duration::from_secs(1),
    }
}

fn ack(event: AckEvent, timecode: u64) -> FragmentAck {
    FragmentAck {
        event,
        fragment_timecode: Some(timecode),
        fragment_number: None,
    }
}

fn persisted(t: u64) -> FragmentAck {
    ack(AckEvent::Persisted, t)
}

fn fragment(t: u64, len: usize) -> Bytes {
    Bytes::from(vec![(t % 251) as u8; len])
}

/// Every action due at `now`.
fn actions(upload: &mut Upload, now: Duration) -> Vec<Action> {
    std::iter::from_fn(|| upload.poll(now)).collect()
}

/// Every chunk the open connection would take now.
fn transmit(upload: &mut Upload, now: Duration) -> Vec<Bytes> {
    std::iter::from_fn(|| upload.poll_transmit(now)).collect()
}

fn connect(t: u64) -> Vec<Action> {
    vec![Action::Connect {
        first_timecode_ms: t,
    }]
}

#[test]
fn nothing_connects_before_a_header_and_a_fragment() {
    let mut up = Upload::new(policy());
    assert_eq!(actions(&mut up, Duration::ZERO), []);
    up.fragment(1000, fragment(1000, 10));
    assert_eq!(actions(&mut up, Duration::ZERO), [], "no header yet");
    up.header(Bytes::from_static(b"HEAD"));
    assert_eq!(actions(&mut up, Duration::ZERO), connect(1000));
    assert_eq!(
        actions(&mut up, Duration::ZERO),
        [],
        "one connect at a time"
    );
}

#[test]
fn the_header_goes_first_then_fragments_in_order_and_persisted_acks_free_the_store() {
    let mut up = Upload::new(policy());
    up.header(Bytes::from_static(b"HEAD"));
    for t in [1000, 3000, 5000] {
        up.fragment(t, fragment(t, 10));
    }
    assert_eq!(actions(&mut up, Duration::ZERO), connect(1000));
    assert!(
        !up.has_transmit(),
        "nothing to send before the connection is open"
    );
    up.connected(Duration::ZERO, None);
    let sent = transmit(&mut up, 5 * MS);
    assert_eq!(sent[0], Bytes::from_static(b"HEAD"));
    assert_eq!(
        sent[1..],
        [fragment(1000, 10), fragment(3000, 10), fragment(5000, 10)]
    );
    up.ack(80 * MS, &ack(AckEvent::Received, 1000));
    up.ack(120 * MS, &persisted(3000));
    assert_eq!(up.stored().collect::<Vec<_>>(), [5000], "acks are in order");
    let s = up.stats();
    assert_eq!((s.sent, s.received, s.persisted, s.pending), (3, 1, 2, 1));
    assert_eq!(s.ack_latency_ms_last, 115, "measured on the upload's clock");
    assert_eq!(s.bytes_sent, 4 + 30);
    assert_eq!(s.resent, 0);
}

#[test]
fn failed_connections_back_off_doubling_and_the_next_one_resends_everything_stored() {
    let mut up = Upload::new(policy());
    up.header(Bytes::from_static(b"H"));
    up.fragment(0, fragment(0, 10));
    let mut now = Duration::ZERO;
    assert_eq!(actions(&mut up, now), connect(0));
    up.connected(now, None);
    assert_eq!(transmit(&mut up, now).len(), 2);
    up.fragment(2000, fragment(2000, 10));
    up.failed(now, "reset");
    let mut waits = vec![];
    for _ in 0..3 {
        let wake = up.poll_timeout().expect("a backoff has an end");
        waits.push((wake - now).as_millis());
        assert_eq!(
            actions(&mut up, wake - MS),
            [],
            "not before the backoff ends"
        );
        now = wake;
        assert_eq!(actions(&mut up, now), connect(0));
        up.failed(now, "connection refused");
    }
    assert_eq!(waits, [200, 400, 800]);
    now = up.poll_timeout().unwrap();
    assert_eq!(actions(&mut up, now), connect(0));
    up.connected(now, None);
    let sent = transmit(&mut up, now);
    assert_eq!(
        sent,
        [
            Bytes::from_static(b"H"),
            fragment(0, 10),
            fragment(2000, 10)
        ]
    );
    let s = up.stats();
    assert_eq!((s.connections, s.resent, s.sent, s.errors), (2, 1, 3, 4));
    assert_eq!(s.last_error.as_deref(), Some("connection refused"));
    // A connection that works resets the backoff.
    up.ack(now, &persisted(0));
    up.failed(now, "reset");
    assert_eq!(up.poll_timeout(), Some(now + 200 * MS));
}

#[test]
fn a_retryable_error_ack_reconnects_and_resends_a_fatal_one_drops_only_that_fragment() {
    let mut up = Upload::new(policy());
    up.header(Bytes::from_static(b"H"));
    for t in [0, 2000, 4000] {
        up.fragment(t, fragment(t, 10));
    }
    actions(&mut up, Duration::ZERO);
    up.connected(Duration::ZERO, None);
    transmit(&mut up, Duration::ZERO);
    let fatal = AckEvent::Error {
        error_id: 4004,
        code: Some("INVALID_MKV_DATA".into()),
    };
    up.ack(MS, &ack(fatal, 2000));
    assert_eq!(up.stored().collect::<Vec<_>>(), [0, 4000]);
    assert_eq!(actions(&mut up, MS), [], "a fatal ack keeps the connection");
    let retry = AckEvent::Error {
        error_id: 5000,
        code: None,
    };
    up.ack(MS, &ack(retry, 0));
    // A PERSISTED in the same read still counts.
    up.ack(MS, &persisted(0));
    assert_eq!(actions(&mut up, MS), [Action::Disconnect]);
    let wake = up.poll_timeout().unwrap();
    assert_eq!(actions(&mut up, wake), connect(4000));
    up.connected(wake, None);
    assert_eq!(transmit(&mut up, wake)[1..], [fragment(4000, 10)]);
    let s = up.stats();
    assert_eq!((s.rejected, s.persisted, s.resent, s.errors), (1, 1, 1, 2));
}

#[test]
fn a_full_store_evicts_the_oldest_fragments_never_the_newest() {
    let mut up = Upload::new(policy());
    for t in 0..5 {
        up.fragment(t * 1000, fragment(t, 300));
    }
    assert_eq!(up.stored().collect::<Vec<_>>(), [2000, 3000, 4000]);
    up.fragment(9000, fragment(9, 5000));
    assert_eq!(
        up.stored().collect::<Vec<_>>(),
        [9000],
        "alone over budget, still kept"
    );
    assert_eq!(up.stats().evicted, 5);
    assert_eq!(up.stats().pending, 1);
}

#[test]
fn credentials_near_expiry_are_checked_and_fresher_ones_move_the_upload_to_a_new_connection() {
    let mut up = Upload::new(policy());
    up.header(Bytes::from_static(b"H"));
    up.fragment(0, fragment(0, 10));
    actions(&mut up, Duration::ZERO);
    up.connected(Duration::ZERO, Some(Duration::from_secs(60)));
    transmit(&mut up, Duration::ZERO);
    let check = Duration::from_secs(30);
    assert_eq!(
        up.poll_timeout(),
        Some(check),
        "checked once within the margin"
    );
    assert_eq!(actions(&mut up, check - MS), []);
    assert_eq!(actions(&mut up, check), [Action::CheckCredentials]);
    assert_eq!(up.poll_timeout(), None, "one check at a time");
    // The provider still has the same credentials: keep going, look again in a second.
    up.credentials_checked(check, Some(Duration::from_secs(30)));
    assert_eq!(actions(&mut up, check), []);
    assert_eq!(up.poll_timeout(), Some(check + Duration::from_secs(1)));
    let later = check + Duration::from_secs(1);
    assert_eq!(actions(&mut up, later), [Action::CheckCredentials]);
    up.credentials_checked(later, Some(Duration::from_secs(3600)));
    // Straight to a new connection: nothing failed, so no backoff and no error.
    let mut all = actions(&mut up, later);
    assert_eq!(all.remove(0), Action::Disconnect);
    assert_eq!(all, connect(0));
    up.connected(later, Some(Duration::from_secs(3600)));
    assert_eq!(
        transmit(&mut up, later).len(),
        2,
        "header and the unacknowledged fragment"
    );
    assert_eq!(up.stats().errors, 0);
    assert_eq!(up.stats().resent, 1);
}

#[test]
fn expired_credentials_without_fresher_ones_reconnect_after_a_backoff_not_at_once() {
    let mut up = Upload::new(policy());
    up.header(Bytes::from_static(b"H"));
    up.fragment(0, fragment(0, 10));
    actions(&mut up, Duration::ZERO);
    up.connected(Duration::ZERO, Some(Duration::from_secs(10)));
    let at = Duration::from_secs(10);
    assert_eq!(actions(&mut up, Duration::ZERO), [Action::CheckCredentials]);
    up.credentials_checked(Duration::ZERO, Some(Duration::from_secs(10)));
    assert_eq!(actions(&mut up, at), [Action::CheckCredentials]);
    up.credentials_checked(at, None);
    assert_eq!(actions(&mut up, at), [Action::Disconnect]);
    assert_eq!(up.stats().errors, 1);
    assert_eq!(up.poll_timeout(), Some(at + 200 * MS));
    // The provider hands out the same expired credentials again: no spinning.
    let retry = at + 200 * MS;
    assert_eq!(actions(&mut up, retry), connect(0));
    up.connected(retry, Some(Duration::ZERO));
    assert_eq!(actions(&mut up, retry), [Action::CheckCredentials]);
    up.credentials_checked(retry, Some(Duration::ZERO));
    assert_eq!(actions(&mut up, retry), [Action::Disconnect]);
    assert_eq!(
        up.poll_timeout(),
        Some(retry + 400 * MS),
        "the backoff grows"
    );
}

#[test]
fn finishing_waits_for_every_persisted_ack_then_ends_the_body() {
    let mut up = Upload::new(policy());
    up.header(Bytes::from_static(b"H"));
    up.fragment(0, fragment(0, 10));
    up.fragment(2000, fragment(2000, 10));
    actions(&mut up, Duration::ZERO);
    up.connected(Duration::ZERO, None);
    transmit(&mut up, Duration::ZERO);
    up.finish();
    up.ack(MS, &persisted(0));
    assert_eq!(
        actions(&mut up, MS),
        [],
        "one fragment is still unacknowledged"
    );
    up.ack(MS, &persisted(2000));
    assert_eq!(
        actions(&mut up, MS),
        [Action::EndBody, Action::Stop { drained: true }]
    );
    assert_eq!(actions(&mut up, MS), [], "stopped for good");

    let mut empty = Upload::new(policy());
    empty.finish();
    assert_eq!(
        actions(&mut empty, Duration::ZERO),
        [Action::Stop { drained: true }]
    );

    let mut gone = Upload::new(policy());
    gone.header(Bytes::from_static(b"H"));
    gone.fragment(0, fragment(0, 10));
    gone.close();
    assert_eq!(
        actions(&mut gone, Duration::ZERO),
        [Action::Stop { drained: false }]
    );
}

/// One step of a schedule.
#[derive(Debug, Clone)]
enum Step {
    /// The producer hands over a fragment of this many bytes.
    Fragment(usize),
    /// The pending connect succeeds, with credentials valid this many seconds (if any).
    ConnectOk(Option<u64>),
    /// The pending connect fails.
    ConnectFails,
    /// The connection takes up to this many chunks.
    Transmit(usize),
    /// KVS persists up to this many of the fragments it received on this connection.
    Persist(usize),
    /// KVS says RECEIVED for the next fragment it has.
    Received,
    /// KVS sends an ERROR ack for the next fragment it has.
    ErrorAck { retryable: bool },
    /// The connection breaks.
    Fails,
    /// Time passes.
    Advance(u64),
    /// The answer to a credential check: fresher credentials (valid this long) or the same.
    Credentials(Option<u64>),
    /// The producer asks to finish.
    Finish,
}

fn step() -> impl Strategy<Value = Step> {
    prop_oneof![
        4 => (1usize..400).prop_map(Step::Fragment),
        2 => proptest::option::of(1u64..120).prop_map(Step::ConnectOk),
        1 => Just(Step::ConnectFails),
        4 => (1usize..6).prop_map(Step::Transmit),
        3 => (1usize..4).prop_map(Step::Persist),
        1 => Just(Step::Received),
        1 => any::<bool>().prop_map(|retryable| Step::ErrorAck { retryable }),
        1 => Just(Step::Fails),
        2 => (1u64..20_000).prop_map(Step::Advance),
        1 => proptest::option::of(1u64..7200).prop_map(Step::Credentials),
        1 => Just(Step::Finish),
    ]
}

/// A model of KVS and of the driver around the upload, checking the upload's promises.
#[derive(Default)]
struct World {
    now: Duration,
    next_timecode: u64,
    sizes: std::collections::BTreeMap<u64, usize>,
    connecting: bool,
    checking: bool,
    open: bool,
    header_seen: bool,
    /// Fragments KVS received on this connection and has not acked yet, in order.
    unacked: Vec<u64>,
    /// Timecodes sent on this connection.
    sent_here: BTreeSet<u64>,
    persisted: BTreeSet<u64>,
    /// Fragments the upload dropped on purpose: evicted from a full store or rejected for good.
    dropped: BTreeSet<u64>,
    stopped: Option<bool>,
}

impl World {
    fn run_actions(&mut self, up: &mut Upload) {
        while let Some(action) = up.poll(self.now) {
            assert!(self.stopped.is_none(), "an action after Stop: {action:?}");
            match action {
                Action::Connect { first_timecode_ms } => {
                    assert!(!self.connecting && !self.open, "connect while connected");
                    assert_eq!(
                        Some(first_timecode_ms),
                        up.stored().next(),
                        "starts at the oldest"
                    );
                    self.connecting = true;
                }
                Action::CheckCredentials => {
                    assert!(self.open && !self.checking);
                    self.checking = true;
                }
                Action::Disconnect => self.drop_connection(),
                Action::EndBody => assert!(self.open && up.stored().next().is_none()),
                Action::Stop { drained } => self.stopped = Some(drained),
            }
        }
    }

    fn drop_connection(&mut self) {
        self.open = false;
        self.checking = false;
        self.header_seen = false;
        self.unacked.clear();
        self.sent_here.clear();
    }

    fn transmit(&mut self, up: &mut Upload, n: usize) {
        if !self.open {
            assert!(
                up.poll_transmit(self.now).is_none(),
                "data without a connection"
            );
            return;
        }
        for _ in 0..n {
            let Some(chunk) = up.poll_transmit(self.now) else {
                assert!(!up.has_transmit());
                return;
            };
            if !self.header_seen {
                assert_eq!(
                    chunk,
                    Bytes::from_static(b"HEADER"),
                    "the header goes first"
                );
                self.header_seen = true;
                continue;
            }
            let t = u64::from_be_bytes(chunk[..8].try_into().expect("fragment id"));
            assert_eq!(chunk.len(), self.sizes[&t]);
            // In order, and nothing stored older than it was skipped on this connection.
            assert!(
                self.unacked.last().is_none_or(|&last| last < t),
                "out of order"
            );
            for older in up.stored().take_while(|&s| s < t) {
                assert!(
                    self.sent_here.contains(&older),
                    "{older} skipped before {t}"
                );
            }
            self.sent_here.insert(t);
            self.unacked.push(t);
        }
    }

    fn apply(&mut self, up: &mut Upload, step: &Step) {
        let before: BTreeSet<u64> = up.stored().collect();
        let dropping = matches!(
            step,
            Step::Fragment(_) | Step::ErrorAck { retryable: false }
        );
        self.step(up, step);
        if dropping {
            let after: BTreeSet<u64> = up.stored().collect();
            self.dropped.extend(before.difference(&after));
        }
        self.run_actions(up);
        self.check_accounts(up);
    }

    fn step(&mut self, up: &mut Upload, step: &Step) {
        match *step {
            Step::Fragment(len) => {
                let t = self.next_timecode;
                self.next_timecode += 2000;
                let mut bytes = t.to_be_bytes().to_vec();
                bytes.resize(len.max(8), 0);
                self.sizes.insert(t, bytes.len());
                up.fragment(t, Bytes::from(bytes));
            }
            Step::ConnectOk(secs) if self.connecting => {
                self.connecting = false;
                self.open = true;
                up.connected(self.now, secs.map(Duration::from_secs));
            }
            Step::ConnectFails if self.connecting => {
                self.connecting = false;
                up.failed(self.now, "refused");
            }
            Step::Transmit(n) => self.transmit(up, n),
            Step::Persist(n) if self.open => {
                let n = n.min(self.unacked.len());
                for t in self.unacked.drain(..n) {
                    self.persisted.insert(t);
                    up.ack(self.now, &persisted(t));
                }
            }
            Step::Received if self.open => {
                if let Some(&t) = self.unacked.first() {
                    up.ack(self.now, &ack(AckEvent::Received, t));
                }
            }
            Step::ErrorAck { retryable } if self.open && !self.unacked.is_empty() => {
                let t = self.unacked.remove(0);
                let error_id = if retryable { 5001 } else { 4002 };
                let event = AckEvent::Error {
                    error_id,
                    code: None,
                };
                up.ack(self.now, &ack(event, t));
            }
            Step::Fails if self.open || self.connecting => {
                self.connecting = false;
                self.drop_connection();
                up.failed(self.now, "reset");
            }
            Step::Advance(ms) => self.now += Duration::from_millis(ms),
            Step::Credentials(secs) if self.checking => {
                self.checking = false;
                up.credentials_checked(self.now, secs.map(Duration::from_secs));
            }
            Step::Finish => up.finish(),
            _ => {}
        }
    }

    fn check_accounts(&self, up: &Upload) {
        let s = up.stats();
        assert_eq!(
            s.fragments,
            s.persisted + s.evicted + s.rejected + s.pending,
            "{s:?}"
        );
        let stored: Vec<u64> = up.stored().collect();
        assert!(stored.windows(2).all(|w| w[0] < w[1]), "store out of order");
        let bytes: usize = stored.iter().map(|t| self.sizes[t]).sum();
        assert!(
            bytes <= policy().store_bytes || stored.len() == 1,
            "over budget"
        );
    }

    /// KVS and the network behave from now on: the upload must drain and stop.
    fn drain(&mut self, up: &mut Upload) {
        up.finish();
        self.run_actions(up);
        for _ in 0..10_000 {
            if self.stopped.is_some() {
                return;
            }
            if self.checking {
                self.apply(up, &Step::Credentials(Some(7200)));
            }
            self.apply(up, &Step::ConnectOk(Some(7200)));
            self.apply(up, &Step::Transmit(1000));
            self.apply(up, &Step::Persist(1000));
            if let Some(wake) = up.poll_timeout() {
                self.now = self.now.max(wake);
                self.run_actions(up);
            }
        }
        panic!("the upload never stopped: {:?}", up.stats());
    }
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: 4000,
        rng_seed: proptest::test_runner::RngSeed::Fixed(0x5eed_0fc1),
        failure_persistence: None,
        ..ProptestConfig::default()
    })]

    #[test]
    fn no_schedule_loses_or_reorders_a_stored_fragment(steps in proptest::collection::vec(step(), 0..120)) {
        let mut up = Upload::new(policy());
        let mut world = World::default();
        up.header(Bytes::from_static(b"HEADER"));
        for s in &steps {
            if world.stopped.is_some() {
                break;
            }
            world.apply(&mut up, s);
        }
        world.drain(&mut up);
        let s = up.stats().clone();
        prop_assert_eq!(world.stopped, Some(true));
        prop_assert_eq!(s.pending, 0);
        // Every fragment handed over reached KVS, unless a full store or a fatal ack dropped it.
        prop_assert_eq!(world.sizes.len() as u64, s.fragments);
        prop_assert_eq!(world.dropped.len() as u64, s.evicted + s.rejected);
        for t in world.sizes.keys() {
            prop_assert!(world.persisted.contains(t) || world.dropped.contains(t), "{} lost", t);
        }
    }
}
