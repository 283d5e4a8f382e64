//! The OpenCV driver: draws a [`Scene`] on an 8-bit `Mat` (BGR or gray) or in place on a
//! [`Frame`], with alpha blending for translucent colors.
//!
//! Text uses OpenCV's Hershey simplex font, which has ASCII glyphs only: other characters are
//! drawn as `?`. I420 and NV12 frames are drawn on their luma plane (annotations appear in
//! shades of gray).

use std::cell::RefCell;

use opencv::core::{
    Mat, MatTrait, MatTraitConst, MatTraitConstManual, Point as CvPoint, Rect as CvRect, Scalar,
    Vector,
};
use opencv::imgproc;
use time::OffsetDateTime;

use super::color::Color;
use super::coverage::{Canvas, Coverage, Lru};
use super::driver::{DrawError, DrawReport, Driver};
use super::layout::{Px, Shape};
use super::scene::{Anchor, Scene};
use crate::frame::{Frame, PixelFormat};

const FONT: i32 = imgproc::FONT_HERSHEY_SIMPLEX;
const LINE: i32 = imgproc::LINE_AA;

/// How a `Color` becomes a `Scalar` on this image.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Channels {
    /// 3 channels, blue first (OpenCV's usual order).
    Bgr,
    /// 3 channels, red first.
    Rgb,
    /// 1 channel: the color's luma.
    Gray,
    /// A coverage mask: every color is 255.
    Mask,
}

impl Channels {
    fn scalar(self, c: Color) -> Scalar {
        let (r, g, b) = (f64::from(c.r), f64::from(c.g), f64::from(c.b));
        match self {
            Channels::Bgr => Scalar::new(b, g, r, 0.0),
            Channels::Rgb => Scalar::new(r, g, b, 0.0),
            Channels::Gray => Scalar::all((c.brightness() * 255.0).round()),
            Channels::Mask => Scalar::all(255.0),
        }
    }
}

fn cv(e: opencv::Error) -> DrawError {
    DrawError::Backend(e.to_string())
}

/// Draws on an OpenCV `Mat` (`CV_8UC3` in BGR order unless told otherwise, or `CV_8UC1`).
#[derive(Debug)]
pub struct MatDriver<'a> {
    mat: &'a mut Mat,
    channels: Option<Channels>,
}

impl<'a> MatDriver<'a> {
    /// A driver for a BGR or gray `Mat`.
    pub fn new(mat: &'a mut Mat) -> Self {
        MatDriver {
            mat,
            channels: None,
        }
    }

    /// A driver for a 3-channel `Mat` in RGB order.
    pub fn rgb(mat: &'a mut Mat) -> Self {
        MatDriver {
            mat,
            channels: Some(Channels::Rgb),
        }
    }
}

impl Driver for MatDriver<'_> {
    fn draw(
        &mut self,
        scene: &Scene,
        frame_time: Option<OffsetDateTime>,
    ) -> Result<DrawReport, DrawError> {
        let channels = match (self.mat.typ(), self.channels) {
            (t, Some(c)) if t == opencv::core::CV_8UC3 => c,
            (t, None) if t == opencv::core::CV_8UC3 => Channels::Bgr,
            (t, _) if t == opencv::core::CV_8UC1 => Channels::Gray,
            (t, _) => {
                return Err(DrawError::Image(format!(
                    "OpenCV Mat type {t}; expected CV_8UC3 or CV_8UC1"
                )))
            }
        };
        render(self.mat, channels, scene, frame_time)
    }
}

/// Draws in place on a [`Frame`]'s pixels, whatever its stride.
#[derive(Debug)]
pub struct FrameDriver<'a> {
    frame: &'a mut Frame,
}

impl<'a> FrameDriver<'a> {
    /// A driver for one frame.
    pub fn new(frame: &'a mut Frame) -> Self {
        FrameDriver { frame }
    }
}

impl Driver for FrameDriver<'_> {
    fn draw(
        &mut self,
        scene: &Scene,
        frame_time: Option<OffsetDateTime>,
    ) -> Result<DrawReport, DrawError> {
        let (format, width, height, stride) = (
            self.frame.format(),
            self.frame.width(),
            self.frame.height(),
            self.frame.stride(),
        );
        PixelDriver::new(self.frame.data_mut(), format, width, height, stride)
            .draw(scene, frame_time)
    }
}

/// Draws in place on pixels held elsewhere (a numpy array, a mapped buffer): `height` rows
/// `stride` bytes apart, the last row needing only its pixels (a crop of a larger image).
#[derive(Debug)]
pub struct PixelDriver<'a> {
    data: &'a mut [u8],
    format: PixelFormat,
    width: u32,
    height: u32,
    stride: usize,
}

impl<'a> PixelDriver<'a> {
    /// A driver for these pixels; their size is checked when drawing.
    pub fn new(
        data: &'a mut [u8],
        format: PixelFormat,
        width: u32,
        height: u32,
        stride: usize,
    ) -> Self {
        PixelDriver {
            data,
            format,
            width,
            height,
            stride,
        }
    }
}

impl Driver for PixelDriver<'_> {
    fn draw(
        &mut self,
        scene: &Scene,
        frame_time: Option<OffsetDateTime>,
    ) -> Result<DrawReport, DrawError> {
        let (typ, channels) = match self.format {
            PixelFormat::Bgr8 => (opencv::core::CV_8UC3, Channels::Bgr),
            PixelFormat::Rgb8 => (opencv::core::CV_8UC3, Channels::Rgb),
            // Luma plane first, one byte per pixel.
            PixelFormat::Gray8 | PixelFormat::I420 | PixelFormat::Nv12 => {
                (opencv::core::CV_8UC1, Channels::Gray)
            }
        };
        let (w, h, stride) = (self.width, self.height, self.stride);
        let rows = i32::try_from(h).map_err(|_| DrawError::Image(format!("height {h}")))?;
        let cols = i32::try_from(w).map_err(|_| DrawError::Image(format!("width {w}")))?;
        let row = w as usize * self.format.luma_bytes_per_pixel();
        let needed = (stride * (h as usize).saturating_sub(1)).saturating_add(row);
        if h == 0 || w == 0 || stride < row || self.data.len() < needed {
            return Err(DrawError::Image(format!(
                "{} bytes for {h} rows of {row} bytes, {stride} apart",
                self.data.len()
            )));
        }
        // SAFETY: the slice holds `h` rows `stride` bytes apart with `row` bytes each (checked
        // above), the Mat header does not outlive this borrow of the pixels, and OpenCV only
        // reads and writes inside the `rows` x `cols` area.
        let mut mat = unsafe {
            Mat::new_rows_cols_with_data_unsafe(
                rows,
                cols,
                typ,
                self.data.as_mut_ptr().cast::<std::ffi::c_void>(),
                stride,
            )
        }
        .map_err(cv)?;
        render(&mut mat, channels, scene, frame_time)
    }
}

/// Draws `scene` on `mat`.
fn render(
    mat: &mut Mat,
    channels: Channels,
    scene: &Scene,
    frame_time: Option<OffsetDateTime>,
) -> Result<DrawReport, DrawError> {
    scene.validate()?;
    let (w, h) = (mat.cols(), mat.rows());
    if w <= 0 || h <= 0 {
        return Err(DrawError::Image("empty image".into()));
    }
    let mut report = DrawReport::default();
    let mut shapes = Vec::new();
    for (i, a) in scene.annotations.iter().enumerate() {
        shapes.clear();
        match super::layout::lower_one(a, w as u32, h as u32, frame_time, &mut shapes) {
            Ok(()) => {
                for s in &shapes {
                    draw_shape(mat, channels, s)?;
                }
                report.drawn += 1;
            }
            Err(skip) => report.skipped.push((i, skip)),
        }
    }
    Ok(report)
}

fn p(px: Px) -> CvPoint {
    CvPoint::new(px.0, px.1)
}

/// A text placed on the image: baseline origin, scale, stroke, and its box (with padding).
struct PlacedText {
    text: String,
    origin: CvPoint,
    scale: f64,
    stroke: i32,
    bounds: CvRect,
}

fn place_text(
    text: &str,
    at: Px,
    anchor: Anchor,
    height: i32,
    w: i32,
    h: i32,
) -> Result<PlacedText, DrawError> {
    let text: String = text
        .chars()
        .map(|c| {
            if c.is_ascii_graphic() || c == ' ' {
                c
            } else {
                '?'
            }
        })
        .collect();
    let mut base = 0;
    let unit = imgproc::get_text_size(&text, FONT, 1.0, 1, &mut base).map_err(cv)?;
    let scale = f64::from(height) / f64::from(unit.height.max(1));
    let stroke = (height / 12).max(1);
    let mut base = 0;
    let size = imgproc::get_text_size(&text, FONT, scale, stroke, &mut base).map_err(cv)?;
    let pad = (height / 4).max(2);
    let (tw, th) = (size.width + 2 * pad, size.height + base + 2 * pad);
    // Top-left of the padded box.
    let (mut x, mut y) = match anchor {
        Anchor::TopLeft => (at.0, at.1),
        Anchor::BottomLeft => (at.0, at.1 - th),
        Anchor::Center => (at.0 - tw / 2, at.1 - th / 2),
    };
    // Keep it on the image where it fits.
    x = x.min(w - tw).max(0);
    y = y.min(h - th).max(0);
    Ok(PlacedText {
        text,
        origin: CvPoint::new(x + pad, y + pad + size.height),
        scale,
        stroke,
        bounds: CvRect::new(x, y, tw, th),
    })
}

/// The pixels a shape may touch, before clipping to the image.
fn bounds(shape: &Shape) -> CvRect {
    let span = |pts: &mut dyn Iterator<Item = Px>, margin: i32| {
        let (mut x0, mut y0, mut x1, mut y1) = (i32::MAX, i32::MAX, i32::MIN, i32::MIN);
        for (x, y) in pts {
            x0 = x0.min(x);
            y0 = y0.min(y);
            x1 = x1.max(x);
            y1 = y1.max(y);
        }
        CvRect::new(
            x0.saturating_sub(margin),
            y0.saturating_sub(margin),
            (x1 - x0).saturating_add(2 * margin + 1),
            (y1 - y0).saturating_add(2 * margin + 1),
        )
    };
    match shape {
        Shape::Line {
            from,
            to,
            thickness,
            ..
        } => span(&mut [*from, *to].into_iter(), thickness + 2),
        Shape::Rect {
            top_left,
            bottom_right,
            thickness,
            ..
        } => span(&mut [*top_left, *bottom_right].into_iter(), thickness + 2),
        Shape::Poly {
            points, thickness, ..
        } => span(&mut points.iter().copied(), thickness + 2),
        Shape::Circle {
            center,
            radius,
            thickness,
            ..
        } => span(&mut [*center].into_iter(), radius + thickness + 2),
        // Placed separately.
        Shape::Text { .. } => CvRect::new(0, 0, 0, 0),
    }
}

fn clip(r: CvRect, w: i32, h: i32) -> Option<CvRect> {
    let x0 = r.x.max(0);
    let y0 = r.y.max(0);
    let x1 = r.x.saturating_add(r.width).min(w);
    let y1 = r.y.saturating_add(r.height).min(h);
    (x1 > x0 && y1 > y0).then(|| CvRect::new(x0, y0, x1 - x0, y1 - y0))
}

/// Draws one shape, moved by `-offset` (drawing on a region of interest).
fn stroke_shape(
    img: &mut Mat,
    channels: Channels,
    shape: &Shape,
    offset: CvPoint,
) -> Result<(), DrawError> {
    let at = |px: Px| p(px) - offset;
    match shape {
        Shape::Line {
            from,
            to,
            color,
            thickness,
        } => imgproc::line(
            img,
            at(*from),
            at(*to),
            channels.scalar(*color),
            *thickness,
            LINE,
            0,
        ),
        Shape::Rect {
            top_left,
            bottom_right,
            color,
            thickness,
            fill,
        } => imgproc::rectangle_points(
            img,
            at(*top_left),
            at(*bottom_right),
            channels.scalar(*color),
            if *fill { imgproc::FILLED } else { *thickness },
            imgproc::LINE_8,
            0,
        ),
        Shape::Poly {
            points,
            closed,
            fill,
            color,
            thickness,
        } => {
            let pts: Vector<CvPoint> = points.iter().map(|q| at(*q)).collect();
            let mut all = Vector::<Vector<CvPoint>>::new();
            all.push(pts);
            if *fill {
                imgproc::fill_poly(
                    img,
                    &all,
                    channels.scalar(*color),
                    LINE,
                    0,
                    CvPoint::new(0, 0),
                )
            } else {
                imgproc::polylines(
                    img,
                    &all,
                    *closed,
                    channels.scalar(*color),
                    *thickness,
                    LINE,
                    0,
                )
            }
        }
        Shape::Circle {
            center,
            radius,
            color,
            thickness,
        } => imgproc::circle(
            img,
            at(*center),
            *radius,
            channels.scalar(*color),
            *thickness,
            LINE,
            0,
        ),
        // Captions are composed from cached letters by `caption`.
        Shape::Text { .. } => Ok(()),
    }
    .map_err(cv)
}

/// Masks kept per drawing thread (the pipeline's worker, the app's thread): glyphs are small,
/// filled shapes up to the frame's size.
const GLYPH_CACHE_BYTES: usize = 4 << 20;
const MASK_CACHE_BYTES: usize = 32 << 20;

/// One letter at one size: its coverage with the origin at the pen position on the baseline,
/// and its advance at scale 1.
#[derive(Debug)]
struct Glyph {
    coverage: Coverage,
    advance: f64,
}

/// A shape's mask: the shape with its color left out, moved to the origin of the area it is
/// rasterized over, and that area's size.
type MaskKey = (Shape, (i32, i32));

thread_local! {
    static GLYPHS: RefCell<Lru<(u8, i32), Glyph>> = RefCell::new(Lru::new(GLYPH_CACHE_BYTES));
    static MASKS: RefCell<Lru<MaskKey, Coverage>> =
        RefCell::new(Lru::second_sighting(MASK_CACHE_BYTES));
}

/// Forget the masks this thread has kept (benchmarks measure drawing from nothing with it).
pub fn clear_caches() {
    GLYPHS.with(|g| g.borrow_mut().clear());
    MASKS.with(|m| m.borrow_mut().clear());
}

/// Bytes this thread's caches hold: letters, then shape masks.
pub fn cache_bytes() -> (usize, usize) {
    (
        GLYPHS.with(|g| g.borrow().bytes()),
        MASKS.with(|m| m.borrow().bytes()),
    )
}

/// The pixels of `mat` as a [`Canvas`] (8-bit, 1 or 3 channels, checked by the callers).
fn canvas(mat: &mut Mat) -> Result<Canvas<'_>, DrawError> {
    let (w, h) = (mat.cols() as usize, mat.rows() as usize);
    let n = mat.channels() as usize;
    let stride = mat.step1(0).map_err(cv)? * mat.elem_size1();
    let len = stride * (h.saturating_sub(1)) + w * n;
    let data = mat.ptr_mut(0).map_err(cv)?;
    // SAFETY: an 8-bit Mat of `h` rows `stride` bytes apart holds `w * n` bytes on each row
    // from `data` on; the slice borrows `mat` mutably, so nothing else touches the pixels
    // while it lives.
    let data = unsafe { std::slice::from_raw_parts_mut(data, len) };
    Canvas::new(data, w, h, stride, n).map_err(|e| DrawError::Image(e.to_string()))
}

/// The bytes of `color` on this image, in its channel order.
fn bytes(channels: Channels, color: Color) -> [u8; 3] {
    let s = channels.scalar(color);
    [s[0] as u8, s[1] as u8, s[2] as u8]
}

/// Rasterizes one letter into a mask (OpenCV's anti-aliased Hershey strokes).
fn rasterize_glyph(c: u8, scale: f64, stroke: i32, height: i32) -> Result<Glyph, DrawError> {
    let s = char::from(c).to_string();
    let mut base = 0;
    let unit = imgproc::get_text_size(&s, FONT, 1.0, 0, &mut base).map_err(cv)?;
    let mut base = 0;
    let size = imgproc::get_text_size(&s, FONT, scale, stroke, &mut base).map_err(cv)?;
    let margin = stroke + height / 4 + 2;
    let (mw, mh) = (
        size.width + 2 * margin,
        size.height + base + stroke + 2 * margin,
    );
    let mut mask = Mat::new_rows_cols_with_default(mh, mw, opencv::core::CV_8UC1, Scalar::all(0.0))
        .map_err(cv)?;
    let origin = CvPoint::new(margin, margin + size.height);
    imgproc::put_text(
        &mut mask,
        &s,
        origin,
        FONT,
        scale,
        Scalar::all(255.0),
        stroke,
        LINE,
        false,
    )
    .map_err(cv)?;
    let data = mask.data_bytes().map_err(cv)?.to_vec();
    Ok(Glyph {
        coverage: Coverage::from_mask(-origin.x, -origin.y, mw as usize, mh as usize, data),
        advance: f64::from(unit.width),
    })
}

/// Draws a caption: its letters' masks (rasterized once per size and kept) placed along the
/// baseline as OpenCV's `putText` places them, each blended where it lies. Where two letters'
/// anti-aliased edges meet, the second blends over the first, as overlapping strokes do.
fn draw_caption(
    canvas: &mut Canvas<'_>,
    t: &PlacedText,
    height: i32,
    color: [u8; 3],
    alpha: u8,
) -> Result<(), DrawError> {
    let paint = canvas.paint(color, alpha, t.bounds.width.max(1) as usize);
    GLYPHS.with(|cache| {
        let mut cache = cache.borrow_mut();
        let mut pen = 0.0;
        for c in t.text.bytes() {
            let g = cache.get_or_try_insert(&(c, height), || {
                let g = rasterize_glyph(c, t.scale, t.stroke, height)?;
                let size = g.coverage.bytes() + std::mem::size_of::<Glyph>();
                Ok::<_, DrawError>((g, size))
            })?;
            if !g.coverage.is_empty() {
                let x = t.origin.x + (pen * t.scale).round() as i32;
                canvas.blend_coverage_at(&g.coverage, (x, t.origin.y), &paint);
            }
            pen += g.advance;
        }
        Ok(())
    })
}

/// Shapes whose box is at most this many pixels are drawn through a kept mask even when
/// opaque: markers and other small shapes rasterize once however often they are drawn and
/// wherever they move. Larger opaque shapes are drawn straight on the image.
const SMALL_SHAPE_PX: i64 = 256 * 256;

/// The coverage of `shape` over `area` of the image, with its origin at `area`'s top-left.
/// Kept by the shape's form, not its place or color: the same marker anywhere on the image, or
/// a zone drawn on every frame, is rasterized once.
fn shape_coverage(shape: &Shape, area: CvRect) -> Result<std::rc::Rc<Coverage>, DrawError> {
    let key = (
        shape
            .translated(-area.x, -area.y)
            .recolored(Color::rgba(0, 0, 0, 0)),
        (area.width, area.height),
    );
    MASKS.with(|cache| {
        cache.borrow_mut().get_or_try_insert(&key, || {
            let mut mask = Mat::new_rows_cols_with_default(
                area.height,
                area.width,
                opencv::core::CV_8UC1,
                Scalar::all(0.0),
            )
            .map_err(cv)?;
            stroke_shape(&mut mask, Channels::Mask, &key.0, CvPoint::new(0, 0))?;
            let data = mask.data_bytes().map_err(cv)?.to_vec();
            let c = Coverage::from_mask(0, 0, area.width as usize, area.height as usize, data);
            let size = c.bytes();
            Ok((c, size))
        })
    })
}

/// An axis-aligned rectangle, filled or as a band `thickness` pixels wide centred on its edges
/// (four strips that do not overlap, so a translucent outline blends once everywhere).
fn draw_rect(
    canvas: &mut Canvas<'_>,
    corners: (Px, Px),
    thickness: i32,
    fill: bool,
    color: [u8; 3],
    alpha: u8,
) {
    let ((ax, ay), (bx, by)) = corners;
    let (x0, y0, x1, y1) = (ax.min(bx), ay.min(by), ax.max(bx), ay.max(by));
    if fill {
        canvas.blend_rect(x0, y0, x1 + 1, y1 + 1, color, alpha);
        return;
    }
    let t = thickness.max(1);
    let o = t / 2;
    // The outer edge of the band, end exclusive.
    let (ox0, oy0, ox1, oy1) = (x0 - o, y0 - o, x1 - o + t, y1 - o + t);
    if ox1 - ox0 <= 2 * t || oy1 - oy0 <= 2 * t {
        canvas.blend_rect(ox0, oy0, ox1, oy1, color, alpha);
        return;
    }
    canvas.blend_rect(ox0, oy0, ox1, oy0 + t, color, alpha);
    canvas.blend_rect(ox0, oy1 - t, ox1, oy1, color, alpha);
    canvas.blend_rect(ox0, oy0 + t, ox0 + t, oy1 - t, color, alpha);
    canvas.blend_rect(ox1 - t, oy0 + t, ox1, oy1 - t, color, alpha);
}

fn draw_shape(mat: &mut Mat, channels: Channels, shape: &Shape) -> Result<(), DrawError> {
    let (w, h) = (mat.cols(), mat.rows());
    if let Shape::Text {
        text,
        at,
        anchor,
        height,
        color,
        background,
    } = shape
    {
        let placed = place_text(text, *at, *anchor, *height, w, h)?;
        let mut canvas = canvas(mat)?;
        if let Some(bg) = *background {
            let b = placed.bounds;
            canvas.blend_rect(
                b.x,
                b.y,
                b.x + b.width,
                b.y + b.height,
                bytes(channels, bg),
                bg.a,
            );
        }
        return draw_caption(
            &mut canvas,
            &placed,
            *height,
            bytes(channels, *color),
            color.a,
        );
    }
    let color = shape.color();
    if color.a == 0 {
        return Ok(());
    }
    if let Shape::Rect {
        top_left,
        bottom_right,
        thickness,
        fill,
        ..
    } = shape
    {
        draw_rect(
            &mut canvas(mat)?,
            (*top_left, *bottom_right),
            *thickness,
            *fill,
            bytes(channels, color),
            color.a,
        );
        return Ok(());
    }
    let whole = bounds(shape);
    let Some(region) = clip(whole, w, h) else {
        return Ok(());
    };
    let area = if i64::from(whole.width) * i64::from(whole.height) <= SMALL_SHAPE_PX {
        // Small: the whole shape, so that it is kept however it is clipped.
        whole
    } else if color.a == 255 {
        // Large and opaque: straight on the image (OpenCV clips).
        return stroke_shape(mat, channels, shape, CvPoint::new(0, 0));
    } else {
        region
    };
    let coverage = shape_coverage(shape, area)?;
    let mut canvas = canvas(mat)?;
    let paint = canvas.paint(bytes(channels, color), color.a, area.width as usize);
    canvas.blend_coverage_at(&coverage, (area.x, area.y), &paint);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use opencv::core::CV_8UC3;

    fn canvas(w: i32, h: i32) -> Mat {
        Mat::new_rows_cols_with_default(h, w, CV_8UC3, Scalar::all(0.0)).unwrap()
    }

    fn px3(m: &Mat, x: i32, y: i32) -> [u8; 3] {
        let v = m.at_2d::<opencv::core::Vec3b>(y, x).unwrap();
        [v[0], v[1], v[2]]
    }

    #[test]
    fn a_rect_lands_on_the_pixels_its_coordinates_name_in_bgr_order() {
        let mut m = canvas(100, 50);
        let scene = Scene::from_json(
            r##"{"annotations":[{"type":"rect","rect":[0.1,0.2,0.5,0.8],"color":"#ff0000","fill":true}]}"##,
        )
        .unwrap();
        let r = MatDriver::new(&mut m).draw(&scene, None).unwrap();
        assert_eq!(r.drawn, 1);
        assert_eq!(px3(&m, 30, 25), [0, 0, 255]);
        assert_eq!(px3(&m, 5, 25), [0, 0, 0]);
        assert_eq!(px3(&m, 30, 45), [0, 0, 0]);
        let mut m = canvas(100, 50);
        MatDriver::rgb(&mut m).draw(&scene, None).unwrap();
        assert_eq!(px3(&m, 30, 25), [255, 0, 0]);
    }

    #[test]
    fn translucent_colors_blend_with_what_is_below() {
        let mut m = Mat::new_rows_cols_with_default(20, 20, CV_8UC3, Scalar::all(100.0)).unwrap();
        let scene = Scene::from_json(
            r##"{"annotations":[{"type":"rect","rect":[0,0,1,1],"color":"#ffffff80","fill":true}]}"##,
        )
        .unwrap();
        MatDriver::new(&mut m).draw(&scene, None).unwrap();
        // 100 + (255 - 100) * 128/255 = 177.8
        let v = px3(&m, 10, 10);
        assert!(v.iter().all(|c| (176..=179).contains(c)), "{v:?}");
    }

    #[test]
    fn frames_are_drawn_in_place_whatever_their_stride_and_format() {
        let scene = Scene::from_json(
            r##"{"annotations":[{"type":"line","from":[0,0.5],"to":[1,0.5],"color":"#ffffff","thickness":3}]}"##,
        )
        .unwrap();
        // BGR with padding at the end of each row: the padding stays untouched.
        let (w, h, stride) = (40u32, 20u32, 40 * 3 + 8);
        let mut f = Frame::from_vec_with_stride(
            vec![7u8; stride * h as usize],
            PixelFormat::Bgr8,
            w,
            h,
            stride,
        )
        .unwrap();
        FrameDriver::new(&mut f).draw(&scene, None).unwrap();
        let row = &f.data()[10 * stride..11 * stride];
        assert_eq!(&row[60..63], &[255, 255, 255]);
        assert!(row[120..].iter().all(|&b| b == 7));
        assert!(f.data()[..stride].iter().all(|&b| b == 7));
        // I420: only the luma plane changes.
        let len = (w * h + 2 * (w / 2) * (h / 2)) as usize;
        let mut f = Frame::from_vec(vec![16u8; len], PixelFormat::I420, w, h).unwrap();
        FrameDriver::new(&mut f).draw(&scene, None).unwrap();
        assert_eq!(f.data()[10 * w as usize + 20], 255);
        assert!(f.data()[(w * h) as usize..].iter().all(|&b| b == 16));
    }

    #[test]
    fn text_stays_inside_the_image_and_non_ascii_does_not_fail() {
        let mut m = canvas(120, 60);
        let scene = Scene::from_json(
            r##"{"annotations":[{"type":"label","text":"héllo wörld, a long label","at":[0.9,0.95],"size":0.2,"background":"#0000ff"}]}"##,
        )
        .unwrap();
        let r = MatDriver::new(&mut m).draw(&scene, None).unwrap();
        assert_eq!(r.drawn, 1);
        // The background box was pulled back onto the image: its bottom-right corner is blue.
        assert_eq!(px3(&m, 119, 59), [255, 0, 0]);
    }

    #[test]
    fn empty_and_wrong_typed_mats_are_errors() {
        let mut m = Mat::default();
        assert!(matches!(
            MatDriver::new(&mut m).draw(&Scene::default(), None),
            Err(DrawError::Image(_))
        ));
        let mut f32m =
            Mat::new_rows_cols_with_default(2, 2, opencv::core::CV_32FC1, Scalar::all(0.0))
                .unwrap();
        assert!(matches!(
            MatDriver::new(&mut f32m).draw(&Scene::default(), None),
            Err(DrawError::Image(_))
        ));
    }

    fn mixed(dx: f64) -> Scene {
        Scene::from_json(&format!(
            r##"{{"annotations":[
              {{"type":"marker","at":[{a},0.3],"style":"star"}},
              {{"type":"marker","at":[{a},0.7],"style":"circle","color":"#ff000080"}},
              {{"type":"polyline","points":[[0.1,0.1],[0.9,0.2],[0.5,0.9]],"closed":true,"fill":true,"color":"#00ff0060"}},
              {{"type":"bounding_box","rect":[{a},0.4,0.6,0.8],"label":"person","confidence":0.5}},
              {{"type":"label","text":"label","at":[0.05,0.05],"background":"#00000080"}}]}}"##,
            a = 0.2 + dx
        ))
        .unwrap()
    }

    fn drawn(scene: &Scene) -> Vec<u8> {
        let mut m = canvas(160, 120);
        MatDriver::new(&mut m).draw(scene, None).unwrap();
        m.data_bytes().unwrap().to_vec()
    }

    #[test]
    fn kept_masks_draw_what_rasterizing_afresh_draws_wherever_the_shapes_move() {
        clear_caches();
        let first = drawn(&mixed(0.0));
        assert!(first.iter().any(|&b| b != 0));
        // The same scene again, from the kept masks.
        assert_eq!(drawn(&mixed(0.0)), first);
        // Markers and captions moved: kept masks drawn elsewhere, as a fresh raster would be.
        let moved = drawn(&mixed(0.13));
        clear_caches();
        assert_eq!(drawn(&mixed(0.13)), moved);
        assert_ne!(moved, first);
    }

    #[test]
    fn rect_outlines_are_as_thick_as_asked_and_translucent_ones_blend_once() {
        let mut m = canvas(40, 40);
        let scene = Scene::from_json(
            r##"{"annotations":[{"type":"rect","rect":[0.25,0.25,0.75,0.75],"color":"#ffffff80","thickness":3}]}"##,
        )
        .unwrap();
        MatDriver::new(&mut m).draw(&scene, None).unwrap();
        // Corners at pixels 10 and 30; a band of 3 centred on them: 9..=11 and 29..=31.
        let row: Vec<u8> = (0..40).map(|x| px3(&m, x, 20)[0]).collect();
        let lit: Vec<i32> = (0..40).filter(|&x| row[x as usize] > 0).collect();
        assert_eq!(lit, vec![9, 10, 11, 29, 30, 31]);
        // Every pixel of the band, corners included, has the same half-way value.
        let band: Vec<u8> = (9..=31).map(|x| px3(&m, x, 9)[0]).collect();
        assert!(
            band.iter()
                .all(|&v| v == band[0] && (127..=129).contains(&v)),
            "{band:?}"
        );
    }

    #[test]
    fn shapes_drawn_once_are_not_kept_and_repeated_ones_are() {
        clear_caches();
        let zone = |grow: f64| {
            Scene::from_json(&format!(
                r##"{{"annotations":[{{"type":"polyline","points":[[0.1,0.1],[{x},0.2],[0.5,{y}]],"closed":true,"fill":true,"color":"#00ff0060"}}]}}"##,
                x = 0.5 + grow,
                y = 0.5 + grow
            ))
            .unwrap()
        };
        // A translucent shape that changes on every frame: nothing kept.
        for i in 0..40 {
            drawn(&zone(f64::from(i) * 0.01));
        }
        assert_eq!(cache_bytes().1, 0);
        // The same shape on two frames: kept from the second.
        drawn(&zone(0.0));
        let kept = cache_bytes().1;
        assert!(kept > 0);
        drawn(&zone(0.0));
        assert_eq!(cache_bytes().1, kept);
    }

    #[test]
    fn a_region_of_interest_is_drawn_inside_its_bounds_only() {
        // The 20x10 region at (10, 5) of a 40x30 BGR image: rows 120 bytes apart.
        let stride = 40 * 3;
        let mut data = vec![0u8; stride * 30];
        {
            let region = &mut data[5 * stride + 10 * 3..];
            let scene = Scene::from_json(
                r##"{"annotations":[{"type":"polyline","points":[[0,0],[1,0],[1,1],[0,1]],"closed":true,"fill":true,"color":"#ffffff80"},
                    {"type":"rect","rect":[0,0,1,1],"color":"#ffffff","thickness":1}]}"##,
            )
            .unwrap();
            PixelDriver::new(region, PixelFormat::Bgr8, 20, 10, stride)
                .draw(&scene, None)
                .unwrap();
        }
        for y in 0..30 {
            for x in 0..40 {
                let inside = (10..30).contains(&x) && (5..15).contains(&y);
                assert_eq!(data[y * stride + x * 3] > 0, inside, "pixel ({x},{y})");
            }
        }
    }
}
