//! File sink: MKV, MP4 or MPEG-TS chosen by the extension.

use std::path::{Path, PathBuf};
use std::time::Duration;

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

/// When a file sink starts a new file: after `every` of stream time and/or `max_bytes` (at the
/// next key frame), keeping the newest `keep` files (0: all).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Rotation {
    /// Stream time per file (a key frame is asked for at each boundary, so files are this long).
    pub every: Option<Duration>,
    /// Bytes per file (the file ends at the key frame after this size).
    pub max_bytes: Option<u64>,
    /// Files kept on disk, the oldest deleted first; 0 keeps every file.
    pub keep: u32,
}

/// A path's file stem and extension (empty when absent).
fn stem_and_ext(path: &Path) -> (String, String) {
    let text = |p: Option<&std::ffi::OsStr>| {
        p.map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_default()
    };
    (text(path.file_stem()), text(path.extension()))
}

/// A file to write the stream to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileSinkConfig {
    /// The output path. After an automatic restart, incarnation `n` writes `STEM.n.EXT` so that
    /// nothing already written is overwritten. With rotation the files are `STEM-00000.EXT`,
    /// `STEM-00001.EXT`... (`STEM.n-00000.EXT` after a restart).
    pub path: PathBuf,
    /// Container, from the extension.
    pub container: Container,
    /// Start new files by time or size (`None`: one file).
    pub rotation: Option<Rotation>,
}

impl FileSinkConfig {
    /// A file sink for `path`; the extension must name a container.
    pub fn new(path: impl Into<PathBuf>) -> Result<Self, TelescopeError> {
        let path = path.into();
        let container = Container::for_path(&path)
            .ok_or_else(|| TelescopeError::UnsupportedContainer { path: path.clone() })?;
        Ok(FileSinkConfig {
            path,
            container,
            rotation: None,
        })
    }

    /// The same sink writing a series of files; at least one limit must be set.
    pub fn rotating(mut self, rotation: Rotation) -> Result<Self, TelescopeError> {
        if rotation.every.is_none_or(|d| d.is_zero()) && rotation.max_bytes.is_none_or(|b| b == 0) {
            return Err(TelescopeError::Config(
                "file rotation needs a time (rotate=10m) or a size (max-size=100MB)".into(),
            ));
        }
        self.rotation = Some(rotation);
        Ok(self)
    }

    /// The file name pattern a rotating sink of pipeline incarnation `n` writes (`%05d` is
    /// the file's index; a `%` of the path itself is doubled).
    pub fn pattern_for(&self, incarnation: u32) -> PathBuf {
        let base = self.path_for(incarnation);
        let (stem, ext) = stem_and_ext(&base);
        let stem = stem.replace('%', "%%");
        let parent = base
            .parent()
            .map(|p| p.to_string_lossy().replace('%', "%%"));
        let name = format!("{stem}-%05d.{ext}");
        match parent.filter(|p| !p.is_empty()) {
            Some(p) => PathBuf::from(p).join(name),
            None => PathBuf::from(name),
        }
    }

    /// The path of file `index` of a rotating sink's incarnation `n`.
    pub fn rotated_path(&self, incarnation: u32, index: u32) -> PathBuf {
        let base = self.path_for(incarnation);
        let (stem, ext) = stem_and_ext(&base);
        base.with_file_name(format!("{stem}-{index:05}.{ext}"))
    }

    /// The path written by pipeline incarnation `n` (0 = the configured path).
    pub fn path_for(&self, incarnation: u32) -> PathBuf {
        if incarnation == 0 {
            return self.path.clone();
        }
        let (stem, ext) = stem_and_ext(&self.path);
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
        if self.rotation.is_some() {
            // The files come later, one by one: prove the directory takes new files.
            let probe = parent.join(format!(".telescope-write-test-{}", std::process::id()));
            return std::fs::File::create(&probe)
                .and_then(|_| std::fs::remove_file(&probe))
                .map_err(|e| unwritable(e.to_string()));
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
        // Muxers write headers at the end; syncing to the clock would only add latency.
        sink.set_property("sync", false);
        sink.set_property("async", false);
        queue.set_property("max-size-buffers", 0u32);
        queue.set_property("max-size-time", 2_000_000_000u64);
        queue.set_property("max-size-bytes", 0u32);
        queue.set_property_from_str("leaky", "no");
        if let Some(rotation) = self.rotation {
            // splitmuxsink owns the muxer and the file sink and starts a new file at a key frame.
            let split = make("splitmuxsink", "gstreamer1.0-plugins-good")?;
            let pattern = self.pattern_for(incarnation);
            split.set_property("location", pattern.to_string_lossy().as_ref());
            split.set_property("muxer", &mux);
            split.set_property("sink", &sink);
            if let Some(every) = rotation.every {
                split.set_property(
                    "max-size-time",
                    every.as_nanos().min(u128::from(u64::MAX)) as u64,
                );
            }
            if let Some(bytes) = rotation.max_bytes {
                split.set_property("max-size-bytes", bytes);
            } else if rotation.every.is_some() {
                // Ask the encoder for a key frame at each boundary: files of exactly `every`.
                split.set_property("send-keyframe-requests", true);
            }
            // Names from our own counter, never reused (splitmuxsink's max-files would cycle
            // through `keep` names); the oldest files beyond `keep` are deleted here.
            let this = self.clone();
            let written = std::sync::Mutex::new(std::collections::VecDeque::new());
            split.connect("format-location", false, move |args| {
                let index = args.get(1).and_then(|v| v.get::<u32>().ok()).unwrap_or(0);
                let path = this.rotated_path(incarnation, index);
                let mut written = written.lock().unwrap_or_else(|p| p.into_inner());
                written.push_back(path.clone());
                while rotation.keep > 0 && written.len() > rotation.keep as usize {
                    let Some(old) = written.pop_front() else { break };
                    match std::fs::remove_file(&old) {
                        Ok(()) => tracing::debug!(path = %old.display(), "rotated file deleted"),
                        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                        Err(e) => tracing::warn!(path = %old.display(), error = %e, "cannot delete a rotated file"),
                    }
                }
                Some(path.to_string_lossy().into_owned().to_value())
            });
            let chain = [&queue, &parse, &split];
            pipeline.add_many(chain)?;
            gst::Element::link_many(chain)?;
            tracing::info!(pattern = %pattern.display(), container = ?self.container, ?rotation, "rotating file sink");
            return Ok(queue);
        }
        let location = self.path_for(incarnation);
        sink.set_property("location", location.to_string_lossy().as_ref());
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

    #[test]
    fn rotation_options_parse_and_name_their_files() {
        use crate::sink::SinkConfig;
        let sink: SinkConfig = "file:/v/cam%1.mkv?rotate=10m&max-size=100MB&keep=3"
            .parse()
            .unwrap();
        let SinkConfig::File(f) = sink else { panic!() };
        assert_eq!(
            f.rotation,
            Some(Rotation {
                every: Some(Duration::from_secs(600)),
                max_bytes: Some(100_000_000),
                keep: 3
            })
        );
        assert_eq!(f.pattern_for(0), PathBuf::from("/v/cam%%1-%05d.mkv"));
        assert_eq!(f.rotated_path(2, 7), PathBuf::from("/v/cam%1.2-00007.mkv"));
        for bad in [
            "file:a.mkv?keep=3",
            "file:a.mkv?rotate=soon",
            "file:a.mkv?colour=blue",
            "file:a.mkv?rotate",
            "file:a.mkv?keep=-1&rotate=1s",
        ] {
            let err = bad.parse::<SinkConfig>().unwrap_err().to_string();
            assert!(
                err.contains("a.mkv") || err.contains("rotation"),
                "{bad}: {err}"
            );
        }
        // Without options, a plain file.
        let SinkConfig::File(f) = "out.mp4".parse().unwrap() else {
            panic!()
        };
        assert_eq!(f.rotation, None);
    }
}
