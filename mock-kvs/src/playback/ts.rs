//! `getTSFragment.ts`: one stored fragment as an MPEG-TS segment ("MPEG TS fragments
//! containing both initialization and media data for all tracks in the stream",
//! GetHLSStreamingSessionURL), muxed by GStreamer's `mpegtsmux` after `h264parse` turns the
//! stored AVC frames into byte-stream with SPS/PPS before every key frame. Not re-encoded.
//!
//! TS timestamps are 33-bit at 90 kHz (26.5 hours), too narrow for epoch times: a session
//! counts them from `origin_ms`, the same for all its segments so they join up.

use std::time::Duration;

use gst::prelude::*;

use super::gst::{make, run, RepackError, Unit};
use super::matroska::{Frame, Track};
use super::mp4::timing;

/// The TS segment of `frames`, timestamps counted from `origin_ms`.
pub fn ts_segment(
    track: &Track,
    frames: &[Frame<'_>],
    origin_ms: i64,
) -> Result<Vec<u8>, RepackError> {
    let t = timing(frames, None);
    let ms = |v: i64| Duration::from_millis(u64::try_from(v - origin_ms).unwrap_or(0));
    let mut dts = t.first_dts;
    let units: Vec<Unit<'_>> = frames
        .iter()
        .zip(&t.samples)
        .map(|(f, (duration, ..))| {
            let unit = Unit {
                data: f.data,
                pts: ms(f.pts_ms),
                dts: Some(ms(dts)),
                key: f.key,
            };
            dts += i64::from(*duration);
            unit
        })
        .collect();
    let parse = make("h264parse")?;
    // SPS and PPS before every IDR: each segment decodes on its own.
    parse.set_property("config-interval", -1i32);
    let filter = make("capsfilter")?;
    filter.set_property(
        "caps",
        gst::Caps::builder("video/x-h264")
            .field("stream-format", "byte-stream")
            .field("alignment", "au")
            .build(),
    );
    let mux = make("mpegtsmux")?;
    let out = run(
        track,
        vec![parse, filter, mux],
        &units,
        Duration::from_secs(20),
    )?;
    Ok(out.concat())
}
