//! The handle the application holds: `start`, `put`, `stop`, `stats`.

use std::collections::VecDeque;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use gst::prelude::*;

use crate::config::{SizeChangePolicy, TelescopeConfig};
use crate::encoder::{self, EncoderKind};
use crate::error::TelescopeError;
use crate::frame::{Frame, FrameRef};
use crate::limits;
use crate::pipeline::{PushError, RateCounters, StreamPipeline};
use crate::pool::FramePool;
use crate::queue::{BusEvent, Inbox, Offer, Work};
use crate::stats::{Counters, DropReason, StateKind, Stats};
use crate::warmup::{Warmup, WarmupEstimate};

/// What became of a frame handed to [`Telescope::put`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PutOutcome {
    /// Queued for the pipeline.
    Queued,
    /// Queued; the queue was full, so its oldest frame was dropped (and counted).
    QueuedDroppedOldest,
    /// Not queued (and counted) for this reason.
    Rejected(DropReason),
}

impl PutOutcome {
    /// Whether the frame itself was accepted.
    pub fn is_queued(self) -> bool {
        !matches!(self, PutOutcome::Rejected(_))
    }
}

/// What `stop` returns: the final counters.
#[derive(Debug, Clone, PartialEq)]
pub struct StopReport {
    /// Counters at the end of the run.
    pub stats: Stats,
}

/// State shared by the handle and the worker.
#[derive(Debug, Default)]
struct Status {
    state: Option<StateKind>,
    estimate: Option<WarmupEstimate>,
    encoder: Option<String>,
    last_error: Option<String>,
    /// Why streaming ended for good, until the next start.
    failure: Option<String>,
    /// Constant-rate counters of finished incarnations.
    finished: RateCounters,
    /// Held by the warmup.
    warmup_held: usize,
    /// Next pipeline incarnation; keeps growing across restarts and start/stop cycles.
    next_incarnation: u32,
}

struct Shared {
    inbox: Arc<Inbox>,
    counters: Counters,
    status: Mutex<Status>,
    /// The running pipeline, for live counters and test fault injection.
    current: Mutex<Option<gst::Pipeline>>,
}

impl Shared {
    fn status(&self) -> MutexGuard<'_, Status> {
        self.status.lock().unwrap_or_else(|p| p.into_inner())
    }
    fn set_state(&self, state: StateKind) {
        let mut s = self.status();
        if s.state != Some(state) {
            tracing::info!(?state, "telescope state");
        }
        s.state = Some(state);
    }

    /// Streaming ended for good with `error`: queued frames are counted as lost, later `put`s
    /// are refused, and the state says Failed.
    fn fail(&self, error: &TelescopeError) {
        let queued = self.inbox.fail();
        for _ in 0..queued {
            self.counters.drop(DropReason::Failed);
        }
        let mut s = self.status();
        s.last_error = Some(error.to_string());
        s.failure = Some(error.to_string());
        s.state = Some(StateKind::Failed);
    }
}

/// Streams the application's frames to the configured sinks. Cheap to share: wrap it in an
/// `Arc` to `put` from several threads.
pub struct Telescope {
    config: TelescopeConfig,
    shared: Arc<Shared>,
    worker: Mutex<Option<JoinHandle<Result<(), TelescopeError>>>>,
    pool: FramePool,
}

impl std::fmt::Debug for Telescope {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Telescope")
            .field("name", &self.config.name)
            .field("state", &self.state())
            .finish()
    }
}

impl Telescope {
    /// A Telescope in the `Idle` state. Checks the configuration, builds nothing yet.
    pub fn new(config: TelescopeConfig) -> Result<Self, TelescopeError> {
        if config.sinks.is_empty() {
            return Err(TelescopeError::Config("at least one sink is needed".into()));
        }
        if config.queue_capacity == 0 {
            return Err(TelescopeError::Config(
                "queue_capacity must be at least 1".into(),
            ));
        }
        if let Some((w, h)) = config.size {
            if w == 0 || h == 0 || !w.is_multiple_of(2) || !h.is_multiple_of(2) {
                return Err(TelescopeError::Config(format!(
                    "output size {w}x{h} must be non-zero and even"
                )));
            }
            limits::check_size(w, h, &config.encoder.kind).map_err(TelescopeError::Config)?;
        }
        if let Some(rate) = config.fps {
            limits::check_rate(rate, config.size).map_err(TelescopeError::Config)?;
        }
        if let Some(kbps) = config.encoder.bitrate_kbps {
            limits::check_bitrate(kbps).map_err(TelescopeError::Config)?;
        }
        let inbox = Arc::new(Inbox::new(config.queue_capacity, config.overflow));
        Ok(Telescope {
            shared: Arc::new(Shared {
                inbox,
                counters: Counters::default(),
                status: Mutex::new(Status {
                    state: Some(StateKind::Idle),
                    ..Status::default()
                }),
                current: Mutex::new(None),
            }),
            // Frames alive at once: the queue, the one the worker holds, and those inside the
            // pipeline up to the converter (its own queue holds a few).
            pool: FramePool::new(config.queue_capacity + 8),
            config,
            worker: Mutex::new(None),
        })
    }

    /// The configuration this Telescope runs with.
    pub fn config(&self) -> &TelescopeConfig {
        &self.config
    }

    /// Current state.
    pub fn state(&self) -> StateKind {
        self.shared.status().state.unwrap_or(StateKind::Idle)
    }

    fn worker(&self) -> MutexGuard<'_, Option<JoinHandle<Result<(), TelescopeError>>>> {
        self.worker.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Start streaming: checks sinks and picks the encoder (errors surface here), then runs the
    /// warmup (or, with rate and size configured, builds the pipeline at once).
    pub fn start(&self) -> Result<(), TelescopeError> {
        let mut worker = self.worker();
        let state = self.state();
        if worker.is_some() || !matches!(state, StateKind::Idle | StateKind::Stopped) {
            return Err(TelescopeError::InvalidState {
                action: "start",
                state,
            });
        }
        crate::init()?;
        for sink in &self.config.sinks {
            sink.preflight()?;
        }
        let encoder = encoder::select(&self.config.encoder)?;
        if let Some((w, h)) = self.config.size {
            limits::check_size(w, h, &encoder).map_err(TelescopeError::Config)?;
        }
        {
            let mut s = self.shared.status();
            s.encoder = Some(encoder.factory().to_owned());
            s.last_error = None;
            s.failure = None;
            s.estimate = None;
        }
        self.shared.inbox.open();
        let warmup = Warmup::with_known(
            self.config.warmup.clone(),
            self.config.fps,
            self.config.size,
        );
        self.shared.set_state(if warmup.is_skipped() {
            StateKind::Streaming
        } else {
            StateKind::WarmingUp
        });
        let mut run = Worker {
            config: self.config.clone(),
            shared: self.shared.clone(),
            encoder,
            warmup,
            held: VecDeque::new(),
            held_bytes: 0,
            pipeline: None,
            failures: 0,
            fatal: None,
        };
        let shared = self.shared.clone();
        let handle = std::thread::Builder::new()
            .name(format!("{}-worker", self.config.name))
            .spawn(move || {
                // A panic must not leave the handle looking healthy: it fails the Telescope
                // like any other error, so `put` refuses frames and `stop` reports it.
                std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| run.run())).unwrap_or_else(
                    |panic| {
                        let what = panic
                            .downcast_ref::<&str>()
                            .map(|s| (*s).to_owned())
                            .or_else(|| panic.downcast_ref::<String>().cloned())
                            .unwrap_or_else(|| "no message".to_owned());
                        let error =
                            TelescopeError::Pipeline(format!("streaming thread panicked: {what}"));
                        shared.fail(&error);
                        Err(error)
                    },
                )
            })
            .map_err(|e| TelescopeError::Pipeline(format!("cannot start worker thread: {e}")))?;
        *worker = Some(handle);
        Ok(())
    }

    /// Hand a frame over without waiting. Frames without a capture time are stamped with the
    /// configured clock. Never blocks on the pipeline: when the queue is full the overflow
    /// policy drops a frame, and every drop is counted in [`Telescope::stats`].
    pub fn put(&self, mut frame: Frame) -> PutOutcome {
        self.stamp(&mut frame);
        self.account(self.shared.inbox.offer(frame))
    }

    /// Like [`Telescope::put`] for a borrowed frame: copies the pixels once, into a buffer
    /// from the Telescope's pool (no allocation per frame once the stream runs).
    pub fn put_ref(&self, frame: FrameRef<'_>) -> PutOutcome {
        self.put(self.pool.copy(frame))
    }

    /// The pool [`Telescope::put_ref`] copies into; bindings that copy frames themselves (any
    /// layout) build theirs from it with [`FramePool::build`].
    pub fn pool(&self) -> &FramePool {
        &self.pool
    }

    /// Hand a frame over, waiting for room in the queue instead of dropping: for offline
    /// sources such as file replays, where losing a frame is worse than waiting. Never call
    /// this from a live application loop.
    pub fn put_blocking(&self, mut frame: Frame) -> PutOutcome {
        self.stamp(&mut frame);
        self.account(self.shared.inbox.offer_wait(frame))
    }

    fn stamp(&self, frame: &mut Frame) {
        if frame.captured_at().is_none() {
            frame.set_captured_at(Some(self.config.clock.now()));
        }
    }

    fn account(&self, offer: Offer) -> PutOutcome {
        let c = &self.shared.counters;
        c.put.fetch_add(1, Ordering::Relaxed);
        match offer {
            Offer::Queued => PutOutcome::Queued,
            Offer::QueuedDroppedOldest => {
                c.drop(DropReason::QueueFull);
                PutOutcome::QueuedDroppedOldest
            }
            Offer::Rejected(reason) => {
                c.drop(reason);
                PutOutcome::Rejected(reason)
            }
        }
    }

    /// Stop: streams every queued frame, finalises the sinks (waiting at most `stop_timeout`),
    /// and returns the final counters. The Telescope can be started again afterwards.
    pub fn stop(&self) -> Result<StopReport, TelescopeError> {
        let handle = self.worker().take();
        let Some(handle) = handle else {
            return Err(TelescopeError::InvalidState {
                action: "stop",
                state: self.state(),
            });
        };
        self.shared.inbox.request_stop();
        let result = handle.join().unwrap_or_else(|_| {
            Err(TelescopeError::Pipeline(
                "the worker thread panicked".into(),
            ))
        });
        self.shared.set_state(StateKind::Stopped);
        result?;
        Ok(StopReport {
            stats: self.stats(),
        })
    }

    /// The error that ended streaming for good (restarts spent, a stream no encoder takes, a
    /// panic), until the next `start`; `None` while it streams, warms up or waits to restart.
    pub fn failure(&self) -> Option<String> {
        self.shared.status().failure.clone()
    }

    /// A snapshot of the counters.
    pub fn stats(&self) -> Stats {
        let c = &self.shared.counters;
        let live = self
            .shared
            .current
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .as_ref()
            .and_then(|p| p.by_name(crate::pipeline::VIDEORATE))
            .map(|v| RateCounters::read(&v))
            .unwrap_or_default();
        let s = self.shared.status();
        Stats {
            state: s.state.unwrap_or(StateKind::Idle),
            frames_put: c.put.load(Ordering::Relaxed),
            frames_pushed: c.pushed.load(Ordering::Relaxed),
            queue_depth: self.shared.inbox.depth(),
            warmup_held: s.warmup_held,
            dropped: DropReason::ALL
                .iter()
                .map(|r| (*r, c.dropped(*r)))
                .collect(),
            frames_out: s.finished.out + live.out,
            frames_duplicated: s.finished.duplicated + live.duplicated,
            frames_rate_dropped: s.finished.dropped + live.dropped,
            restarts: c.restarts.load(Ordering::Relaxed),
            size_changes: c.size_changes.load(Ordering::Relaxed),
            overlay_drawn: c.overlay_drawn.load(Ordering::Relaxed),
            overlay_errors: c.overlay_errors.load(Ordering::Relaxed),
            estimate: s.estimate,
            encoder: s.encoder.clone(),
            last_error: s.last_error.clone(),
        }
    }

    /// Make the running pipeline report an error, as a failing element would. For tests of
    /// the restart path (feature `testing`); does nothing when no pipeline runs.
    #[cfg(feature = "testing")]
    pub fn inject_pipeline_error(&self, message: &str) -> bool {
        let current = self
            .shared
            .current
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        let Some(pipeline) = current.as_ref() else {
            return false;
        };
        let Some(src) = pipeline.by_name("src") else {
            return false;
        };
        let msg = gst::message::Error::builder(gst::CoreError::Failed, message)
            .src(&src)
            .build();
        pipeline.bus().is_some_and(|bus| bus.post(msg).is_ok())
    }
}

impl Drop for Telescope {
    fn drop(&mut self) {
        if self.worker().is_some() {
            // A failure already reported through `failure()` is not news.
            let reported = self.failure().is_some();
            if let Err(e) = self.stop() {
                if reported {
                    tracing::debug!(error = %e, "failed telescope dropped");
                } else {
                    tracing::warn!(error = %e, "telescope stopped with an error while being dropped");
                }
            }
        }
    }
}

/// Why the worker left its streaming loop.
enum Exit {
    Stop,
    Failure(String),
}

/// The worker thread: warmup, pipeline, restarts.
struct Worker {
    config: TelescopeConfig,
    shared: Arc<Shared>,
    encoder: EncoderKind,
    warmup: Warmup,
    held: VecDeque<Frame>,
    held_bytes: usize,
    pipeline: Option<StreamPipeline>,
    failures: u32,
    /// An error no restart can mend (a measured size or rate no encoder takes).
    fatal: Option<TelescopeError>,
}

impl Worker {
    fn run(&mut self) -> Result<(), TelescopeError> {
        let result = self.run_inner();
        if let Some(p) = self.pipeline.take() {
            self.retire(p);
        }
        let dropped = self.held.len();
        for _ in 0..dropped {
            self.shared.counters.drop(DropReason::Failed);
        }
        self.held.clear();
        if let Err(e) = &result {
            self.shared.fail(e);
        }
        result
    }

    fn run_inner(&mut self) -> Result<(), TelescopeError> {
        if self.warmup.is_skipped() {
            let est = self.warmup.finish_now();
            self.shared.status().estimate = Some(est);
        }
        loop {
            let exit = self.stream();
            if let Some(fatal) = self.fatal.take() {
                return Err(fatal);
            }
            match exit {
                Exit::Stop => return self.finish(),
                Exit::Failure(message) => {
                    self.failures += 1;
                    self.shared
                        .counters
                        .restarts
                        .fetch_add(1, Ordering::Relaxed);
                    tracing::warn!(error = %message, failures = self.failures, "pipeline failed");
                    {
                        let mut s = self.shared.status();
                        s.last_error = Some(message.clone());
                    }
                    self.shared.set_state(StateKind::Failed);
                    if let Some(p) = self.pipeline.take() {
                        self.retire(p);
                    }
                    if self
                        .config
                        .restart
                        .max_restarts
                        .is_some_and(|max| self.failures > max)
                    {
                        return Err(TelescopeError::RestartsExhausted {
                            restarts: self.failures - 1,
                            last_error: message,
                        });
                    }
                    let wait = self.config.restart.backoff(self.failures);
                    if self.shared.inbox.wait_stop(wait) {
                        return self.finish();
                    }
                    if self.estimate().is_some() {
                        self.shared.set_state(StateKind::Streaming);
                    } else {
                        self.shared.set_state(StateKind::WarmingUp);
                    }
                }
            }
        }
    }

    fn estimate(&self) -> Option<WarmupEstimate> {
        self.warmup.estimate()
    }

    /// Stream until stop is requested or the pipeline fails.
    fn stream(&mut self) -> Exit {
        if self.estimate().is_some() {
            if let Err(e) = self.open() {
                return Exit::Failure(e.to_string());
            }
        }
        loop {
            match self.shared.inbox.next(None) {
                Work::Frame(frame) => {
                    if let Err(message) = self.accept(frame) {
                        return Exit::Failure(message);
                    }
                }
                Work::Event(BusEvent::Error {
                    incarnation,
                    message,
                }) => {
                    if self
                        .pipeline
                        .as_ref()
                        .is_some_and(|p| p.incarnation == incarnation)
                    {
                        return Exit::Failure(message);
                    }
                }
                Work::Event(BusEvent::Eos { .. }) | Work::Idle => {}
                Work::Stop => return Exit::Stop,
            }
        }
    }

    /// One frame from the queue: into the warmup, or into the pipeline.
    fn accept(&mut self, frame: Frame) -> Result<(), String> {
        if self.estimate().is_some() {
            return self.push(frame);
        }
        let at = frame.captured_at().unwrap_or_default();
        let mut done = self.warmup.observe(at, frame.width(), frame.height());
        self.hold(frame);
        if done.is_none() && self.held_bytes >= self.config.warmup.memory_budget {
            // Out of room for more: stream with what is known rather than drop frames.
            done = Some(self.warmup.finish_now());
        }
        if let Some(est) = done {
            let (w, h) = (est.width, est.height);
            if let Err(reason) = limits::check_size(w, h, &self.encoder)
                .and_then(|()| limits::check_rate(est.rate, Some((w, h))))
            {
                let reason =
                    format!("the stream measured by the warmup cannot be encoded: {reason}");
                self.fatal = Some(TelescopeError::Config(reason.clone()));
                return Err(reason);
            }
            self.shared.status().estimate = Some(est);
            self.shared.set_state(StateKind::Streaming);
            self.open().map_err(|e| e.to_string())?;
            self.release_held()?;
        }
        Ok(())
    }

    /// Keep a warmup frame until the warmup ends (which the memory budget bounds).
    fn hold(&mut self, frame: Frame) {
        self.held_bytes += frame.memory_size();
        self.held.push_back(frame);
        self.shared.status().warmup_held = self.held.len();
    }

    fn release_held(&mut self) -> Result<(), String> {
        while let Some(frame) = self.held.pop_front() {
            self.held_bytes -= frame.memory_size();
            self.shared.status().warmup_held = self.held.len();
            self.push(frame)?;
        }
        Ok(())
    }

    /// Build and start the next pipeline incarnation.
    fn open(&mut self) -> Result<(), TelescopeError> {
        let Some(est) = self.estimate() else {
            return Err(TelescopeError::Pipeline("no rate and size yet".into()));
        };
        let incarnation = {
            let mut s = self.shared.status();
            let n = s.next_incarnation;
            s.next_incarnation += 1;
            n
        };
        let p = StreamPipeline::build(
            &self.config,
            &self.encoder,
            est.width - est.width % 2,
            est.height - est.height % 2,
            est.rate,
            incarnation,
            self.shared.inbox.clone(),
        )?;
        *self
            .shared
            .current
            .lock()
            .unwrap_or_else(|p| p.into_inner()) = Some(p.pipeline.clone());
        let playing = p.play();
        let encoder = p.encoder;
        self.pipeline = Some(p);
        playing?;
        self.shared.status().encoder = Some(encoder.to_owned());
        tracing::info!(incarnation, rate = %est.rate, width = est.width, height = est.height, "pipeline playing");
        Ok(())
    }

    fn push(&mut self, #[allow(unused_mut)] mut frame: Frame) -> Result<(), String> {
        let Some(est) = self.estimate() else {
            return Ok(());
        };
        if (frame.width(), frame.height()) != (est.width, est.height) {
            self.shared
                .counters
                .size_changes
                .fetch_add(1, Ordering::Relaxed);
            if self.config.size_change == SizeChangePolicy::Drop {
                self.shared.counters.drop(DropReason::SizeMismatch);
                return Ok(());
            }
        }
        // Only frames that will be pushed are drawn on.
        #[cfg(feature = "opencv")]
        if self.pipeline.is_some() {
            self.draw_overlay(&mut frame);
        }
        let Some(pipeline) = self.pipeline.as_mut() else {
            self.shared.counters.drop(DropReason::PipelineRefused);
            return Ok(());
        };
        match pipeline.push(frame) {
            Ok(()) => {
                self.shared.counters.pushed.fetch_add(1, Ordering::Relaxed);
                // A frame went through: the pipeline works again, so backoff starts over.
                self.failures = 0;
                Ok(())
            }
            Err(PushError::OutOfOrder) => {
                self.shared.counters.drop(DropReason::OutOfOrder);
                Ok(())
            }
            Err(PushError::Refused(flow)) => {
                self.shared.counters.drop(DropReason::PipelineRefused);
                // Flushing means the pipeline is going down; its bus error explains why.
                if flow == gst::FlowError::Flushing {
                    Ok(())
                } else {
                    Err(format!("pipeline refused a frame: {flow:?}"))
                }
            }
        }
    }

    /// Draws the overlay scene on a frame about to be pushed. A failure streams the frame as
    /// it is, counted and reported in `last_error`.
    #[cfg(feature = "opencv")]
    fn draw_overlay(&mut self, frame: &mut Frame) {
        use crate::annotation::Driver;
        let Some(overlay) = self.config.overlay.as_ref() else {
            return;
        };
        let scene = overlay.current();
        if scene.annotations.is_empty() {
            return;
        }
        let time = overlay.frame_time(frame.captured_at());
        match crate::annotation::opencv::FrameDriver::new(frame).draw(&scene, Some(time)) {
            Ok(_) => {
                self.shared
                    .counters
                    .overlay_drawn
                    .fetch_add(1, Ordering::Relaxed);
            }
            Err(e) => {
                self.shared
                    .counters
                    .overlay_errors
                    .fetch_add(1, Ordering::Relaxed);
                self.shared.status().last_error = Some(format!("overlay: {e}"));
            }
        }
    }

    /// Stop requested: stream what the warmup holds, finalise the sinks.
    fn finish(&mut self) -> Result<(), TelescopeError> {
        if self.estimate().is_none() && !self.held.is_empty() {
            let est = self.warmup.finish_now();
            self.shared.status().estimate = Some(est);
            self.open()?;
            self.release_held().map_err(TelescopeError::Pipeline)?;
        }
        let Some(pipeline) = self.pipeline.take() else {
            return Ok(());
        };
        pipeline.end_of_stream();
        let deadline = Instant::now() + self.config.stop_timeout;
        let mut outcome = Err(TelescopeError::Pipeline(format!(
            "sinks did not finish within {:?}; output may be incomplete",
            self.config.stop_timeout
        )));
        while let Some(event) = self.shared.inbox.next_event(deadline) {
            match event {
                BusEvent::Eos { incarnation } if incarnation == pipeline.incarnation => {
                    outcome = Ok(());
                    break;
                }
                BusEvent::Error {
                    incarnation,
                    message,
                } if incarnation == pipeline.incarnation => {
                    outcome = Err(TelescopeError::Pipeline(message));
                    break;
                }
                _ => {}
            }
        }
        self.retire(pipeline);
        outcome
    }

    fn retire(&self, pipeline: StreamPipeline) {
        *self
            .shared
            .current
            .lock()
            .unwrap_or_else(|p| p.into_inner()) = None;
        let counters = pipeline.shutdown();
        let mut s = self.shared.status();
        s.finished.out += counters.out;
        s.finished.duplicated += counters.duplicated;
        s.finished.dropped += counters.dropped;
    }
}

/// Wait helper for tests and tools: poll `stats` until `pred` holds or `timeout` passes.
#[doc(hidden)]
pub fn wait_for(telescope: &Telescope, timeout: Duration, pred: impl Fn(&Stats) -> bool) -> bool {
    let deadline = Instant::now() + timeout;
    loop {
        if pred(&telescope.stats()) {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
}
