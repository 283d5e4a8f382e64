//! One incarnation of the GStreamer pipeline:
//! `appsrc ! videoscale ! videoconvert ! capsfilter ! videorate ! capsfilter ! ENCODER ! h264parse ! tee ! SINKS`.
//!
//! Scaling and conversion come first so that `videorate` always sees one format and size
//! (it resets on every caps change, so frames of changing size would otherwise never come out).
//! `videorate` turns capture-timestamped, irregular input into the constant rate encoders and
//! KVS expect, duplicating into gaps and dropping bursts (both counted).

use std::sync::Arc;
use std::time::Duration;

use gst::prelude::*;
use gst_app::AppSrc;

mod convert;

use crate::config::TelescopeConfig;
use crate::encoder::{self, EncoderKind};
use crate::error::TelescopeError;
use crate::frame::{Frame, PixelFormat};
use crate::pool::FramePool;
use crate::queue::{BusEvent, Inbox};
use crate::rate::Rate;
use crate::sink::make;

/// Counters of the constant-rate stage.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct RateCounters {
    pub out: u64,
    pub duplicated: u64,
    pub dropped: u64,
}

/// The name of the constant-rate stage, for finding it in a running pipeline.
pub(crate) const VIDEORATE: &str = "videorate";

impl RateCounters {
    /// Read a `videorate` element's counters.
    pub fn read(videorate: &gst::Element) -> RateCounters {
        RateCounters {
            out: videorate.property::<u64>("out"),
            duplicated: videorate.property::<u64>("duplicate"),
            dropped: videorate.property::<u64>("drop"),
        }
    }
}

/// Why a frame did not enter the pipeline.
#[derive(Debug)]
pub(crate) enum PushError {
    OutOfOrder,
    Refused(gst::FlowError),
}

pub(crate) struct StreamPipeline {
    pub pipeline: gst::Pipeline,
    appsrc: AppSrc,
    videorate: gst::Element,
    pub incarnation: u32,
    rate: Rate,
    caps_for: Option<(PixelFormat, u32, u32)>,
    /// I420 buffers of BGR frames converted before the push (`convert`).
    converted: FramePool,
    origin: Option<Duration>,
    last: Option<Duration>,
    pub encoder: &'static str,
}

impl StreamPipeline {
    /// Build (not start) the pipeline for a stream of `width`x`height` at `rate`.
    pub fn build(
        config: &TelescopeConfig,
        encoder_kind: &EncoderKind,
        width: u32,
        height: u32,
        rate: Rate,
        incarnation: u32,
        inbox: Arc<Inbox>,
    ) -> Result<Self, TelescopeError> {
        let pipeline = gst::Pipeline::with_name(&format!("{}-{incarnation}", config.name));
        let appsrc = AppSrc::builder()
            .name("src")
            .format(gst::Format::Time)
            .is_live(false)
            .do_timestamp(false)
            .block(true)
            .max_buffers(4)
            .stream_type(gst_app::AppStreamType::Stream)
            .build();
        let videorate = make("videorate", "gstreamer1.0-plugins-base")?;
        // Named, so that `Telescope::stats` finds it while the pipeline runs.
        videorate.set_property("name", VIDEORATE);
        // Start the output at the first frame rather than at zero, whatever its timestamp.
        videorate.set_property("skip-to-first", true);
        let (raw_filter, rate_filter) = raw_filters(width, height, rate)?;
        let chain = encoder::build(encoder_kind, &config.encoder, width, height, rate)?;
        let parse = make("h264parse", "gstreamer1.0-plugins-bad")?;
        // SPS/PPS before every key frame: late joiners and cut files can always start decoding.
        parse.set_property("config-interval", -1i32);
        let tee = make("tee", "gstreamer1.0-plugins-base")?;

        let mut main: Vec<gst::Element> = vec![
            appsrc.clone().upcast(),
            make("videoscale", "gstreamer1.0-plugins-base")?,
            make("videoconvert", "gstreamer1.0-plugins-base")?,
            raw_filter,
            videorate.clone(),
            rate_filter,
        ];
        main.extend(chain.elements);
        main.push(parse);
        main.push(tee.clone());
        pipeline.add_many(&main)?;
        gst::Element::link_many(&main)?;
        for (i, sink) in config.sinks.iter().enumerate() {
            let head = sink.build(&pipeline, i, incarnation)?;
            tee.link(&head)?;
        }
        watch_bus(&pipeline, inbox, incarnation)?;

        Ok(StreamPipeline {
            pipeline,
            appsrc,
            videorate,
            incarnation,
            rate,
            caps_for: None,
            // appsrc holds 4 buffers, the encoder's lookahead a few more: those come back.
            converted: FramePool::new(8),
            origin: None,
            last: None,
            encoder: chain.name,
        })
    }

    /// Set the pipeline playing.
    pub fn play(&self) -> Result<(), TelescopeError> {
        self.pipeline.set_state(gst::State::Playing)?;
        Ok(())
    }

    /// Hand one frame to the pipeline, wrapping its pixels without copying them.
    pub fn push(&mut self, frame: Frame) -> Result<(), PushError> {
        let captured = frame.captured_at().unwrap_or_default();
        if self.last.is_some_and(|last| captured < last) {
            return Err(PushError::OutOfOrder);
        }
        let origin = *self.origin.get_or_insert(captured);
        self.last = Some(captured);
        // BGR becomes I420 here, a few times cheaper than videoconvert (which passes it on).
        let frame = convert::bgr_to_i420(&frame, &self.converted).unwrap_or(frame);
        let key = (frame.format(), frame.width(), frame.height());
        if self.caps_for != Some(key) {
            let info = gst_video::VideoInfo::builder(
                frame.format().video_format(),
                frame.width(),
                frame.height(),
            )
            .fps(gst::Fraction::new(0, 1))
            .build()
            .map_err(|_| PushError::Refused(gst::FlowError::NotNegotiated))?;
            let caps = info
                .to_caps()
                .map_err(|_| PushError::Refused(gst::FlowError::NotNegotiated))?;
            self.appsrc.set_caps(Some(&caps));
            self.caps_for = Some(key);
        }
        let layout = frame.layout();
        let format = frame.format().video_format();
        let (w, h) = (frame.width(), frame.height());
        let pixels = frame.into_pixels();
        // Borrowed memory is wrapped read-only: nothing downstream may write the owner's bytes.
        let mut buffer = if pixels.is_borrowed() {
            gst::Buffer::from_slice(pixels)
        } else {
            gst::Buffer::from_mut_slice(pixels)
        };
        {
            let Some(buf) = buffer.get_mut() else {
                return Err(PushError::Refused(gst::FlowError::Error));
            };
            buf.set_pts(gst::ClockTime::from_nseconds(nanos(captured - origin)));
            buf.set_duration(gst::ClockTime::from_nseconds(nanos(self.rate.interval())));
            let strides: Vec<i32> = layout.strides[..layout.planes]
                .iter()
                .map(|s| *s as i32)
                .collect();
            gst_video::VideoMeta::add_full(
                buf,
                gst_video::VideoFrameFlags::empty(),
                format,
                w,
                h,
                &layout.offsets[..layout.planes],
                &strides,
            )
            .map_err(|_| PushError::Refused(gst::FlowError::Error))?;
        }
        self.appsrc
            .push_buffer(buffer)
            .map(|_| ())
            .map_err(PushError::Refused)
    }

    /// Signal the end of the stream; muxers finalise their files when it reaches them.
    pub fn end_of_stream(&self) {
        let _ = self.appsrc.end_of_stream();
    }

    /// Counters of the constant-rate stage so far.
    pub fn rate_counters(&self) -> RateCounters {
        RateCounters::read(&self.videorate)
    }

    /// Stop the pipeline and release everything it holds.
    pub fn shutdown(self) -> RateCounters {
        let counters = self.rate_counters();
        if let Err(e) = self.pipeline.set_state(gst::State::Null) {
            tracing::warn!(error = %e, "pipeline did not stop cleanly");
        }
        if let Some(bus) = self.pipeline.bus() {
            bus.unset_sync_handler();
        }
        counters
    }
}

fn nanos(d: Duration) -> u64 {
    u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)
}

/// The caps filters of the raw stream: I420 at the output size (square pixels), then the rate.
fn raw_filters(
    width: u32,
    height: u32,
    rate: Rate,
) -> Result<(gst::Element, gst::Element), TelescopeError> {
    let dimension = |name: &str, v: u32| {
        i32::try_from(v).map_err(|_| TelescopeError::Config(format!("{name} {v} too large")))
    };
    let raw = gst::Caps::builder("video/x-raw")
        .field("format", "I420")
        .field("width", dimension("width", width)?)
        .field("height", dimension("height", height)?)
        .field("pixel-aspect-ratio", gst::Fraction::new(1, 1))
        .build();
    let raw_filter = gst::ElementFactory::make("capsfilter")
        .property("caps", raw)
        .build()?;
    let rate_caps = gst::Caps::builder("video/x-raw")
        .field("framerate", rate.to_fraction())
        .build();
    let rate_filter = gst::ElementFactory::make("capsfilter")
        .property("caps", rate_caps)
        .build()?;
    Ok((raw_filter, rate_filter))
}

/// Errors and end of stream from the pipeline's bus go to the worker's inbox, tagged with the
/// pipeline's incarnation (a late message of a replaced pipeline is told apart).
fn watch_bus(
    pipeline: &gst::Pipeline,
    inbox: Arc<Inbox>,
    incarnation: u32,
) -> Result<(), TelescopeError> {
    let bus = pipeline
        .bus()
        .ok_or_else(|| TelescopeError::Pipeline("pipeline has no bus".into()))?;
    bus.set_sync_handler(move |_, msg| {
        match msg.view() {
            gst::MessageView::Error(err) => {
                let source = msg
                    .src()
                    .map(|s| s.path_string().to_string())
                    .unwrap_or_default();
                let message = format!("{source}: {}", err.error());
                tracing::debug!(debug = ?err.debug(), "pipeline error detail");
                inbox.post_event(BusEvent::Error {
                    incarnation,
                    message,
                });
            }
            gst::MessageView::Eos(_) => inbox.post_event(BusEvent::Eos { incarnation }),
            gst::MessageView::Warning(w) => {
                tracing::warn!(warning = %w.error(), "pipeline warning")
            }
            _ => {}
        }
        gst::BusSyncReply::Drop
    });
    Ok(())
}
