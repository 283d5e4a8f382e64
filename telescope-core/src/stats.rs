//! Counters the application and the harness read while a Telescope runs.

use std::sync::atomic::{AtomicU64, Ordering};

use crate::warmup::WarmupEstimate;

/// Lifecycle states of a [`crate::Telescope`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum StateKind {
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

/// A snapshot of a Telescope's counters.
#[derive(Debug, Clone, PartialEq)]
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
