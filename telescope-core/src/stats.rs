//! Counters the application and the harness read while a Telescope runs.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};

use serde::{Deserialize, Serialize};

use crate::warmup::WarmupEstimate;
use crate::Rate;

/// Lifecycle states of a [`crate::Telescope`] (serialized in lower case: `warmingup`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
#[non_exhaustive]
pub enum StateKind {
    #[default]
    /// Created, not started.
    Idle,
    /// Started; measuring frame rate and size from the first frames.
    WarmingUp,
    /// Frames flow into the pipeline.
    Streaming,
    /// The pipeline failed; restarting after a backoff, or given up (see `last_error`).
    Failed,
    /// Stopped; can be started again.
    Stopped,
}

/// Why a frame handed to `put` did not reach the encoder. Every drop is counted by reason.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[non_exhaustive]
pub enum DropReason {
    /// The queue was full and the overflow policy discarded a frame.
    QueueFull,
    /// `put` was called while the Telescope was not started (or already stopped).
    NotRunning,
    /// Kept in reports for compatibility: a full warmup budget now ends the warmup instead of
    /// dropping frames, so nothing is counted here.
    WarmupBudget,
    /// The frame's size differed from the stream's and the policy is to drop it.
    SizeMismatch,
    /// The frame's capture time was earlier than a frame already streamed.
    OutOfOrder,
    /// The pipeline had failed for good (restarts exhausted).
    Failed,
    /// The pipeline refused the frame (for example while it was being torn down for a restart).
    PipelineRefused,
}

impl DropReason {
    /// Every reason, in a stable order.
    pub const ALL: [DropReason; 7] = [
        DropReason::QueueFull,
        DropReason::NotRunning,
        DropReason::WarmupBudget,
        DropReason::SizeMismatch,
        DropReason::OutOfOrder,
        DropReason::Failed,
        DropReason::PipelineRefused,
    ];

    /// A short snake_case name for reports.
    pub fn name(self) -> &'static str {
        match self {
            DropReason::QueueFull => "queue_full",
            DropReason::NotRunning => "not_running",
            DropReason::WarmupBudget => "warmup_budget",
            DropReason::SizeMismatch => "size_mismatch",
            DropReason::OutOfOrder => "out_of_order",
            DropReason::Failed => "failed",
            DropReason::PipelineRefused => "pipeline_refused",
        }
    }

    fn index(self) -> usize {
        DropReason::ALL.iter().position(|r| *r == self).unwrap_or(0)
    }
}

/// Lock-free counters updated from `put` and the worker.
#[derive(Debug, Default)]
pub(crate) struct Counters {
    pub put: AtomicU64,
    pub pushed: AtomicU64,
    pub dropped: [AtomicU64; DropReason::ALL.len()],
    pub restarts: AtomicU64,
    pub size_changes: AtomicU64,
    pub overlay_drawn: AtomicU64,
    pub overlay_errors: AtomicU64,
}

impl Counters {
    pub fn drop(&self, reason: DropReason) {
        self.dropped[reason.index()].fetch_add(1, Ordering::Relaxed);
    }
    pub fn dropped(&self, reason: DropReason) -> u64 {
        self.dropped[reason.index()].load(Ordering::Relaxed)
    }
}

/// A snapshot of a Telescope's counters. Serialized flat, as reports and the Python `stats()`
/// show it: `dropped` as a map of reason names, the warmup estimate as `rate`, `fps`, `width`,
/// `height` and `warmup_frames`; fields missing when read back take their defaults.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(into = "StatsRecord", from = "StatsRecord")]
#[non_exhaustive]
pub struct Stats {
    /// Current state.
    pub state: StateKind,
    /// Frames handed to `put` (accepted or not).
    pub frames_put: u64,
    /// Frames pushed into the pipeline.
    pub frames_pushed: u64,
    /// Frames waiting in the queue.
    pub queue_depth: usize,
    /// Frames held by the warmup, to be streamed once it ends.
    pub warmup_held: usize,
    /// Drops by reason (every reason listed, zero included).
    pub dropped: Vec<(DropReason, u64)>,
    /// Frames the constant-rate stage emitted (sum over pipeline incarnations).
    pub frames_out: u64,
    /// Frames the constant-rate stage duplicated to fill gaps.
    pub frames_duplicated: u64,
    /// Frames the constant-rate stage dropped because input came faster than the output rate.
    pub frames_rate_dropped: u64,
    /// Automatic pipeline restarts after errors.
    pub restarts: u64,
    /// Frames whose size differed from the stream's.
    pub size_changes: u64,
    /// Frames the overlay scene was drawn on.
    pub overlay_drawn: u64,
    /// Frames streamed without the overlay because drawing failed (see `last_error`).
    pub overlay_errors: u64,
    /// The warmup result, once known.
    pub estimate: Option<WarmupEstimate>,
    /// The H.264 encoder element in use.
    pub encoder: Option<String>,
    /// The last pipeline error, if any.
    pub last_error: Option<String>,
}

/// The serialized form of [`Stats`]: one place says which names reports and Python use.
#[derive(Debug, Default, Serialize, Deserialize)]
#[serde(default)]
struct StatsRecord {
    state: StateKind,
    frames_put: u64,
    frames_pushed: u64,
    queue_depth: usize,
    warmup_held: usize,
    dropped: BTreeMap<String, u64>,
    frames_out: u64,
    frames_duplicated: u64,
    frames_rate_dropped: u64,
    restarts: u64,
    size_changes: u64,
    overlay_drawn: u64,
    overlay_errors: u64,
    /// The stream's rate as written (`30000/1001`).
    rate: Option<String>,
    /// The same rate in frames per second.
    fps: Option<f64>,
    width: Option<u32>,
    height: Option<u32>,
    /// Frames the warmup looked at.
    warmup_frames: Option<usize>,
    encoder: Option<String>,
    last_error: Option<String>,
}

impl From<Stats> for StatsRecord {
    fn from(s: Stats) -> Self {
        let e = s.estimate;
        StatsRecord {
            state: s.state,
            frames_put: s.frames_put,
            frames_pushed: s.frames_pushed,
            queue_depth: s.queue_depth,
            warmup_held: s.warmup_held,
            dropped: s
                .dropped
                .iter()
                .map(|(r, n)| (r.name().to_owned(), *n))
                .collect(),
            frames_out: s.frames_out,
            frames_duplicated: s.frames_duplicated,
            frames_rate_dropped: s.frames_rate_dropped,
            restarts: s.restarts,
            size_changes: s.size_changes,
            overlay_drawn: s.overlay_drawn,
            overlay_errors: s.overlay_errors,
            rate: e.map(|e| e.rate.to_string()),
            fps: e.map(|e| e.rate.fps()),
            width: e.map(|e| e.width),
            height: e.map(|e| e.height),
            warmup_frames: e.map(|e| e.frames),
            encoder: s.encoder,
            last_error: s.last_error,
        }
    }
}

impl From<StatsRecord> for Stats {
    /// Reading a report back: an estimate needs its rate and size (its measurement details are
    /// not reported); reasons this version does not know are left out.
    fn from(r: StatsRecord) -> Self {
        let rate = r.rate.as_deref().and_then(|s| s.parse::<Rate>().ok());
        let estimate = match (rate, r.width, r.height) {
            (Some(rate), Some(width), Some(height)) => Some(WarmupEstimate {
                rate,
                width,
                height,
                frames: r.warmup_frames.unwrap_or(0),
                measured_fps: rate.fps(),
                relative_error: 0.0,
                configured: false,
            }),
            _ => None,
        };
        let dropped = DropReason::ALL
            .iter()
            .map(|reason| (*reason, r.dropped.get(reason.name()).copied().unwrap_or(0)))
            .collect();
        Stats {
            state: r.state,
            frames_put: r.frames_put,
            frames_pushed: r.frames_pushed,
            queue_depth: r.queue_depth,
            warmup_held: r.warmup_held,
            dropped,
            frames_out: r.frames_out,
            frames_duplicated: r.frames_duplicated,
            frames_rate_dropped: r.frames_rate_dropped,
            restarts: r.restarts,
            size_changes: r.size_changes,
            overlay_drawn: r.overlay_drawn,
            overlay_errors: r.overlay_errors,
            estimate,
            encoder: r.encoder,
            last_error: r.last_error,
        }
    }
}

impl Default for Stats {
    /// A Telescope that has not started: every count zero, every drop reason listed.
    fn default() -> Self {
        StatsRecord::default().into()
    }
}

impl Stats {
    /// Frames dropped for `reason`.
    pub fn dropped(&self, reason: DropReason) -> u64 {
        self.dropped
            .iter()
            .find(|(r, _)| *r == reason)
            .map_or(0, |(_, n)| *n)
    }
    /// Frames dropped for any reason.
    pub fn dropped_total(&self) -> u64 {
        self.dropped.iter().map(|(_, n)| n).sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stats_serialize_flat_and_read_back() {
        let rate: Rate = "30000/1001".parse().unwrap();
        let mut stats = Stats {
            state: StateKind::WarmingUp,
            frames_put: 7,
            estimate: Some(WarmupEstimate {
                rate,
                width: 640,
                height: 480,
                frames: 12,
                measured_fps: 29.9,
                relative_error: 0.01,
                configured: false,
            }),
            ..Stats::default()
        };
        stats.dropped[DropReason::QueueFull.index()].1 = 2;
        let json = serde_json::to_value(&stats).unwrap();
        assert_eq!(json["state"], "warmingup");
        assert_eq!(json["frames_put"], 7);
        assert_eq!(json["dropped"]["queue_full"], 2);
        assert_eq!(json["dropped"]["pipeline_refused"], 0);
        assert_eq!(json["rate"], "30000/1001");
        assert!((json["fps"].as_f64().unwrap() - 29.97).abs() < 0.01);
        assert_eq!(
            (json["width"].clone(), json["warmup_frames"].clone()),
            (640.into(), 12.into())
        );

        let back: Stats = serde_json::from_value(json).unwrap();
        assert_eq!(back.dropped(DropReason::QueueFull), 2);
        assert_eq!(back.frames_put, 7);
        assert_eq!(
            back.estimate.map(|e| (e.rate, e.width, e.frames)),
            Some((rate, 640, 12))
        );

        // A report written before a counter existed reads it as zero.
        let old: Stats =
            serde_json::from_str(r#"{"frames_put": 3, "dropped": {"gone": 1}}"#).unwrap();
        assert_eq!((old.frames_put, old.dropped_total()), (3, 0));
        assert_eq!(old.dropped.len(), DropReason::ALL.len());
        assert_eq!(old.estimate, None);
    }
}
