//! A sample application for the node: it finds what moves in each camera by background
//! subtraction (OpenCV) and marks it with the appliance's own calls, `add_rect` around every
//! moving thing and an `add_label` with the camera's count, as a Panorama app draws its
//! detections. A replay with it shows annotated video without a model; it is deterministic (a
//! function of the frames only), so seeded replays stay reproducible.

use std::collections::HashMap;

use opencv::core::{Mat, MatTraitConst, Point, Rect, Size, Vector, BORDER_DEFAULT, CV_32F, CV_8U};
use opencv::imgproc;
use telescope::annotation::MediaCanvas;
use telescope::{Frame, PixelFormat};

use crate::node::{App, MediaStream};

/// Tuning of [`MotionApp`].
#[derive(Debug, Clone, PartialEq)]
pub struct MotionConfig {
    /// Frames are analysed at this width (default 320; smaller images are used as they are).
    pub work_width: u32,
    /// How fast the background follows the scene, 0-1 per frame (default 0.05).
    pub learning_rate: f64,
    /// Gray levels a pixel must differ from the background by to be moving (default 25).
    pub threshold: f64,
    /// Smallest moving thing, as a fraction of the image area (default 0.001).
    pub min_area: f64,
}

impl Default for MotionConfig {
    fn default() -> Self {
        MotionConfig {
            work_width: 320,
            learning_rate: 0.05,
            threshold: 25.0,
            min_area: 0.001,
        }
    }
}

/// What the app did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MotionStats {
    /// Frames analysed.
    pub frames: u64,
    /// Rectangles drawn.
    pub boxes: u64,
    /// Frames that could not be analysed (they are passed on undrawn).
    pub errors: u64,
    /// The last such failure.
    pub last_error: Option<String>,
}

/// A box around a moving thing, in normalized coordinates.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Moving {
    /// Left.
    pub x0: f64,
    /// Top.
    pub y0: f64,
    /// Right.
    pub x1: f64,
    /// Bottom.
    pub y1: f64,
}

#[derive(Debug)]
struct Background {
    size: (u32, u32),
    model: Mat,
}

/// Marks moving things on every camera's stream.
#[derive(Debug, Default)]
pub struct MotionApp {
    config: MotionConfig,
    backgrounds: HashMap<String, Background>,
    stats: MotionStats,
}

/// Why a frame could not be analysed.
#[derive(Debug, thiserror::Error)]
pub enum MotionError {
    /// The frame is not 8-bit BGR.
    #[error("motion analysis needs BGR frames, not {0:?}")]
    Format(PixelFormat),
    /// OpenCV failed.
    #[error("OpenCV: {0}")]
    OpenCv(opencv::Error),
}

// By hand rather than `#[from]`, which would also make the error a `source` and repeat it in
// one-line error chains.
impl From<opencv::Error> for MotionError {
    fn from(e: opencv::Error) -> Self {
        MotionError::OpenCv(e)
    }
}

impl MotionApp {
    /// An app with this tuning.
    pub fn new(config: MotionConfig) -> Self {
        MotionApp {
            config,
            ..MotionApp::default()
        }
    }

    /// What it has done so far.
    pub fn stats(&self) -> &MotionStats {
        &self.stats
    }

    /// The moving things in `frame` of `camera`, against what that camera showed before (the
    /// first frame of a camera, or of a new size, only starts its background).
    pub fn detect(&mut self, camera: &str, frame: &Frame) -> Result<Vec<Moving>, MotionError> {
        if frame.format() != PixelFormat::Bgr8 {
            return Err(MotionError::Format(frame.format()));
        }
        let (w, h) = (frame.width(), frame.height());
        let blurred = self.work_image(frame)?;
        let background = match self.backgrounds.get_mut(camera) {
            Some(b) if b.size == (w, h) => b,
            _ => {
                let mut model = Mat::default();
                blurred.convert_to(&mut model, CV_32F, 1.0, 0.0)?;
                let size = (w, h);
                self.backgrounds
                    .insert(camera.to_owned(), Background { size, model });
                return Ok(Vec::new());
            }
        };
        let mask = foreground(&self.config, background, &blurred)?;
        moving_boxes(&self.config, &mask)
    }

    /// The frame at the working width, grey and blurred.
    fn work_image(&self, frame: &Frame) -> Result<Mat, MotionError> {
        let (w, h) = (frame.width(), frame.height());
        // SAFETY: the frame holds `h` rows of `w` BGR pixels `stride` bytes apart (checked when
        // it was made); the Mat header lives only in this call and OpenCV only reads it.
        let image = unsafe {
            Mat::new_rows_cols_with_data_unsafe(
                h as i32,
                w as i32,
                opencv::core::CV_8UC3,
                frame.data().as_ptr().cast_mut().cast(),
                frame.stride(),
            )
        }?;
        let work_w = self.config.work_width.clamp(16, w.max(16)).min(w);
        let work_h = ((u64::from(h) * u64::from(work_w)) / u64::from(w.max(1))).max(1) as i32;
        let mut small = Mat::default();
        imgproc::resize(
            &image,
            &mut small,
            Size::new(work_w as i32, work_h),
            0.0,
            0.0,
            imgproc::INTER_AREA,
        )?;
        let mut gray = Mat::default();
        imgproc::cvt_color_def(&small, &mut gray, imgproc::COLOR_BGR2GRAY)?;
        let mut blurred = Mat::default();
        imgproc::gaussian_blur(
            &gray,
            &mut blurred,
            Size::new(5, 5),
            0.0,
            0.0,
            BORDER_DEFAULT,
        )?;
        Ok(blurred)
    }
}

/// Pixels that differ from the background (grown a little), learning the frame into it.
fn foreground(
    config: &MotionConfig,
    background: &mut Background,
    blurred: &Mat,
) -> Result<Mat, MotionError> {
    let mut reference = Mat::default();
    background
        .model
        .convert_to(&mut reference, CV_8U, 1.0, 0.0)?;
    let mut diff = Mat::default();
    opencv::core::absdiff(blurred, &reference, &mut diff)?;
    imgproc::accumulate_weighted_def(
        blurred,
        &mut background.model,
        config.learning_rate.clamp(0.0, 1.0),
    )?;
    let mut mask = Mat::default();
    imgproc::threshold(
        &diff,
        &mut mask,
        config.threshold,
        255.0,
        imgproc::THRESH_BINARY,
    )?;
    let mut grown = Mat::default();
    imgproc::dilate(
        &mask,
        &mut grown,
        &Mat::default(),
        Point::new(-1, -1),
        2,
        BORDER_DEFAULT,
        imgproc::morphology_default_border_value()?,
    )?;
    Ok(grown)
}

/// The boxes of the mask's blobs large enough to count, normalized, in reading order.
fn moving_boxes(config: &MotionConfig, mask: &Mat) -> Result<Vec<Moving>, MotionError> {
    let mut contours = Vector::<Vector<Point>>::new();
    imgproc::find_contours_def(
        mask,
        &mut contours,
        imgproc::RETR_EXTERNAL,
        imgproc::CHAIN_APPROX_SIMPLE,
    )?;
    let (fw, fh) = (f64::from(mask.cols()), f64::from(mask.rows()));
    let area = fw * fh;
    let mut found: Vec<Moving> = Vec::new();
    for c in contours.iter() {
        let r: Rect = imgproc::bounding_rect(&c)?;
        if f64::from(r.width) * f64::from(r.height) < config.min_area * area {
            continue;
        }
        found.push(Moving {
            x0: f64::from(r.x) / fw,
            y0: f64::from(r.y) / fh,
            x1: f64::from(r.x + r.width) / fw,
            y1: f64::from(r.y + r.height) / fh,
        });
    }
    // In reading order, so that runs compare equal whatever order OpenCV found them in.
    found.sort_by(|a, b| a.y0.total_cmp(&b.y0).then(a.x0.total_cmp(&b.x0)));
    Ok(found)
}

impl App for MotionApp {
    fn process(&mut self, streams: &mut [MediaStream]) {
        for stream in streams.iter_mut() {
            if stream.is_unavailable {
                stream.add_label("no signal", 0.02, 0.02);
                continue;
            }
            // A cached stream shows the frame already analysed: nothing new to learn.
            if stream.is_cached {
                continue;
            }
            match self.detect(&stream.stream_id, &stream.image) {
                Ok(moving) => {
                    self.stats.frames += 1;
                    self.stats.boxes += moving.len() as u64;
                    for m in &moving {
                        stream.add_rect(m.x0, m.y0, m.x1, m.y1);
                    }
                    let label = format!("{}: {} moving", stream.stream_id, moving.len());
                    stream.add_label(&label, 0.02, 0.02);
                }
                Err(e) => {
                    self.stats.errors += 1;
                    self.stats.last_error = Some(e.to_string());
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A gray 160x120 frame with a white 16x16 square at `(x, y)`.
    fn frame_with_square(x: usize, y: usize) -> Frame {
        let (w, h) = (160usize, 120usize);
        let mut data = vec![60u8; w * h * 3];
        for row in y..y + 16 {
            for col in x..x + 16 {
                data[(row * w + col) * 3..(row * w + col) * 3 + 3].fill(250);
            }
        }
        Frame::from_vec(data, PixelFormat::Bgr8, w as u32, h as u32).unwrap()
    }

    #[test]
    fn a_moving_square_is_boxed_where_it_is_and_a_still_scene_is_not() {
        let mut app = MotionApp::new(MotionConfig::default());
        // The square sits still long enough to become background...
        for _ in 0..200 {
            app.detect("cam", &frame_with_square(20, 20)).unwrap();
        }
        assert!(app
            .detect("cam", &frame_with_square(20, 20))
            .unwrap()
            .is_empty());
        // ...then jumps to the right: both where it went and where it left differ.
        let moving = app.detect("cam", &frame_with_square(110, 80)).unwrap();
        let (cx, cy) = ((110.0 + 8.0) / 160.0, (80.0 + 8.0) / 120.0);
        assert!(
            moving.iter().any(|m| m.x0 < cx
                && cx < m.x1
                && m.y0 < cy
                && cy < m.y1
                && m.x1 - m.x0 < 0.3),
            "{moving:?}"
        );
        // Another camera has its own background: its first frame only starts it.
        assert!(app
            .detect("other", &frame_with_square(110, 80))
            .unwrap()
            .is_empty());
    }

    #[test]
    fn streams_get_boxes_and_a_count_label_and_bad_frames_are_counted() {
        let mut app = MotionApp::new(MotionConfig::default());
        let gray = Frame::from_vec(vec![0; 64 * 48], PixelFormat::Gray8, 64, 48).unwrap();
        assert!(matches!(
            app.detect("cam", &gray),
            Err(MotionError::Format(PixelFormat::Gray8))
        ));
        let mut streams = vec![MediaStream::new(
            "cam",
            frame_with_square(20, 20),
            std::time::Duration::ZERO,
        )];
        app.process(&mut streams);
        let mut streams = vec![MediaStream::new(
            "cam",
            frame_with_square(100, 60),
            std::time::Duration::ZERO,
        )];
        app.process(&mut streams);
        let scene = streams[0].annotations();
        let rects = scene
            .annotations
            .iter()
            .filter(|a| matches!(a, telescope::annotation::Annotation::Rect { .. }))
            .count();
        assert!(rects >= 1, "{scene:?}");
        assert!(scene.to_json().contains(&format!("cam: {rects} moving")));
        assert_eq!(app.stats().frames, 2);
        assert_eq!(app.stats().boxes, rects as u64);
    }
}
