//! Decoded footage: any file or URI GStreamer can decode, delivered as BGR [`Frame`]s stamped
//! with the footage's own presentation times.

use std::path::{Path, PathBuf};
use std::time::Duration;

use gst::prelude::*;
use gst_app::AppSink;
use telescope::{Frame, PixelFormat};

use crate::timestamps::Retimer;

/// Why footage cannot be read.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum FootageError {
    /// The file does not exist.
    #[error("footage not found: {0}")]
    NotFound(PathBuf),
    /// The path is a directory, not a video file.
    #[error("{0} is a directory, not footage (a directory of PNG files is images:DIR)")]
    Directory(PathBuf),
    /// GStreamer could not open or decode it.
    #[error("cannot decode {source_name}: {reason}")]
    Undecodable { source_name: String, reason: String },
    /// A network source (`rtsp://`, `http://`...) could not be reached: nothing listens,
    /// the host is unknown, or the server refused the stream.
    #[error("cannot connect to {source_name}: {reason}")]
    Unreachable { source_name: String, reason: String },
    /// A GStreamer element is missing.
    #[error("GStreamer element `{0}` is not installed (run ci/setup)")]
    MissingElement(&'static str),
    /// GStreamer failed otherwise.
    #[error("footage pipeline: {0}")]
    Pipeline(String),
}

/// The longest wait for one frame before the footage is declared broken.
const PULL_TIMEOUT: Duration = Duration::from_secs(60);
/// How often that wait looks for an error the pipeline posted.
const PULL_SLICE: Duration = Duration::from_millis(50);

/// A running decoder of one piece of footage.
pub struct Footage {
    name: String,
    pipeline: gst::Pipeline,
    appsink: AppSink,
    first_pts: Option<gst::ClockTime>,
    retimer: Retimer<Frame>,
    finished: bool,
}

impl std::fmt::Debug for Footage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Footage").field("name", &self.name).finish()
    }
}

fn make(factory: &'static str) -> Result<gst::Element, FootageError> {
    gst::ElementFactory::make(factory)
        .build()
        .map_err(|_| FootageError::MissingElement(factory))
}

impl Footage {
    /// Open a local file.
    pub fn open(path: &Path) -> Result<Self, FootageError> {
        if path.is_dir() {
            return Err(FootageError::Directory(path.to_path_buf()));
        }
        if !path.is_file() {
            return Err(FootageError::NotFound(path.to_path_buf()));
        }
        let abs = path
            .canonicalize()
            .map_err(|_| FootageError::NotFound(path.to_path_buf()))?;
        let uri = gst::glib::filename_to_uri(&abs, None).map_err(|e| {
            FootageError::Pipeline(format!("cannot make a URI of {}: {e}", abs.display()))
        })?;
        Self::open_uri(&uri, &path.display().to_string())
    }

    /// Open a URI (`file://`, `rtsp://`, `http://`...).
    pub fn open_uri(uri: &str, name: &str) -> Result<Self, FootageError> {
        gst::init().map_err(|e| FootageError::Pipeline(e.to_string()))?;
        let pipeline = gst::Pipeline::with_name("footage");
        let decode = make("uridecodebin")?;
        decode.set_property("uri", uri);
        let convert = make("videoconvert")?;
        // BGRx, made BGR while copied out of the buffer (`pull`): videoconvert has a fast
        // path from the decoders' I420 to BGRx (the same pixels as its BGR, at half the CPU:
        // 0.8 against 1.8 ms per 768x576 frame), and the copy out is needed anyway.
        let caps = gst::Caps::builder("video/x-raw")
            .field("format", "BGRx")
            .build();
        // Back-pressure, not drops: the replay decides what a frame's fate is.
        let appsink = AppSink::builder()
            .caps(&caps)
            .sync(false)
            .max_buffers(4)
            .drop(false)
            .build();
        pipeline
            .add_many([&decode, &convert, appsink.upcast_ref()])
            .map_err(|e| FootageError::Pipeline(e.to_string()))?;
        convert
            .link(&appsink)
            .map_err(|e| FootageError::Pipeline(e.to_string()))?;
        // A live RTSP camera keeps its own timing: frames stamped with the RTP timestamps it
        // sent, not with arrival times that rtspsrc's jitter buffer corrects for clock skew
        // (which run a percent off for the first seconds and make every run different).
        decode.connect("source-setup", false, |args| {
            let source = args.get(1).and_then(|v| v.get::<gst::Element>().ok());
            if let Some(source) = source.filter(|s| s.find_property("buffer-mode").is_some()) {
                source.set_property_from_str("buffer-mode", "none");
            }
            None
        });
        let convert_weak = convert.downgrade();
        decode.connect_pad_added(move |_, pad| {
            let Some(convert) = convert_weak.upgrade() else {
                return;
            };
            let is_video = pad
                .current_caps()
                .and_then(|c| c.structure(0).map(|s| s.name().starts_with("video/")))
                .unwrap_or(false);
            let Some(sink) = convert.static_pad("sink") else {
                return;
            };
            if is_video && !sink.is_linked() {
                if let Err(e) = pad.link(&sink) {
                    tracing::warn!(error = ?e, "cannot link decoded video");
                }
            }
        });
        Self::start(name.to_owned(), pipeline, appsink)
    }

    /// Prerolls, so that undecodable input fails here with the decoder's reason, then plays.
    fn start(
        name: String,
        pipeline: gst::Pipeline,
        appsink: AppSink,
    ) -> Result<Self, FootageError> {
        let footage = Footage {
            name,
            pipeline,
            appsink,
            first_pts: None,
            retimer: Retimer::new(None),
            finished: false,
        };
        footage
            .pipeline
            .set_state(gst::State::Paused)
            .map_err(|_| footage.bus_error())?;
        let (res, _, _) = footage.pipeline.state(gst::ClockTime::from_seconds(30));
        res.map_err(|_| footage.bus_error())?;
        footage
            .pipeline
            .set_state(gst::State::Playing)
            .map_err(|_| footage.bus_error())?;
        Ok(footage)
    }

    /// A synthetic camera: `videotestsrc` with `pattern` (a nick such as `smpte`, `ball`,
    /// `snow`), at the given size and rate, endless.
    pub fn pattern(
        pattern: &str,
        width: u32,
        height: u32,
        rate: telescope::Rate,
    ) -> Result<Self, FootageError> {
        gst::init().map_err(|e| FootageError::Pipeline(e.to_string()))?;
        let name = format!("pattern:{pattern}");
        if !pattern
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-')
        {
            return Err(FootageError::Undecodable {
                source_name: name,
                reason: "not a videotestsrc pattern name".into(),
            });
        }
        let description = format!(
            "videotestsrc pattern={pattern} is-live=false ! \
             video/x-raw,width={width},height={height},framerate={}/{} ! videoconvert ! \
             video/x-raw,format=BGR ! appsink name=sink sync=false max-buffers=4 drop=false",
            rate.num(),
            rate.den()
        );
        let bin = gst::parse::launch(&description).map_err(|e| FootageError::Undecodable {
            source_name: name.clone(),
            reason: e.to_string(),
        })?;
        let pipeline = bin
            .downcast::<gst::Pipeline>()
            .map_err(|_| FootageError::Pipeline("not a pipeline".into()))?;
        let appsink = pipeline
            .by_name("sink")
            .and_then(|e| e.downcast::<AppSink>().ok())
            .ok_or_else(|| FootageError::Pipeline("no appsink".into()))?;
        Self::start(name, pipeline, appsink)
    }

    fn bus_error(&self) -> FootageError {
        self.posted_error()
            .unwrap_or_else(|| FootageError::Undecodable {
                source_name: self.name.clone(),
                reason: "no video stream could be decoded".to_owned(),
            })
    }

    /// The error the pipeline posted, if it posted one: a network source that cannot be
    /// opened is [`FootageError::Unreachable`], anything else [`FootageError::Undecodable`].
    fn posted_error(&self) -> Option<FootageError> {
        let msg = self
            .pipeline
            .bus()?
            .pop_filtered(&[gst::MessageType::Error])?;
        let gst::MessageView::Error(e) = msg.view() else {
            return None;
        };
        let error = e.error();
        let reason = error.to_string();
        let source_name = self.name.clone();
        let network = self.name.contains("://") && !self.name.starts_with("file://");
        Some(if network && error.is::<gst::ResourceError>() {
            FootageError::Unreachable {
                source_name,
                reason,
            }
        } else {
            FootageError::Undecodable {
                source_name,
                reason,
            }
        })
    }

    /// The next frame, stamped with its presentation time counted from the first frame;
    /// `Ok(None)` at the end of the footage. Frames the container gave no time, or the time
    /// of the frame before, get one between their neighbours ([`Retimer`]): every decoded
    /// frame comes out once, at a distinct time.
    pub fn next_frame(&mut self) -> Result<Option<Frame>, FootageError> {
        loop {
            if let Some((frame, at)) = self.retimer.pop() {
                return Ok(Some(frame.at(at)));
            }
            if self.finished {
                return Ok(None);
            }
            match self.pull()? {
                Some((frame, time)) => self.retimer.push(frame, time),
                None => {
                    self.finished = true;
                    self.retimer.finish();
                }
            }
        }
    }

    /// Frames whose time was interpolated or replaced so far.
    pub fn retimed(&self) -> u64 {
        self.retimer.repaired()
    }

    /// The next decoded frame and its time as the container gave it; `None` at the end.
    fn pull(&mut self) -> Result<Option<(Frame, Option<Duration>)>, FootageError> {
        // At most PULL_TIMEOUT for a frame, but an error the pipeline posts meanwhile (a
        // camera that refuses the connection) ends the wait at once.
        let mut waited = Duration::ZERO;
        let sample = loop {
            if let Some(sample) = self
                .appsink
                .try_pull_sample(gst::ClockTime::from_nseconds(PULL_SLICE.as_nanos() as u64))
            {
                break sample;
            }
            if self.appsink.is_eos() {
                return Ok(None);
            }
            waited += PULL_SLICE;
            let posted = self.posted_error();
            if posted.is_some() || waited >= PULL_TIMEOUT {
                self.finished = true;
                return Err(posted.unwrap_or_else(|| self.bus_error()));
            }
        };
        let (Some(buffer), Some(caps)) = (sample.buffer(), sample.caps()) else {
            return Err(FootageError::Pipeline(
                "sample without buffer or caps".into(),
            ));
        };
        let info = gst_video::VideoInfo::from_caps(caps)
            .map_err(|e| FootageError::Pipeline(e.to_string()))?;
        let fps = info.fps();
        self.retimer.declare(telescope::Rate::new(
            u32::try_from(fps.numer()).unwrap_or(0),
            u32::try_from(fps.denom()).unwrap_or(0),
        ));
        let time = buffer.pts().map(|pts| {
            let first = *self.first_pts.get_or_insert(pts);
            Duration::from_nanos(pts.saturating_sub(first).nseconds())
        });
        let map = buffer
            .map_readable()
            .map_err(|e| FootageError::Pipeline(e.to_string()))?;
        let stride = usize::try_from(info.stride()[0]).unwrap_or(0);
        let (width, height) = (info.width(), info.height());
        let frame = if info.format() == gst_video::VideoFormat::Bgrx {
            Frame::from_vec(
                bgrx_to_bgr(map.as_slice(), stride, width as usize, height as usize),
                PixelFormat::Bgr8,
                width,
                height,
            )
        } else {
            Frame::from_vec_with_stride(
                map.as_slice().to_vec(),
                PixelFormat::Bgr8,
                width,
                height,
                stride,
            )
        }
        .map_err(|e| FootageError::Pipeline(e.to_string()))?;
        Ok(Some((frame, time)))
    }

    /// The footage's frame rate as the container declares it, when it declares one.
    pub fn declared_rate(&self) -> Option<telescope::Rate> {
        let caps = self.appsink.static_pad("sink")?.current_caps()?;
        let fr = caps.structure(0)?.get::<gst::Fraction>("framerate").ok()?;
        telescope::Rate::new(
            u32::try_from(fr.numer()).ok()?,
            u32::try_from(fr.denom()).ok()?,
        )
    }
}

/// Tightly packed BGR from BGRx rows `stride` bytes apart.
fn bgrx_to_bgr(src: &[u8], stride: usize, width: usize, height: usize) -> Vec<u8> {
    let mut out = vec![0u8; width * height * 3];
    for (y, row) in out.chunks_exact_mut(width * 3).enumerate() {
        let from = &src[y * stride..y * stride + width * 4];
        for (d, s) in row.chunks_exact_mut(3).zip(from.chunks_exact(4)) {
            d.copy_from_slice(&s[..3]);
        }
    }
    out
}

impl Drop for Footage {
    fn drop(&mut self) {
        let _ = self.pipeline.set_state(gst::State::Null);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bgrx_rows_become_packed_bgr() {
        // 2x2 BGRx with 4 bytes of padding per row.
        let src = [
            1, 2, 3, 0, 4, 5, 6, 0, 9, 9, 9, 9, //
            7, 8, 9, 0, 10, 11, 12, 0, 9, 9, 9, 9,
        ];
        assert_eq!(
            bgrx_to_bgr(&src, 12, 2, 2),
            vec![1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12]
        );
    }

    #[test]
    fn missing_and_undecodable_footage_are_typed_errors() {
        assert!(matches!(
            Footage::open(Path::new("/no/such/clip.avi")),
            Err(FootageError::NotFound(_))
        ));
        let dir = tempfile::tempdir().unwrap();
        assert!(matches!(
            Footage::open(dir.path()),
            Err(FootageError::Directory(_))
        ));
        let junk = dir.path().join("junk.avi");
        std::fs::write(&junk, b"this is not a video at all").unwrap();
        let err = Footage::open(&junk).unwrap_err();
        assert!(matches!(err, FootageError::Undecodable { .. }), "{err}");
    }

    #[test]
    fn a_camera_nobody_serves_fails_at_once_with_the_reason() {
        let url = format!("rtsp://127.0.0.1:{}/cam", testkit::free_port());
        let started = std::time::Instant::now();
        let err = match Footage::open_uri(&url, &url) {
            Err(e) => e,
            Ok(mut f) => f.next_frame().expect_err("nothing listens there"),
        };
        let took = started.elapsed();
        assert!(matches!(err, FootageError::Unreachable { .. }), "{err:?}");
        assert!(
            err.to_string()
                .starts_with(&format!("cannot connect to {url}: ")),
            "{err}"
        );
        // The connection is refused at once; the frame wait (60 s) must not be what ends it.
        assert!(took < Duration::from_secs(10), "took {took:?}");
    }

    #[test]
    fn frames_carry_the_footage_timing() {
        let dir = tempfile::tempdir().unwrap();
        let clip = dir.path().join("clip.mkv");
        testkit::gst_clip(&clip, 64, 48, "30000/1001", 12);
        let mut f = Footage::open(&clip).unwrap();
        let rate = telescope::Rate::new(30000, 1001).unwrap();
        let mut n = 0u64;
        while let Some(frame) = f.next_frame().unwrap() {
            assert_eq!(
                (frame.width(), frame.height(), frame.format()),
                (64, 48, PixelFormat::Bgr8)
            );
            // Matroska keeps millisecond timestamps.
            let error = frame.captured_at().unwrap().abs_diff(rate.frame_time(n));
            assert!(
                error <= Duration::from_millis(1),
                "frame {n} off by {error:?}"
            );
            n += 1;
        }
        assert_eq!(n, 12);
        assert_eq!(f.declared_rate(), Some(rate));
    }
}
