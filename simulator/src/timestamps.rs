//! Presentation times for decoded frames whose container gave none, or gave one twice.
//!
//! AVI has no presentation times, only a frame index: with B-frames (MPEG-4 Part 2 in the
//! DivX/Xvid style, packed or not) the demuxer stamps only some frames, and after the decoder
//! some frames carry the time of the frame before them while the slot after stays empty
//! (0.125, 0.125, 0.2085 at 23.976 fps). Taken at face value, two frames fall on one instant:
//! a node supersedes one of them and the constant-rate stage duplicates into the hole.
//!
//! [`Retimer`] gives every frame a strictly increasing time. A frame keeps the time it came
//! with when that time is later than its predecessor's by a quarter of a frame period or more;
//! the frames between two such anchors are spread evenly between them, and frames after the
//! last anchor (or when no anchor comes within [`Retimer::MAX_HELD`] frames) step by one frame
//! period, from the declared rate or else the intervals measured so far.

use std::collections::VecDeque;
use std::time::Duration;

use telescope::Rate;

/// Re-stamps a stream of frames so that every one has a distinct, increasing time.
#[derive(Debug)]
pub struct Retimer<T> {
    declared: Option<Duration>,
    measured: Option<Duration>,
    last: Option<Duration>,
    /// Frames that came with (about) the same time, not placed yet: the next different time
    /// tells whether the hole they belong in is before them or after.
    cluster: Option<(Duration, Vec<T>)>,
    /// Frames without a time since the last placed one.
    untimed: VecDeque<T>,
    ready: VecDeque<(T, Duration)>,
    repaired: u64,
}

impl<T> Retimer<T> {
    /// Frames held while waiting for a time, at most.
    pub const MAX_HELD: usize = 16;

    /// A retimer for a stream that declares `rate` (its container's frame rate), if any.
    pub fn new(rate: Option<Rate>) -> Self {
        Retimer {
            declared: rate.map(|r| r.frame_time(1)).filter(|d| !d.is_zero()),
            measured: None,
            last: None,
            cluster: None,
            untimed: VecDeque::new(),
            ready: VecDeque::new(),
            repaired: 0,
        }
    }

    /// Learns the declared rate once it is known (a decoder's caps arrive with its first frame).
    pub fn declare(&mut self, rate: Option<Rate>) {
        if self.declared.is_none() {
            self.declared = rate.map(|r| r.frame_time(1)).filter(|d| !d.is_zero());
        }
    }

    /// The declared period, else the one measured so far.
    fn known_period(&self) -> Option<Duration> {
        self.declared.or(self.measured)
    }

    /// One frame period for placing frames: known, else 1/30 s.
    fn period(&self) -> Duration {
        self.known_period()
            .unwrap_or(Duration::from_nanos(33_333_333))
    }

    /// How much later than another a time must be to fall in a slot of its own: half a
    /// period once a period is known, else just later.
    fn min_gap(&self) -> Duration {
        self.known_period()
            .map_or(Duration::from_nanos(1), |period| period / 2)
    }

    /// Frames whose time was interpolated or replaced so far.
    pub fn repaired(&self) -> u64 {
        self.repaired
    }

    /// Takes a frame with the time its container gave (`None`: no time).
    pub fn push(&mut self, item: T, time: Option<Duration>) {
        let Some(t) = time else {
            self.place_cluster();
            self.untimed.push_back(item);
            if self.untimed.len() > Self::MAX_HELD {
                self.step_untimed();
            }
            return;
        };
        let gap = self.min_gap();
        match &mut self.cluster {
            Some((at, frames)) if self.untimed.is_empty() && t < *at + gap => frames.push(item),
            _ => {
                self.place_cluster();
                self.spread_untimed_until(t);
                self.cluster = Some((t, vec![item]));
            }
        }
    }

    /// The stream ended: what is held is placed.
    pub fn finish(&mut self) {
        self.place_cluster();
        self.step_untimed();
    }

    /// The next frame with its final time, in order.
    pub fn pop(&mut self) -> Option<(T, Duration)> {
        self.ready.pop_front()
    }

    fn emit(&mut self, item: T, at: Duration, repaired: bool) {
        if let Some(last) = self.last {
            let gap = at.saturating_sub(last);
            // A smoothed interval for streams that declare no rate.
            self.measured = Some(match self.measured {
                Some(m) => (m * 7 + gap) / 8,
                None => gap,
            });
        }
        self.repaired += u64::from(repaired);
        self.last = Some(at);
        self.ready.push_back((item, at));
    }

    /// Places frames that came with one time `at` on consecutive slots: ending at `at` when
    /// the hole before it has room (a demuxer stamped a run late), else from the slot after
    /// the last placed frame on (a decoder stamped them early; the run moves on until it
    /// meets the hole further on). A single frame keeps its time unless that collides with
    /// the frame before.
    fn place_cluster(&mut self) {
        let Some((at, frames)) = self.cluster.take() else {
            return;
        };
        let period = self.period();
        let later = frames.len() as u32 - 1;
        let start = match self.last {
            None => at.saturating_sub(period * later),
            Some(last) if at < last + self.min_gap() => last + period,
            Some(last) => {
                // Whole empty slots between the last frame and `at`, filled from the run.
                let slots = (at - last).as_secs_f64() / period.as_secs_f64();
                let hole = (slots.round() as u32).saturating_sub(1);
                at - period * hole.min(later)
            }
        };
        for (i, item) in frames.into_iter().enumerate() {
            let slot = start + period * i as u32;
            self.emit(item, slot, slot != at);
        }
    }

    /// Frames without a time fall evenly between the last placed frame and `next`, when they
    /// fit there half a period apart or more; else they step on by one period.
    fn spread_untimed_until(&mut self, next: Duration) {
        let n = self.untimed.len() as u32;
        if n == 0 {
            return;
        }
        let Some(last) = self.last else {
            // Before the first time: one period apart, ending one period before it.
            let period = self.period();
            let first = next.saturating_sub(period * n);
            for i in 0..n {
                if let Some(item) = self.untimed.pop_front() {
                    self.emit(item, first + period * i, true);
                }
            }
            return;
        };
        let step = next.saturating_sub(last) / (n + 1);
        if step >= self.min_gap() {
            for i in 1..=n {
                if let Some(item) = self.untimed.pop_front() {
                    self.emit(item, last + step * i, true);
                }
            }
        } else {
            self.step_untimed();
        }
    }

    fn step_untimed(&mut self) {
        while let Some(item) = self.untimed.pop_front() {
            let at = self
                .last
                .map_or(Duration::ZERO, |last| last + self.period());
            self.emit(item, at, true);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn ms(v: u64) -> Duration {
        Duration::from_millis(v)
    }

    fn run(rate: Option<Rate>, times: &[Option<Duration>]) -> Vec<Duration> {
        let mut r = Retimer::new(rate);
        let mut out = Vec::new();
        for (i, t) in times.iter().enumerate() {
            r.push(i, *t);
            while let Some((item, at)) = r.pop() {
                out.push((item, at));
            }
        }
        r.finish();
        while let Some(x) = r.pop() {
            out.push(x);
        }
        let order: Vec<usize> = out.iter().map(|(i, _)| *i).collect();
        assert_eq!(order, (0..times.len()).collect::<Vec<_>>(), "order kept");
        out.into_iter().map(|(_, t)| t).collect()
    }

    #[test]
    fn a_repeated_time_moves_into_the_empty_slot() {
        // As decoded from an AVI with B-frames at 24000/1001: the 166.8 ms slot is empty.
        let rate = Rate::new(24000, 1001);
        let t = |v: f64| Some(Duration::from_secs_f64(v));
        let out = run(
            rate,
            &[t(0.0), t(0.0417), t(0.0834), t(0.125), t(0.125), t(0.2085)],
        );
        assert_eq!(out[3], Duration::from_secs_f64(0.125));
        let fixed = out[4].as_secs_f64();
        assert!((fixed - 0.16675).abs() < 0.001, "{fixed}");
        assert_eq!(out[5], Duration::from_secs_f64(0.2085));
    }

    /// As GStreamer decodes an AVI of MPEG-4 Part 2 with B-frames from ffmpeg: a run of frames
    /// one slot early after a repeated time, and the hole where the run ends.
    #[test]
    fn a_run_of_frames_one_slot_early_moves_on_into_the_hole() {
        let rate = Rate::new(24000, 1001).unwrap();
        let slot = |n: u64| Some(rate.frame_time(n));
        let times = [
            slot(0),
            slot(1),
            slot(1),
            slot(2),
            slot(3),
            slot(5),
            slot(6),
        ];
        let out = run(Some(rate), &times);
        for (n, at) in out.iter().enumerate() {
            let error = at.abs_diff(rate.frame_time(n as u64));
            assert!(error < Duration::from_micros(1), "frame {n}: {out:?}");
        }
    }

    /// As GStreamer decodes an MPEG program stream with B-frames: a hole of two slots, then
    /// three frames with the time of the hole's end.
    #[test]
    fn a_run_stamped_late_moves_back_into_the_hole_before_it() {
        let rate = Rate::new(24000, 1001).unwrap();
        let slot = |n: u64| Some(rate.frame_time(n));
        let times = [slot(0), slot(1), slot(4), slot(4), slot(4), slot(5)];
        let out = run(Some(rate), &times);
        for (n, at) in out.iter().enumerate() {
            let error = at.abs_diff(rate.frame_time(n as u64));
            assert!(error < Duration::from_micros(1), "frame {n}: {out:?}");
        }
    }

    #[test]
    fn missing_times_are_interpolated_between_neighbours() {
        let out = run(
            None,
            &[Some(ms(0)), None, None, Some(ms(300)), Some(ms(400))],
        );
        assert_eq!(out, [ms(0), ms(100), ms(200), ms(300), ms(400)]);
    }

    #[test]
    fn times_missing_at_the_end_or_start_step_by_the_declared_period() {
        let rate = Rate::new(10, 1);
        let out = run(rate, &[Some(ms(0)), Some(ms(100)), None, None]);
        assert_eq!(out, [ms(0), ms(100), ms(200), ms(300)]);
        let out = run(rate, &[None, None, Some(ms(500)), Some(ms(600))]);
        assert!(out[0] < out[1] && out[1] < out[2], "{out:?}");
        assert_eq!(out[2], ms(500));
    }

    #[test]
    fn near_duplicates_are_not_taken_as_distinct_frames() {
        // 4 ns apart, as a decoder's interpolation and the container disagree.
        let rate = Rate::new(24000, 1001);
        let a = Duration::from_nanos(917_583_329);
        let b = Duration::from_nanos(917_583_333);
        let out = run(rate, &[Some(a), Some(b), Some(ms(1001))]);
        assert!(out[1] - out[0] > ms(20), "{out:?}");
    }

    #[test]
    fn too_many_frames_without_a_time_are_not_held_for_ever() {
        let mut r = Retimer::new(Rate::new(10, 1));
        r.push(0usize, Some(ms(0)));
        for i in 1..=(Retimer::<usize>::MAX_HELD + 1) {
            r.push(i, None);
        }
        let mut released = 0;
        while r.pop().is_some() {
            released += 1;
        }
        assert_eq!(
            released,
            Retimer::<usize>::MAX_HELD + 2,
            "released once the bound is passed"
        );
    }

    proptest! {
        #[test]
        fn every_frame_comes_out_once_with_increasing_times(
            times in proptest::collection::vec(proptest::option::of(0u64..5_000), 0..80),
            fps in proptest::option::of(1u32..120),
        ) {
            let times: Vec<Option<Duration>> = times.into_iter().map(|t| t.map(ms)).collect();
            let out = run(fps.and_then(|f| Rate::new(f, 1)), &times);
            prop_assert_eq!(out.len(), times.len());
            for w in out.windows(2) {
                prop_assert!(w[1] > w[0], "{:?}", out);
            }
        }

        #[test]
        fn regular_times_are_kept_as_they_are(
            n in 1usize..60, period_ms in 5u64..1000, jitter in proptest::collection::vec(0u64..2, 60),
        ) {
            let times: Vec<Option<Duration>> =
                (0..n).map(|i| Some(ms(i as u64 * period_ms + jitter[i]))).collect();
            let out = run(None, &times);
            let expected: Vec<Duration> = times.iter().map(|t| t.unwrap()).collect();
            prop_assert_eq!(out, expected);
        }
    }
}
