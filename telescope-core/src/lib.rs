//! Telescope: re-stream the annotated frames of an edge video-analytics application.
//!
//! The application calls [`Telescope::put`] from its own loop; `put` never blocks. Frames go
//! through a bounded queue to a worker that first runs a [`Warmup`] (inferring the frame rate
//! and size from capture timestamps, unless both are configured), then feeds a GStreamer
//! pipeline that turns irregular arrival into a constant rate, encodes H.264 once and writes
//! every configured sink.
//!
//! ```no_run
//! use std::time::Duration;
//! use telescope::{Frame, PixelFormat, SinkConfig, Telescope, TelescopeConfig};
//!
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let config = TelescopeConfig::builder()
//!     .sink(SinkConfig::file("annotated.mkv")?)
//!     .build();
//! let telescope = Telescope::new(config)?;
//! telescope.start()?;
//! for i in 0..100u32 {
//!     let pixels = vec![0u8; 640 * 480 * 3];
//!     let at = Duration::from_millis(u64::from(i) * 100);
//!     let frame = Frame::from_vec(pixels, PixelFormat::Bgr8, 640, 480)?.at(at);
//!     telescope.put(frame);
//! }
//! let report = telescope.stop()?;
//! println!("{report:?}");
//! # Ok(())
//! # }
//! ```

pub mod annotation;
pub mod config;
pub mod encoder;
pub mod error;
pub mod frame;
pub mod images;
pub mod limits;
mod pipeline;
pub mod pool;
mod queue;
pub mod rate;
pub mod sink;
pub mod stats;
mod telescope;
pub mod warmup;

/// Amazon Kinesis Video Streams (the `telescope-kvs` crate): control plane, fragments, acks and
/// the native PutMedia client.
pub use telescope_kvs as kvs;
pub use telescope_kvs::{clock, credentials, units};

pub use clock::{Clock, SystemClock, VirtualClock};
pub use config::{
    OverflowPolicy, RestartPolicy, SizeChangePolicy, TelescopeConfig, TelescopeConfigBuilder,
};
pub use encoder::{EncoderConfig, EncoderKind, EncoderProfile};
pub use error::{FrameError, TelescopeError};
pub use frame::{Frame, FrameRef, PixelFormat};
pub use pool::{FramePool, PoolStats};
pub use rate::Rate;
pub use sink::{BasicAuth, FileSinkConfig, RtspMount, RtspServer, RtspServerConfig, SinkConfig};
pub use stats::{DropReason, StateKind, Stats};
pub use telescope::{wait_for, PutOutcome, StopReport, Telescope};
pub use warmup::{Warmup, WarmupConfig, WarmupEstimate};

/// Initialise GStreamer once; every public entry point that builds pipelines calls this.
pub fn init() -> Result<(), TelescopeError> {
    gst::init().map_err(|e| TelescopeError::GStreamerInit(e.to_string()))
}
