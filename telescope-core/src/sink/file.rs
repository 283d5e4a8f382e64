//! File sink: MKV, MP4 or MPEG-TS chosen by the extension.

use std::path::{Path, PathBuf};

use gst::prelude::*;

use super::make;
use crate::error::TelescopeError;

/// Container formats a file sink writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Container {
    /// Matroska (`.mkv`): survives an abrupt stop; what KVS stores too.
    Matroska,
    /// MP4 (`.mp4`, `.mov`): finalised on stop.
    Mp4,
    /// MPEG transport stream (`.ts`).
    MpegTs,
}

impl Container {
    /// The container for a path's extension.
    pub fn for_path(path: &Path) -> Option<Container> {
        let ext = path.extension()?.to_str()?.to_ascii_lowercase();
        match ext.as_str() {
            "mkv" => Some(Container::Matroska),
            "mp4" | "mov" | "m4v" => Some(Container::Mp4),
            "ts" => Some(Container::MpegTs),
            _ => None,
        }
    }

    fn muxer(self) -> &'static str {
        match self {
            Container::Matroska => "matroskamux",
            Container::Mp4 => "mp4mux",
            Container::MpegTs => "mpegtsmux",
        }
    }
}

/// A file to write the stream to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileSinkConfig {
    /// The output path. After an automatic restart, incarnation `n` writes `STEM.n.EXT` so that
    /// nothing already written is overwritten.
    pub path: PathBuf,
    /// Container, from the extension.
    pub container: Container,
}

impl FileSinkConfig {
    /// A file sink for `path`; the extension must name a container.
    pub fn new(path: impl Into<PathBuf>) -> Result<Self, TelescopeError> {
        let path = path.into();
        let container = Container::for_path(&path)
            .ok_or_else(|| TelescopeError::UnsupportedContainer { path: path.clone() })?;
        Ok(FileSinkConfig { path, container })
    }

    /// The path written by pipeline incarnation `n` (0 = the configured path).
    pub fn path_for(&self, incarnation: u32) -> PathBuf {
        if incarnation == 0 {
            return self.path.clone();
        }
        let stem = self
            .path
            .file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_default();
        let ext = self
            .path
            .extension()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_default();
        self.path
            .with_file_name(format!("{stem}.{incarnation}.{ext}"))
    }

    pub(crate) fn preflight(&self) -> Result<(), TelescopeError> {
        let unwritable = |reason: String| TelescopeError::Unwritable {
            path: self.path.clone(),
            reason,
        };
        if self.path.is_dir() {
            return Err(unwritable("it is a directory".into()));
        }
        if self.path.exists() && !self.path.is_file() {
            // A FIFO or device: opening it here could block until a reader appears.
            return Ok(());
        }
        let parent = match self.path.parent() {
            Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
            _ => PathBuf::from("."),
        };
        if !parent.is_dir() {
            return Err(unwritable(format!(
                "directory {} does not exist",
                parent.display()
            )));
        }
        // Opening for append creates the file if needed and proves we may write it, without
        // truncating anything that is there (the muxer truncates when it starts).
        std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.path)
            .map(drop)
            .map_err(|e| unwritable(e.to_string()))
    }

    pub(crate) fn build(
        &self,
        pipeline: &gst::Pipeline,
        index: usize,
        incarnation: u32,
    ) -> Result<gst::Element, TelescopeError> {
        let queue = make("queue", "gstreamer1.0-plugins-base")?;
        queue.set_property("name", format!("sink{index}-queue"));
        // Per-branch parser: each muxer negotiates the H.264 stream format it wants.
        let parse = make("h264parse", "gstreamer1.0-plugins-bad")?;
        let mux = make(
            self.container.muxer(),
            "gstreamer1.0-plugins-good (matroskamux, mp4mux) or -bad (mpegtsmux)",
        )?;
        let sink = make("filesink", "gstreamer1.0-plugins-base")?;
        let location = self.path_for(incarnation);
        sink.set_property("location", location.to_string_lossy().as_ref());
        // Muxers write headers at the end; syncing to the clock would only add latency.
        sink.set_property("sync", false);
        sink.set_property("async", false);
        queue.set_property("max-size-buffers", 0u32);
        queue.set_property("max-size-time", 2_000_000_000u64);
        queue.set_property("max-size-bytes", 0u32);
        queue.set_property_from_str("leaky", "no");
        let chain = [&queue, &parse, &mux, &sink];
        pipeline.add_many(chain)?;
        gst::Element::link_many(chain)?;
        tracing::info!(path = %location.display(), container = ?self.container, "file sink");
        Ok(queue)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn container_follows_extension_and_restarts_get_new_names() {
        let f = FileSinkConfig::new("/tmp/out/cam.MKV").unwrap();
        assert_eq!(f.container, Container::Matroska);
        assert_eq!(f.path_for(0), PathBuf::from("/tmp/out/cam.MKV"));
        assert_eq!(f.path_for(2), PathBuf::from("/tmp/out/cam.2.MKV"));
        assert_eq!(
            FileSinkConfig::new("a.mp4").unwrap().container,
            Container::Mp4
        );
        assert!(matches!(
            FileSinkConfig::new("a.avi"),
            Err(TelescopeError::UnsupportedContainer { .. })
        ));
        assert!(matches!(
            FileSinkConfig::new("noext"),
            Err(TelescopeError::UnsupportedContainer { .. })
        ));
    }

    #[test]
    fn preflight_names_the_missing_directory() {
        let f = FileSinkConfig::new("/nonexistent-dir-for-telescope/x.mkv").unwrap();
        let err = f.preflight().unwrap_err().to_string();
        assert!(err.contains("/nonexistent-dir-for-telescope"), "{err}");
    }
}
