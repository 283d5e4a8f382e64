//! Camera sources: recorded footage (any file or URI GStreamer decodes, looped with its own
//! timing), a live `rtsp://` camera, a directory of images, or a synthetic test pattern of any
//! size and rate.

use std::path::PathBuf;
use std::str::FromStr;
use std::time::Duration;

use telescope::{Frame, Rate};

use crate::footage::{Footage, FootageError};
use telescope::images::{read_png, ImageError};

/// What a camera shows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SourceSpec {
    /// A local file GStreamer decodes.
    File(PathBuf),
    /// A URI: `rtsp://`, `http://`, `file://`.
    Uri(String),
    /// The PNG files of a directory, in name order, at `rate`.
    Images {
        /// The directory.
        dir: PathBuf,
        /// Frames per second.
        rate: Rate,
    },
    /// `videotestsrc` with a pattern (`smpte`, `ball`, `snow`...).
    Pattern {
        /// The videotestsrc pattern nick.
        pattern: String,
        /// Width.
        width: u32,
        /// Height.
        height: u32,
        /// Frames per second.
        rate: Rate,
    },
}

/// Why a source specification is not understood.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("bad source `{spec}`: {reason}")]
pub struct SourceSpecError {
    /// The specification.
    pub spec: String,
    /// Why.
    pub reason: String,
}

impl FromStr for SourceSpec {
    type Err = SourceSpecError;

    /// `PATH`, `rtsp://...` (any `scheme://`), `images:DIR[@RATE]`,
    /// `pattern:NAME[@WxH][@RATE]` (default 640x480 at 30).
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let err = |reason: &str| SourceSpecError {
            spec: s.to_owned(),
            reason: reason.to_owned(),
        };
        let rate_of = |r: &str| r.parse::<Rate>().map_err(|e| err(&e.to_string()));
        if let Some(rest) = s.strip_prefix("images:") {
            let (dir, rate) = match rest.rsplit_once('@') {
                Some((d, r)) => (d, rate_of(r)?),
                None => (rest, Rate::new(10, 1).ok_or_else(|| err("rate"))?),
            };
            if dir.is_empty() {
                return Err(err("no directory (images:DIR[@RATE])"));
            }
            return Ok(SourceSpec::Images {
                dir: PathBuf::from(dir),
                rate,
            });
        }
        if let Some(rest) = s.strip_prefix("pattern:") {
            let mut parts = rest.split('@');
            let pattern = parts.next().unwrap_or_default();
            if pattern.is_empty()
                || !pattern
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '-')
            {
                return Err(err(
                    "pattern name must be a videotestsrc pattern such as smpte or ball",
                ));
            }
            let (mut width, mut height) = (640, 480);
            let mut rate = Rate::new(30, 1).ok_or_else(|| err("rate"))?;
            for part in parts {
                if let Some((w, h)) = part.split_once('x') {
                    width = w.parse().map_err(|_| err("width is not a number"))?;
                    height = h.parse().map_err(|_| err("height is not a number"))?;
                    if width == 0 || height == 0 || width > 16384 || height > 16384 {
                        return Err(err("size must be between 1x1 and 16384x16384"));
                    }
                } else {
                    rate = rate_of(part)?;
                }
            }
            return Ok(SourceSpec::Pattern {
                pattern: pattern.to_owned(),
                width,
                height,
                rate,
            });
        }
        if s.contains("://") {
            return Ok(SourceSpec::Uri(s.to_owned()));
        }
        if s.is_empty() {
            return Err(err("empty"));
        }
        Ok(SourceSpec::File(PathBuf::from(s)))
    }
}

impl std::fmt::Display for SourceSpec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            SourceSpec::File(p) => write!(f, "{}", p.display()),
            SourceSpec::Uri(u) => write!(f, "{u}"),
            SourceSpec::Images { dir, rate } => write!(f, "images:{}@{rate}", dir.display()),
            SourceSpec::Pattern {
                pattern,
                width,
                height,
                rate,
            } => write!(f, "pattern:{pattern}@{width}x{height}@{rate}"),
        }
    }
}

/// Why a source cannot deliver.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SourceError {
    /// Decoding failed.
    #[error(transparent)]
    Footage(#[from] FootageError),
    /// An image failed.
    #[error(transparent)]
    Image(#[from] ImageError),
    /// The image directory is unusable.
    #[error("{}: {reason}", dir.display())]
    Directory { dir: PathBuf, reason: String },
}

enum Inner {
    Footage(Footage),
    Images {
        files: Vec<PathBuf>,
        next: usize,
        rate: Rate,
    },
}

/// An open source delivering frames stamped with their capture time on one continuous
/// timeline: a looped source continues one frame interval after its last frame.
pub struct Source {
    spec: SourceSpec,
    passes: Option<u32>,
    inner: Inner,
    offset: Duration,
    last: Duration,
    interval: Duration,
    laps: u32,
}

impl std::fmt::Debug for Source {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Source")
            .field("spec", &self.spec)
            .field("laps", &self.laps)
            .finish()
    }
}

fn open_inner(spec: &SourceSpec) -> Result<Inner, SourceError> {
    Ok(match spec {
        SourceSpec::File(p) => Inner::Footage(Footage::open(p)?),
        SourceSpec::Uri(u) => Inner::Footage(Footage::open_uri(u, u)?),
        SourceSpec::Pattern {
            pattern,
            width,
            height,
            rate,
        } => Inner::Footage(Footage::pattern(pattern, *width, *height, *rate)?),
        SourceSpec::Images { dir, rate } => {
            let bad = |reason: String| SourceError::Directory {
                dir: dir.clone(),
                reason,
            };
            let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
                .map_err(|e| bad(e.to_string()))?
                .filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|p| {
                    p.extension()
                        .and_then(|e| e.to_str())
                        .is_some_and(|e| e.eq_ignore_ascii_case("png"))
                })
                .collect();
            files.sort();
            if files.is_empty() {
                return Err(bad("no .png files".into()));
            }
            Inner::Images {
                files,
                next: 0,
                rate: *rate,
            }
        }
    })
}

impl Source {
    /// Opens a source for `passes` passes (`None`: start again at every end, forever; live
    /// sources never end).
    pub fn open(spec: &SourceSpec, passes: Option<u32>) -> Result<Self, SourceError> {
        Ok(Source {
            inner: open_inner(spec)?,
            spec: spec.clone(),
            passes,
            offset: Duration::ZERO,
            last: Duration::ZERO,
            interval: Duration::ZERO,
            laps: 0,
        })
    }

    /// What this source is.
    pub fn spec(&self) -> &SourceSpec {
        &self.spec
    }

    /// Completed passes over the source.
    pub fn laps(&self) -> u32 {
        self.laps
    }

    /// The rate the source declares (footage container, pattern, image directory).
    pub fn declared_rate(&self) -> Option<Rate> {
        match (&self.spec, &self.inner) {
            (SourceSpec::Images { rate, .. }, _) | (SourceSpec::Pattern { rate, .. }, _) => {
                Some(*rate)
            }
            (_, Inner::Footage(f)) => f.declared_rate(),
            _ => None,
        }
    }

    fn raw_next(&mut self) -> Result<Option<Frame>, SourceError> {
        match &mut self.inner {
            Inner::Footage(f) => Ok(f.next_frame()?),
            Inner::Images { files, next, rate } => {
                let Some(path) = files.get(*next) else {
                    return Ok(None);
                };
                let frame = read_png(path)?;
                let at = rate.frame_time(*next as u64);
                *next += 1;
                Ok(Some(frame.at(at)))
            }
        }
    }

    /// The next frame, or `None` at the end of a source that is not looped.
    pub fn next_frame(&mut self) -> Result<Option<Frame>, SourceError> {
        loop {
            if let Some(frame) = self.raw_next()? {
                let at = self.offset + frame.captured_at().unwrap_or_default();
                if at > self.last {
                    self.interval = at - self.last;
                }
                self.last = at;
                return Ok(Some(frame.at(at)));
            }
            self.laps += 1;
            if self.passes.is_some_and(|p| self.laps >= p) {
                return Ok(None);
            }
            // Again from the start, one frame interval after the last frame.
            self.inner = open_inner(&self.spec)?;
            self.offset = self.last + self.interval.max(Duration::from_millis(1));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn specs_parse_with_defaults_and_reject_nonsense() {
        assert_eq!(
            "pattern:ball@320x240@29.97".parse::<SourceSpec>().unwrap(),
            SourceSpec::Pattern {
                pattern: "ball".into(),
                width: 320,
                height: 240,
                rate: Rate::new(30000, 1001).unwrap()
            }
        );
        assert!(matches!(
            "pattern:smpte".parse::<SourceSpec>().unwrap(),
            SourceSpec::Pattern {
                width: 640,
                height: 480,
                ..
            }
        ));
        assert!(matches!(
            "images:/tmp/x@5".parse::<SourceSpec>().unwrap(),
            SourceSpec::Images { .. }
        ));
        assert_eq!(
            "rtsp://127.0.0.1:8554/cam".parse::<SourceSpec>().unwrap(),
            SourceSpec::Uri("rtsp://127.0.0.1:8554/cam".into())
        );
        assert!("pattern:ball@0x10".parse::<SourceSpec>().is_err());
        assert!("pattern:ball@fast".parse::<SourceSpec>().is_err());
        assert!("pattern:; rm".parse::<SourceSpec>().is_err());
        assert!("images:".parse::<SourceSpec>().is_err());
    }

    #[test]
    fn a_looped_pattern_and_an_image_directory_keep_one_timeline() {
        let dir = tempfile::tempdir().unwrap();
        for i in 0..3u8 {
            let f =
                Frame::from_vec(vec![i; 4 * 2 * 3], telescope::PixelFormat::Bgr8, 4, 2).unwrap();
            telescope::images::write_png(&dir.path().join(format!("{i:03}.png")), &f).unwrap();
        }
        let spec = SourceSpec::Images {
            dir: dir.path().to_path_buf(),
            rate: Rate::new(10, 1).unwrap(),
        };
        let mut s = Source::open(&spec, None).unwrap();
        let times: Vec<u128> = (0..7)
            .map(|_| {
                s.next_frame()
                    .unwrap()
                    .unwrap()
                    .captured_at()
                    .unwrap()
                    .as_millis()
            })
            .collect();
        assert_eq!(times, [0, 100, 200, 300, 400, 500, 600]);
        assert_eq!(s.laps(), 2);
        let mut once = Source::open(&spec, Some(1)).unwrap();
        let mut n = 0;
        while once.next_frame().unwrap().is_some() {
            n += 1;
        }
        assert_eq!(n, 3);
        let spec: SourceSpec = "pattern:smpte@64x48@25".parse().unwrap();
        let mut p = Source::open(&spec, Some(1)).unwrap();
        let f = p.next_frame().unwrap().unwrap();
        assert_eq!((f.width(), f.height()), (64, 48));
        let f2 = p.next_frame().unwrap().unwrap();
        assert_eq!(f2.captured_at(), Some(Duration::from_millis(40)));
        assert!(matches!(
            Source::open(
                &SourceSpec::Images {
                    dir: dir.path().join("none"),
                    rate: Rate::new(1, 1).unwrap()
                },
                Some(1)
            ),
            Err(SourceError::Directory { .. })
        ));
    }
}
