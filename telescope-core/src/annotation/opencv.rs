//! The OpenCV driver: draws a [`Scene`] on an 8-bit `Mat` (BGR or gray) or in place on a
//! [`Frame`], with alpha blending for translucent colors.
//!
//! Text uses OpenCV's Hershey simplex font, which has ASCII glyphs only: other characters are
//! drawn as `?`. I420 and NV12 frames are drawn on their luma plane (annotations appear in
//! shades of gray).

use opencv::core::{
    Mat, MatTrait, MatTraitConst, Point as CvPoint, Rect as CvRect, Scalar, Vector,
};
use opencv::imgproc;
use time::OffsetDateTime;

use super::color::Color;
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
    text: Option<&PlacedText>,
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
        Shape::Text { color, .. } => {
            // The background is drawn by the caller, before the text.
            let Some(t) = text else { return Ok(()) };
            imgproc::put_text(
                img,
                &t.text,
                t.origin - offset,
                FONT,
                t.scale,
                channels.scalar(*color),
                t.stroke,
                LINE,
                false,
            )
        }
    }
    .map_err(cv)
}

/// Draws through `f` at opacity `alpha` (0-255) of `color`. Opaque shapes are drawn
/// directly; translucent ones are drawn as a coverage mask over `region`, then blended pixel by
/// pixel where the mask is set (anti-aliased edges blend by their coverage), so the cost is one
/// small mask and one pass over the shape's box, not copies of the image.
fn blend(
    mat: &mut Mat,
    channels: Channels,
    color: Color,
    region: CvRect,
    f: impl FnOnce(&mut Mat, Channels, CvPoint) -> Result<(), DrawError>,
) -> Result<(), DrawError> {
    let alpha = color.a;
    if alpha == 0 {
        return Ok(());
    }
    if alpha == 255 {
        // Opaque: draw straight on the image (it clips).
        return f(mat, channels, CvPoint::new(0, 0));
    }
    let mut mask = Mat::new_rows_cols_with_default(
        region.height,
        region.width,
        opencv::core::CV_8UC1,
        Scalar::all(0.0),
    )
    .map_err(cv)?;
    f(&mut mask, Channels::Mask, CvPoint::new(region.x, region.y))?;
    let target = channels.scalar(color);
    let n = if channels == Channels::Gray { 1 } else { 3 };
    let value: [i32; 3] = [target[0] as i32, target[1] as i32, target[2] as i32];
    let width = region.width as usize;
    for y in 0..region.height {
        let m = mask.ptr(y).map_err(cv)?;
        let row = mat.ptr_mut(region.y + y).map_err(cv)?;
        // SAFETY: `mask` is region.width bytes wide; `region` lies inside `mat` (clipped by
        // the caller), so row `region.y + y` has `n` bytes per pixel from `region.x` on.
        let (m, px) = unsafe {
            (
                std::slice::from_raw_parts(m, width),
                std::slice::from_raw_parts_mut(row.add(region.x as usize * n), width * n),
            )
        };
        for (x, &cover) in m.iter().enumerate() {
            if cover == 0 {
                continue;
            }
            let k = i32::from(alpha) * i32::from(cover) / 255;
            for (c, v) in px[x * n..x * n + n].iter_mut().zip(value) {
                let old = i32::from(*c);
                *c = (old + (v - old) * k / 255) as u8;
            }
        }
    }
    Ok(())
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
        let Some(region) = clip(placed.bounds, w, h) else {
            return Ok(());
        };
        if let Some(bg) = *background {
            let b = placed.bounds;
            blend(mat, channels, bg, region, |img, ch, off| {
                imgproc::rectangle(
                    img,
                    CvRect::new(b.x - off.x, b.y - off.y, b.width, b.height),
                    ch.scalar(bg),
                    imgproc::FILLED,
                    imgproc::LINE_8,
                    0,
                )
                .map_err(cv)
            })?;
        }
        return blend(mat, channels, *color, region, |img, ch, off| {
            stroke_shape(img, ch, shape, Some(&placed), off)
        });
    }
    let color = match shape {
        Shape::Line { color, .. }
        | Shape::Rect { color, .. }
        | Shape::Poly { color, .. }
        | Shape::Circle { color, .. }
        | Shape::Text { color, .. } => *color,
    };
    let Some(region) = clip(bounds(shape), w, h) else {
        return Ok(());
    };
    blend(mat, channels, color, region, |img, ch, off| {
        stroke_shape(img, ch, shape, None, off)
    })
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
}
