//! Configuration of a [`crate::Telescope`]: a typed struct with defaults, built with a builder.

use std::sync::Arc;
use std::time::Duration;

use crate::clock::{Clock, SystemClock};
use crate::encoder::EncoderConfig;
use crate::rate::Rate;
use crate::sink::SinkConfig;
use crate::warmup::WarmupConfig;

/// What `put` does when the queue is full. Either way the discarded frame is counted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum OverflowPolicy {
    /// Discard the oldest queued frame and keep the new one (viewers see the present).
    #[default]
    DropOldest,
    /// Discard the new frame and keep the queue as it is.
    DropNewest,
}

/// What happens when a frame's size differs from the stream's (set by config or warmup).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum SizeChangePolicy {
    /// Scale the frame to the stream's size inside the pipeline; the stream never breaks.
    #[default]
    Scale,
    /// Drop the frame (counted as [`crate::DropReason::SizeMismatch`]).
    Drop,
}

/// How the pipeline is restarted after an error.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RestartPolicy {
    /// Give up after this many consecutive failed incarnations (`None`: never give up).
    pub max_restarts: Option<u32>,
    /// Wait before the first restart (default 200 ms); doubles after each failure.
    pub initial_backoff: Duration,
    /// Upper bound of the wait (default 10 s).
    pub max_backoff: Duration,
}

impl Default for RestartPolicy {
    fn default() -> Self {
        RestartPolicy {
            max_restarts: Some(10),
            initial_backoff: Duration::from_millis(200),
            max_backoff: Duration::from_secs(10),
        }
    }
}

impl RestartPolicy {
    /// The wait before restart number `attempt` (1-based).
    pub fn backoff(&self, attempt: u32) -> Duration {
        crate::clock::Backoff::new(self.initial_backoff, self.max_backoff)
            .delay(attempt.saturating_sub(1))
    }
}

/// Everything a [`crate::Telescope`] needs; see each field for its default.
#[derive(Debug, Clone)]
pub struct TelescopeConfig {
    /// Output frame rate; measured by the warmup when `None` (default).
    pub fps: Option<Rate>,
    /// Output size; taken from the first frame when `None` (default).
    pub size: Option<(u32, u32)>,
    /// Where the encoded stream goes (at least one).
    pub sinks: Vec<SinkConfig>,
    /// Encoder choice and settings.
    pub encoder: EncoderConfig,
    /// Frames the queue between `put` and the pipeline holds (default 8).
    pub queue_capacity: usize,
    /// What a full queue does (default drop-oldest).
    pub overflow: OverflowPolicy,
    /// What a frame of another size does (default scale).
    pub size_change: SizeChangePolicy,
    /// Restarts after pipeline errors.
    pub restart: RestartPolicy,
    /// Warmup tuning.
    pub warmup: WarmupConfig,
    /// Stamps frames that arrive without a capture time (default: the system clock).
    pub clock: Arc<dyn Clock>,
    /// How long `stop` waits for the sinks to finish writing (default 10 s).
    pub stop_timeout: Duration,
    /// A name for logs and pipeline names (default `telescope`).
    pub name: String,
    /// A scene drawn on every frame before encoding (default none).
    #[cfg(feature = "opencv")]
    pub overlay: Option<crate::annotation::Overlay>,
}

impl Default for TelescopeConfig {
    fn default() -> Self {
        TelescopeConfig {
            fps: None,
            size: None,
            sinks: Vec::new(),
            encoder: EncoderConfig::default(),
            queue_capacity: 8,
            overflow: OverflowPolicy::default(),
            size_change: SizeChangePolicy::default(),
            restart: RestartPolicy::default(),
            warmup: WarmupConfig::default(),
            clock: Arc::new(SystemClock::new()),
            stop_timeout: Duration::from_secs(10),
            name: "telescope".to_owned(),
            #[cfg(feature = "opencv")]
            overlay: None,
        }
    }
}

impl TelescopeConfig {
    /// Start from the defaults.
    pub fn builder() -> TelescopeConfigBuilder {
        TelescopeConfigBuilder {
            config: TelescopeConfig::default(),
        }
    }
}

/// Builder for [`TelescopeConfig`].
#[derive(Debug, Clone)]
pub struct TelescopeConfigBuilder {
    config: TelescopeConfig,
}

impl TelescopeConfigBuilder {
    /// Fix the output frame rate.
    pub fn fps(mut self, fps: Rate) -> Self {
        self.config.fps = Some(fps);
        self
    }
    /// Fix the output size.
    pub fn size(mut self, width: u32, height: u32) -> Self {
        self.config.size = Some((width, height));
        self
    }
    /// Add a sink.
    pub fn sink(mut self, sink: SinkConfig) -> Self {
        self.config.sinks.push(sink);
        self
    }
    /// Choose the encoder settings.
    pub fn encoder(mut self, encoder: EncoderConfig) -> Self {
        self.config.encoder = encoder;
        self
    }
    /// Queue length between `put` and the pipeline.
    pub fn queue_capacity(mut self, frames: usize) -> Self {
        self.config.queue_capacity = frames;
        self
    }
    /// Overflow policy.
    pub fn overflow(mut self, policy: OverflowPolicy) -> Self {
        self.config.overflow = policy;
        self
    }
    /// Size change policy.
    pub fn size_change(mut self, policy: SizeChangePolicy) -> Self {
        self.config.size_change = policy;
        self
    }
    /// Restart policy.
    pub fn restart(mut self, policy: RestartPolicy) -> Self {
        self.config.restart = policy;
        self
    }
    /// Warmup tuning.
    pub fn warmup(mut self, warmup: WarmupConfig) -> Self {
        self.config.warmup = warmup;
        self
    }
    /// The clock that stamps frames without a capture time.
    pub fn clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.config.clock = clock;
        self
    }
    /// How long `stop` waits for sinks to finish.
    pub fn stop_timeout(mut self, timeout: Duration) -> Self {
        self.config.stop_timeout = timeout;
        self
    }
    /// A name for logs.
    pub fn name(mut self, name: impl Into<String>) -> Self {
        self.config.name = name.into();
        self
    }
    /// Draw `overlay`'s scene on every frame before encoding; the app updates the scene
    /// through its own clone with [`crate::annotation::Overlay::set`].
    #[cfg(feature = "opencv")]
    pub fn overlay(mut self, overlay: crate::annotation::Overlay) -> Self {
        self.config.overlay = Some(overlay);
        self
    }
    /// The finished configuration.
    pub fn build(self) -> TelescopeConfig {
        self.config
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_up_to_the_cap() {
        let p = RestartPolicy::default();
        assert_eq!(p.backoff(1), Duration::from_millis(200));
        assert_eq!(p.backoff(2), Duration::from_millis(400));
        assert_eq!(p.backoff(6), Duration::from_millis(6400));
        assert_eq!(p.backoff(7), Duration::from_secs(10));
        assert_eq!(p.backoff(500), Duration::from_secs(10));
    }
}
