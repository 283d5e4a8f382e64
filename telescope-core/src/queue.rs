//! The hand-off between the application's thread and the worker: a bounded frame queue plus
//! the pipeline's bus events and the stop request, behind one lock and one condition variable.
//! `put` holds the lock only long enough to push, so it never waits on the pipeline.

use std::collections::VecDeque;
use std::sync::{Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use crate::config::OverflowPolicy;
use crate::frame::Frame;
use crate::stats::DropReason;

/// Something the pipeline's bus reported, tagged with the pipeline incarnation that sent it.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum BusEvent {
    Error { incarnation: u32, message: String },
    Eos { incarnation: u32 },
}

/// What the worker should do next.
#[derive(Debug)]
pub(crate) enum Work {
    Event(BusEvent),
    Frame(Frame),
    /// Stop was requested and every queued frame has been handed out.
    Stop,
    /// Nothing happened before the deadline.
    Idle,
}

/// Result of offering a frame to the queue.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Offer {
    Queued,
    /// Queued, and this older frame's slot was reclaimed.
    QueuedDroppedOldest,
    Rejected(DropReason),
}

#[derive(Debug, Default)]
struct State {
    frames: VecDeque<Frame>,
    events: VecDeque<BusEvent>,
    accepting: bool,
    failed: bool,
    stop: bool,
}

#[derive(Debug)]
pub(crate) struct Inbox {
    state: Mutex<State>,
    /// Signals the worker: a frame, an event or the stop request arrived.
    work: Condvar,
    /// Signals blocked offline producers that a slot is free.
    space: Condvar,
    capacity: usize,
    overflow: OverflowPolicy,
}

impl Inbox {
    pub fn new(capacity: usize, overflow: OverflowPolicy) -> Self {
        Inbox {
            state: Mutex::new(State::default()),
            work: Condvar::new(),
            space: Condvar::new(),
            capacity: capacity.max(1),
            overflow,
        }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // A panic while holding this lock cannot leave the queue inconsistent (every update is
        // a single push or pop), so a poisoned lock is still safe to use.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Open for a new run.
    pub fn open(&self) {
        let mut s = self.lock();
        *s = State {
            accepting: true,
            ..State::default()
        };
    }

    /// Offer a frame without ever waiting.
    pub fn offer(&self, frame: Frame) -> Offer {
        let mut s = self.lock();
        if let Some(reason) = Self::refusal(&s) {
            return reason;
        }
        let outcome = if s.frames.len() >= self.capacity {
            match self.overflow {
                OverflowPolicy::DropOldest => {
                    s.frames.pop_front();
                    Offer::QueuedDroppedOldest
                }
                OverflowPolicy::DropNewest => return Offer::Rejected(DropReason::QueueFull),
            }
        } else {
            Offer::Queued
        };
        s.frames.push_back(frame);
        drop(s);
        self.work.notify_one();
        outcome
    }

    /// Offer a frame, waiting for a free slot: for offline sources (file replays) only.
    pub fn offer_wait(&self, frame: Frame) -> Offer {
        let mut s = self.lock();
        loop {
            if let Some(reason) = Self::refusal(&s) {
                return reason;
            }
            if s.frames.len() < self.capacity {
                break;
            }
            s = self.space.wait(s).unwrap_or_else(|p| p.into_inner());
        }
        s.frames.push_back(frame);
        drop(s);
        self.work.notify_one();
        Offer::Queued
    }

    fn refusal(s: &State) -> Option<Offer> {
        if s.failed {
            Some(Offer::Rejected(DropReason::Failed))
        } else if !s.accepting {
            Some(Offer::Rejected(DropReason::NotRunning))
        } else {
            None
        }
    }

    pub fn post_event(&self, event: BusEvent) {
        self.lock().events.push_back(event);
        self.work.notify_one();
    }

    /// Stop accepting frames; the worker drains what is queued, then sees [`Work::Stop`].
    pub fn request_stop(&self) {
        let mut s = self.lock();
        s.accepting = false;
        s.stop = true;
        drop(s);
        self.work.notify_all();
        self.space.notify_all();
    }

    /// The pipeline failed for good: refuse frames and hand back those queued (to be counted).
    pub fn fail(&self) -> usize {
        let mut s = self.lock();
        s.failed = true;
        s.accepting = false;
        let n = s.frames.len();
        s.frames.clear();
        drop(s);
        self.space.notify_all();
        n
    }

    pub fn depth(&self) -> usize {
        self.lock().frames.len()
    }

    /// Next piece of work: events first, then frames in order, then the stop request.
    pub fn next(&self, deadline: Option<Instant>) -> Work {
        let mut s = self.lock();
        loop {
            if let Some(e) = s.events.pop_front() {
                return Work::Event(e);
            }
            if let Some(f) = s.frames.pop_front() {
                drop(s);
                self.space.notify_one();
                return Work::Frame(f);
            }
            if s.stop {
                return Work::Stop;
            }
            s = match deadline {
                None => self.work.wait(s).unwrap_or_else(|p| p.into_inner()),
                Some(d) => {
                    let now = Instant::now();
                    if now >= d {
                        return Work::Idle;
                    }
                    self.work
                        .wait_timeout(s, d - now)
                        .unwrap_or_else(|p| p.into_inner())
                        .0
                }
            };
        }
    }

    /// Wait for a bus event only (frames stay queued), until the deadline.
    pub fn next_event(&self, deadline: Instant) -> Option<BusEvent> {
        let mut s = self.lock();
        loop {
            if let Some(e) = s.events.pop_front() {
                return Some(e);
            }
            let now = Instant::now();
            if now >= deadline {
                return None;
            }
            s = self
                .work
                .wait_timeout(s, deadline - now)
                .unwrap_or_else(|p| p.into_inner())
                .0;
        }
    }

    /// Sleep until the deadline unless stop is requested first; true if stop was requested.
    pub fn wait_stop(&self, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        let mut s = self.lock();
        loop {
            if s.stop {
                return true;
            }
            let now = Instant::now();
            if now >= deadline {
                return false;
            }
            s = self
                .work
                .wait_timeout(s, deadline - now)
                .unwrap_or_else(|p| p.into_inner())
                .0;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::frame::PixelFormat;

    fn frame(n: u8) -> Frame {
        Frame::from_vec(vec![n; 4], PixelFormat::Gray8, 2, 2).unwrap()
    }

    #[test]
    fn full_queue_drops_oldest_and_keeps_order() {
        let q = Inbox::new(2, OverflowPolicy::DropOldest);
        assert_eq!(q.offer(frame(0)), Offer::Rejected(DropReason::NotRunning));
        q.open();
        assert_eq!(q.offer(frame(1)), Offer::Queued);
        assert_eq!(q.offer(frame(2)), Offer::Queued);
        assert_eq!(q.offer(frame(3)), Offer::QueuedDroppedOldest);
        let firsts: Vec<u8> = (0..2)
            .map(|_| match q.next(Some(Instant::now())) {
                Work::Frame(f) => f.data()[0],
                other => panic!("{other:?}"),
            })
            .collect();
        assert_eq!(firsts, vec![2, 3]);
        assert!(matches!(q.next(Some(Instant::now())), Work::Idle));
    }

    #[test]
    fn drop_newest_keeps_the_queue() {
        let q = Inbox::new(1, OverflowPolicy::DropNewest);
        q.open();
        q.offer(frame(1));
        assert_eq!(q.offer(frame(2)), Offer::Rejected(DropReason::QueueFull));
        assert!(matches!(q.next(None), Work::Frame(f) if f.data()[0] == 1));
    }

    #[test]
    fn stop_comes_after_queued_frames_and_events_first() {
        let q = Inbox::new(4, OverflowPolicy::DropOldest);
        q.open();
        q.offer(frame(1));
        q.request_stop();
        q.post_event(BusEvent::Eos { incarnation: 0 });
        assert_eq!(q.offer(frame(9)), Offer::Rejected(DropReason::NotRunning));
        assert!(matches!(
            q.next(None),
            Work::Event(BusEvent::Eos { incarnation: 0 })
        ));
        assert!(matches!(q.next(None), Work::Frame(_)));
        assert!(matches!(q.next(None), Work::Stop));
        assert!(q.wait_stop(Duration::from_secs(60)));
    }

    #[test]
    fn offer_wait_resumes_when_the_worker_takes_a_frame() {
        let q = std::sync::Arc::new(Inbox::new(1, OverflowPolicy::DropOldest));
        q.open();
        q.offer(frame(1));
        let producer = {
            let q = q.clone();
            std::thread::spawn(move || q.offer_wait(frame(2)))
        };
        assert!(matches!(q.next(None), Work::Frame(f) if f.data()[0] == 1));
        assert_eq!(producer.join().unwrap(), Offer::Queued);
        assert!(matches!(q.next(None), Work::Frame(f) if f.data()[0] == 2));
    }
}
