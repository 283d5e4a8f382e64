//! Running stored H.264 frames through a short GStreamer chain: `appsrc` (the track's AVC caps
//! with its codec data) ! the chain ! `appsink`, returning what comes out. The TS muxer and
//! the image encoder use it; it blocks, so callers run it on a blocking thread.

use std::time::{Duration, Instant};

use gst::prelude::*;
use gst_app::{AppSink, AppSrc};

use super::matroska::Track;

/// One access unit to push.
#[derive(Debug, Clone)]
pub struct Unit<'a> {
    pub data: &'a [u8],
    pub pts: Duration,
    pub dts: Option<Duration>,
    pub key: bool,
}

/// Why a chain did not run.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum RepackError {
    #[error("GStreamer element `{0}` is missing (ci/setup installs GStreamer's plugins)")]
    MissingElement(&'static str),
    #[error("GStreamer: {0}")]
    Pipeline(String),
    #[error("GStreamer produced nothing within {0:?}")]
    Timeout(Duration),
}

/// Make an element of `factory`.
pub fn make(factory: &'static str) -> Result<gst::Element, RepackError> {
    init()?;
    gst::ElementFactory::make(factory)
        .build()
        .map_err(|_| RepackError::MissingElement(factory))
}

fn init() -> Result<(), RepackError> {
    static INIT: std::sync::OnceLock<Result<(), String>> = std::sync::OnceLock::new();
    INIT.get_or_init(|| gst::init().map_err(|e| e.to_string()))
        .clone()
        .map_err(RepackError::Pipeline)
}

fn pipeline_error(e: impl std::fmt::Display) -> RepackError {
    RepackError::Pipeline(e.to_string())
}

/// Push `units` through `chain` (linked in order) and collect every output buffer.
pub fn run(
    track: &Track,
    chain: Vec<gst::Element>,
    units: &[Unit<'_>],
    timeout: Duration,
) -> Result<Vec<Vec<u8>>, RepackError> {
    init()?;
    let caps = gst::Caps::builder("video/x-h264")
        .field("stream-format", "avc")
        .field("alignment", "au")
        .field(
            "codec_data",
            gst::Buffer::from_slice(track.codec_private.clone()),
        )
        .field("width", i32::try_from(track.width).unwrap_or(0).max(1))
        .field("height", i32::try_from(track.height).unwrap_or(0).max(1))
        .build();
    let appsrc = AppSrc::builder()
        .caps(&caps)
        .format(gst::Format::Time)
        .is_live(false)
        .block(false)
        .max_bytes(0)
        .build();
    let appsink = AppSink::builder().sync(false).build();
    let pipeline = gst::Pipeline::new();
    let mut all: Vec<gst::Element> = vec![appsrc.clone().upcast()];
    all.extend(chain);
    all.push(appsink.clone().upcast());
    pipeline.add_many(&all).map_err(pipeline_error)?;
    gst::Element::link_many(&all).map_err(pipeline_error)?;
    let result = push_and_pull(&pipeline, &appsrc, &appsink, units, timeout);
    let _ = pipeline.set_state(gst::State::Null);
    result
}

fn push_and_pull(
    pipeline: &gst::Pipeline,
    appsrc: &AppSrc,
    appsink: &AppSink,
    units: &[Unit<'_>],
    timeout: Duration,
) -> Result<Vec<Vec<u8>>, RepackError> {
    pipeline
        .set_state(gst::State::Playing)
        .map_err(pipeline_error)?;
    for u in units {
        let mut buffer = gst::Buffer::from_slice(u.data.to_vec());
        if let Some(b) = buffer.get_mut() {
            b.set_pts(gst::ClockTime::from_nseconds(u.pts.as_nanos() as u64));
            b.set_dts(
                u.dts
                    .map(|d| gst::ClockTime::from_nseconds(d.as_nanos() as u64)),
            );
            if !u.key {
                b.set_flags(gst::BufferFlags::DELTA_UNIT);
            }
        }
        appsrc.push_buffer(buffer).map_err(pipeline_error)?;
    }
    appsrc.end_of_stream().map_err(pipeline_error)?;
    let deadline = Instant::now() + timeout;
    let bus = pipeline.bus().ok_or_else(|| pipeline_error("no bus"))?;
    let mut out = Vec::new();
    loop {
        if let Some(sample) = appsink.try_pull_sample(gst::ClockTime::from_mseconds(20)) {
            if let Some(map) = sample.buffer().and_then(|b| b.map_readable().ok()) {
                out.push(map.as_slice().to_vec());
            }
            continue;
        }
        if appsink.is_eos() {
            return Ok(out);
        }
        if let Some(msg) = bus.pop_filtered(&[gst::MessageType::Error]) {
            if let gst::MessageView::Error(e) = msg.view() {
                return Err(pipeline_error(e.error()));
            }
        }
        if Instant::now() >= deadline {
            return Err(RepackError::Timeout(timeout));
        }
    }
}
