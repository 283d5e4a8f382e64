//! Typed errors at the library's boundaries.

use std::path::PathBuf;

use crate::frame::PixelFormat;

/// A frame's description does not match its pixels.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum FrameError {
    /// Width or height is zero.
    #[error("frame size {width}x{height} is empty")]
    EmptySize { width: u32, height: u32 },
    /// The format subsamples chroma by two, so both dimensions must be even.
    #[error("{format:?} needs even width and height, got {width}x{height}")]
    OddSize {
        format: PixelFormat,
        width: u32,
        height: u32,
    },
    /// The row stride is shorter than one row of pixels.
    #[error("stride {stride} is shorter than a {format:?} row of {width} pixels ({min} bytes)")]
    StrideTooSmall {
        format: PixelFormat,
        width: u32,
        stride: usize,
        min: usize,
    },
    /// The buffer is shorter than the frame it describes.
    #[error(
        "buffer of {actual} bytes is too short for {format:?} {width}x{height} (needs {expected})"
    )]
    BufferTooShort {
        format: PixelFormat,
        width: u32,
        height: u32,
        expected: usize,
        actual: usize,
    },
    /// The pixel layout has no Telescope equivalent (for example a 16-bit or 4-channel `Mat`).
    #[error("unsupported pixel format: {0}")]
    UnsupportedFormat(String),
    /// The size does not fit in memory arithmetic.
    #[error("frame size {width}x{height} overflows")]
    TooLarge { width: u32, height: u32 },
}

/// Everything else that can go wrong while configuring or running a [`crate::Telescope`].
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TelescopeError {
    /// GStreamer could not be initialised (missing libraries or plugins path).
    #[error("GStreamer failed to initialise: {0}")]
    GStreamerInit(String),
    /// A GStreamer element the pipeline needs is not installed.
    #[error("GStreamer element `{element}` is not installed ({hint})")]
    MissingElement {
        element: &'static str,
        hint: &'static str,
    },
    /// No H.264 encoder could be found or opened.
    #[error(
        "no usable H.264 encoder (tried {tried}); install gstreamer1.0-plugins-ugly for x264enc"
    )]
    NoEncoder { tried: String },
    /// The configuration is inconsistent.
    #[error("invalid configuration: {0}")]
    Config(String),
    /// A file sink path has an extension Telescope cannot mux.
    #[error("cannot choose a container for {path}: use .mkv, .mp4 or .ts")]
    UnsupportedContainer { path: PathBuf },
    /// The output file's directory does not exist or is not writable.
    #[error("cannot write {path}: {reason}")]
    Unwritable { path: PathBuf, reason: String },
    /// The pipeline could not be built or changed state.
    #[error("pipeline: {0}")]
    Pipeline(String),
    /// The operation is not valid in the current state.
    #[error("cannot {action} while {state:?}")]
    InvalidState {
        action: &'static str,
        state: crate::stats::StateKind,
    },
    /// The pipeline kept failing and the restart budget is spent.
    #[error("pipeline failed {restarts} times, giving up: {last_error}")]
    RestartsExhausted { restarts: u32, last_error: String },
    /// A frame was rejected.
    #[error(transparent)]
    Frame(#[from] FrameError),
    /// Kinesis Video Streams' control plane refused the stream (missing, not active, refused
    /// credentials...); said in the message, so not also a `source`.
    #[error("invalid configuration: {0}")]
    Kvs(crate::kvs::KvsError),
}

impl From<crate::kvs::KvsError> for TelescopeError {
    fn from(e: crate::kvs::KvsError) -> Self {
        TelescopeError::Kvs(e)
    }
}

impl From<gst::glib::BoolError> for TelescopeError {
    fn from(e: gst::glib::BoolError) -> Self {
        TelescopeError::Pipeline(e.to_string())
    }
}

impl From<gst::StateChangeError> for TelescopeError {
    fn from(e: gst::StateChangeError) -> Self {
        TelescopeError::Pipeline(format!("state change failed: {e}"))
    }
}
