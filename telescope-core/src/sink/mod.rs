//! Where the encoded stream goes. Each sink is a branch hung off the encoder's `tee`.

use std::str::FromStr;

use crate::error::TelescopeError;

mod file;
pub mod kvs;
pub mod kvssink;
pub mod rtsp;

pub use file::{Container, FileSinkConfig, Rotation};
pub use kvs::{KvsSink, KvsSinkConfig};
pub use kvssink::{KvssinkConfig, KvssinkCredentials};
pub use rtsp::{BasicAuth, MountStats, RtspMount, RtspServer, RtspServerConfig, RtspStats};

/// One destination for the encoded stream.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum SinkConfig {
    /// A local MKV, MP4 or MPEG-TS file.
    File(FileSinkConfig),
    /// A mount on an in-process RTSP server.
    Rtsp(RtspMount),
    /// A KVS stream through the Producer SDK's `kvssink` element.
    Kvssink(KvssinkConfig),
    /// A KVS stream through Telescope's own PutMedia client.
    Kvs(KvsSink),
}

impl SinkConfig {
    /// An RTSP mount as a sink.
    pub fn rtsp(mount: RtspMount) -> Self {
        SinkConfig::Rtsp(mount)
    }

    /// A file sink; the container follows the extension.
    pub fn file(path: impl Into<std::path::PathBuf>) -> Result<Self, TelescopeError> {
        FileSinkConfig::new(path).map(SinkConfig::File)
    }

    /// A short description for logs (no secrets).
    pub fn describe(&self) -> String {
        match self {
            SinkConfig::File(f) if f.rotation.is_some() => {
                format!("file:{} (rotating)", f.pattern_for(0).display())
            }
            SinkConfig::File(f) => format!("file:{}", f.path.display()),
            SinkConfig::Rtsp(m) => m.url().to_owned(),
            SinkConfig::Kvssink(k) => format!("kvssink:{} ({})", k.stream_name, k.region),
            SinkConfig::Kvs(k) => format!("kvs://{} via {}", k.stream_name(), k.data_endpoint()),
        }
    }

    /// Check what can be checked before streaming (output writable, elements installed).
    pub(crate) fn preflight(&self) -> Result<(), TelescopeError> {
        match self {
            SinkConfig::File(f) => f.preflight(),
            SinkConfig::Rtsp(m) => m.preflight(),
            SinkConfig::Kvssink(k) => k.preflight(),
            SinkConfig::Kvs(_) => Ok(()),
        }
    }

    /// Build this sink's branch into `pipeline`; returns the element to link the tee to.
    pub(crate) fn build(
        &self,
        pipeline: &gst::Pipeline,
        index: usize,
        incarnation: u32,
    ) -> Result<gst::Element, TelescopeError> {
        match self {
            SinkConfig::File(f) => f.build(pipeline, index, incarnation),
            SinkConfig::Rtsp(m) => m.build(pipeline, index),
            SinkConfig::Kvssink(k) => k.build(pipeline, index),
            SinkConfig::Kvs(k) => k.build(pipeline, index),
        }
    }
}

impl FromStr for SinkConfig {
    type Err = TelescopeError;

    /// `file:PATH` or a plain path ending in `.mkv`, `.mp4` or `.ts`, optionally rotating:
    /// `file:PATH?rotate=10m&max-size=100MB&keep=24`.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let spec = s.strip_prefix("file:").unwrap_or(s);
        let (path, options) = match spec.split_once('?') {
            Some((p, o)) if !p.contains("://") => (p, Some(o)),
            _ => (spec, None),
        };
        if path.is_empty() {
            return Err(TelescopeError::Config(format!("sink `{s}` names no file")));
        }
        if path.contains("://") {
            return Err(TelescopeError::Config(format!(
                "sink `{s}`: network sinks need a server; use RtspServer::mount for rtsp:// (the CLI does this)"
            )));
        }
        let file = FileSinkConfig::new(path)?;
        let Some(options) = options else {
            return Ok(SinkConfig::File(file));
        };
        let bad = |why: String| TelescopeError::Config(format!("sink `{s}`: {why}"));
        let mut rotation = Rotation::default();
        for pair in options.split('&').filter(|p| !p.is_empty()) {
            let (key, value) = pair
                .split_once('=')
                .ok_or_else(|| bad(format!("`{pair}` is not KEY=VALUE")))?;
            match key {
                "rotate" => {
                    rotation.every =
                        Some(crate::units::parse_duration(value).map_err(|e| bad(e.to_string()))?)
                }
                "max-size" => {
                    rotation.max_bytes =
                        Some(crate::units::parse_bytes(value).map_err(|e| bad(e.to_string()))?)
                }
                "keep" => {
                    rotation.keep = value
                        .parse()
                        .map_err(|_| bad(format!("keep=`{value}` is not a number of files")))?
                }
                other => {
                    return Err(bad(format!(
                        "unknown option `{other}` (rotate=10m, max-size=100MB, keep=N)"
                    )))
                }
            }
        }
        file.rotating(rotation).map(SinkConfig::File)
    }
}

/// Make an element or say which package provides it.
pub(crate) fn make(
    factory: &'static str,
    hint: &'static str,
) -> Result<gst::Element, TelescopeError> {
    gst::ElementFactory::make(factory)
        .build()
        .map_err(|_| TelescopeError::MissingElement {
            element: factory,
            hint,
        })
}

/// H.264 caps for a sink branch: `stream_format` (`avc` or `byte-stream`), whole access units.
pub(crate) fn h264_caps(stream_format: &str) -> gst::Caps {
    gst::Caps::builder("video/x-h264")
        .field("stream-format", stream_format)
        .field("alignment", "au")
        .build()
}

/// The part every encoded-stream branch shares: `queue ! h264parse ! capsfilter(caps)`, then
/// `tail`, added to the pipeline and linked. Returns the queue (what the tee links to) and the
/// parser, for the caller to tune.
pub(crate) fn h264_branch(
    pipeline: &gst::Pipeline,
    index: usize,
    caps: &gst::Caps,
    tail: &gst::Element,
) -> Result<(gst::Element, gst::Element), TelescopeError> {
    use gst::prelude::*;
    let queue = make("queue", "gstreamer1.0-plugins-base")?;
    queue.set_property("name", format!("sink{index}-queue"));
    let parse = make("h264parse", "gstreamer1.0-plugins-bad")?;
    let filter = gst::ElementFactory::make("capsfilter")
        .property("caps", caps)
        .build()?;
    let chain = [&queue, &parse, &filter, tail];
    pipeline.add_many(chain)?;
    gst::Element::link_many(chain)?;
    Ok((queue, parse))
}
