//! From a normalized [`Scene`] to pixel shapes for one image size: where every marker vertex,
//! bounding-box label and timestamp goes. Pixel drivers (OpenCV, and any other rasterizer) only
//! draw these shapes, so placement is decided once and is the same everywhere.

use time::OffsetDateTime;

use super::color::Color;
use super::geometry::{Point, Rect};
use super::scene::{Anchor, Annotation, MarkerStyle, Scene, DEFAULT_TIME_FORMAT};

/// A pixel position; may lie outside the image (drawing clips).
pub type Px = (i32, i32);

/// One thing to draw, in pixels.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Shape {
    /// A segment.
    Line {
        /// Start.
        from: Px,
        /// End.
        to: Px,
        /// Color (alpha blends).
        color: Color,
        /// Pixels.
        thickness: i32,
    },
    /// An axis-aligned rectangle, corners inclusive.
    Rect {
        /// Top-left.
        top_left: Px,
        /// Bottom-right.
        bottom_right: Px,
        /// Color.
        color: Color,
        /// Pixels; ignored when filled.
        thickness: i32,
        /// Filled.
        fill: bool,
    },
    /// A polygon or open polyline.
    Poly {
        /// Vertices.
        points: Vec<Px>,
        /// Join last to first.
        closed: bool,
        /// Filled (implies closed).
        fill: bool,
        /// Color.
        color: Color,
        /// Pixels.
        thickness: i32,
    },
    /// A circle outline.
    Circle {
        /// Center.
        center: Px,
        /// Radius in pixels.
        radius: i32,
        /// Color.
        color: Color,
        /// Pixels.
        thickness: i32,
    },
    /// Text; the driver measures it and places it by `anchor`, inside the image.
    Text {
        /// What to write (never empty).
        text: String,
        /// The anchor point.
        at: Px,
        /// Which part of the text box `at` is.
        anchor: Anchor,
        /// Height of capital letters in pixels.
        height: i32,
        /// Text color.
        color: Color,
        /// A filled box behind the text.
        background: Option<Color>,
    },
}

impl Shape {
    /// Its color.
    pub fn color(&self) -> Color {
        match self {
            Shape::Line { color, .. }
            | Shape::Rect { color, .. }
            | Shape::Poly { color, .. }
            | Shape::Circle { color, .. }
            | Shape::Text { color, .. } => *color,
        }
    }

    /// The same shape moved by `(dx, dy)` pixels.
    pub fn translated(&self, dx: i32, dy: i32) -> Shape {
        let mv = |p: &mut Px| *p = (p.0.saturating_add(dx), p.1.saturating_add(dy));
        let mut s = self.clone();
        match &mut s {
            Shape::Line { from, to, .. } => {
                mv(from);
                mv(to);
            }
            Shape::Rect {
                top_left,
                bottom_right,
                ..
            } => {
                mv(top_left);
                mv(bottom_right);
            }
            Shape::Poly { points, .. } => points.iter_mut().for_each(mv),
            Shape::Circle { center, .. } => mv(center),
            Shape::Text { at, .. } => mv(at),
        }
        s
    }

    /// The same shape in another color.
    pub fn recolored(mut self, to: Color) -> Shape {
        match &mut self {
            Shape::Line { color, .. }
            | Shape::Rect { color, .. }
            | Shape::Poly { color, .. }
            | Shape::Circle { color, .. }
            | Shape::Text { color, .. } => *color = to,
        }
        self
    }
}

/// Why an annotation produced nothing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Skip {
    /// A label with empty text.
    EmptyText,
    /// A polyline with fewer than two points.
    TooFewPoints,
    /// A timestamp with no fixed time and no frame time given.
    NoTime,
    /// The target cannot draw this kind of annotation.
    Unsupported,
}

impl Skip {
    /// Short description.
    pub fn reason(self) -> &'static str {
        match self {
            Skip::EmptyText => "empty text",
            Skip::TooFewPoints => "fewer than two points",
            Skip::NoTime => "no time to show",
            Skip::Unsupported => "not supported by this driver",
        }
    }
}

/// Normalized coordinates far outside the image are pulled in this far, so that pixel values
/// stay small integers whatever the input (a line keeps its direction for any sane input).
const FAR: f64 = 8.0;

fn px(p: Point, width: u32, height: u32) -> Px {
    let conv = |v: f64, size: u32| (v.clamp(-FAR, 1.0 + FAR) * f64::from(size)).round() as i32;
    (conv(p.0, width), conv(p.1, height))
}

/// Inside the image: labels and markers stay visible at the edge they went past.
fn px_inside(p: Point, width: u32, height: u32) -> Px {
    p.to_pixels(width, height)
}

/// Pixel thickness from the scene's (already validated, 1..=100).
fn thick(t: u32) -> i32 {
    t.clamp(1, 100) as i32
}

/// A text height in pixels: at least 8 so that it stays legible on small images.
fn text_px(size: f64, height: u32) -> i32 {
    ((size.clamp(0.0, 1.0) * f64::from(height)).round() as i32).max(8)
}

/// The text of a bounding-box label: `person 93%`, `person`, `93%`, `#17`.
pub fn box_caption(
    label: Option<&str>,
    confidence: Option<f64>,
    track_id: Option<u64>,
) -> Option<String> {
    let mut parts = Vec::new();
    if let Some(l) = label.filter(|l| !l.is_empty()) {
        parts.push(l.to_owned());
    }
    if let Some(c) = confidence {
        parts.push(format!("{:.0}%", c * 100.0));
    }
    if parts.is_empty() {
        track_id.map(|t| format!("#{t}"))
    } else {
        Some(parts.join(" "))
    }
}

/// The color of a bounding box: its own, else its track's, else the default.
pub fn box_color(color: Option<Color>, track_id: Option<u64>) -> Color {
    color.unwrap_or_else(|| track_id.map(Color::for_track).unwrap_or_default())
}

/// A timestamp's text: the fixed time, else `frame_time`, in `format`.
pub fn timestamp_text(
    time: Option<&str>,
    format: Option<&str>,
    frame_time: Option<OffsetDateTime>,
) -> Option<String> {
    let t = match time {
        Some(t) => OffsetDateTime::parse(t, &time::format_description::well_known::Rfc3339).ok()?,
        None => frame_time?,
    };
    let format = format.unwrap_or(DEFAULT_TIME_FORMAT);
    let description = time::format_description::parse_owned::<2>(format).ok()?;
    t.format(&description).ok()
}

fn marker(style: MarkerStyle, c: Px, r: i32, color: Color, out: &mut Vec<Shape>) {
    let (x, y) = c;
    let t = (r / 4).clamp(1, 8);
    let line = |from: Px, to: Px| Shape::Line {
        from,
        to,
        color,
        thickness: t,
    };
    let poly = |points: Vec<Px>| Shape::Poly {
        points,
        closed: true,
        fill: false,
        color,
        thickness: t,
    };
    match style {
        MarkerStyle::Cross => {
            out.push(line((x - r, y - r), (x + r, y + r)));
            out.push(line((x - r, y + r), (x + r, y - r)));
        }
        MarkerStyle::Plus => {
            out.push(line((x - r, y), (x + r, y)));
            out.push(line((x, y - r), (x, y + r)));
        }
        MarkerStyle::Diamond => {
            out.push(poly(vec![(x, y - r), (x + r, y), (x, y + r), (x - r, y)]))
        }
        MarkerStyle::Square => out.push(Shape::Rect {
            top_left: (x - r, y - r),
            bottom_right: (x + r, y + r),
            color,
            thickness: t,
            fill: false,
        }),
        MarkerStyle::Triangle => {
            // Equilateral, centred on the point.
            let h = f64::from(r);
            let dx = (h * 0.866).round() as i32;
            let dy = (h * 0.5).round() as i32;
            out.push(poly(vec![(x, y - r), (x + dx, y + dy), (x - dx, y + dy)]));
        }
        MarkerStyle::Star => {
            let points = (0..10)
                .map(|i| {
                    let radius = if i % 2 == 0 {
                        f64::from(r)
                    } else {
                        f64::from(r) * 0.45
                    };
                    let angle =
                        -std::f64::consts::FRAC_PI_2 + f64::from(i) * std::f64::consts::PI / 5.0;
                    (
                        x + (radius * angle.cos()).round() as i32,
                        y + (radius * angle.sin()).round() as i32,
                    )
                })
                .collect();
            out.push(poly(points));
        }
        MarkerStyle::Circle => out.push(Shape::Circle {
            center: c,
            radius: r,
            color,
            thickness: t,
        }),
    }
}

/// Lays out one annotation on a `width`x`height` image, appending its shapes to `out`.
/// `frame_time` is what a timestamp without a fixed time shows.
pub fn lower_one(
    annotation: &Annotation,
    width: u32,
    height: u32,
    frame_time: Option<OffsetDateTime>,
    out: &mut Vec<Shape>,
) -> Result<(), Skip> {
    match annotation {
        Annotation::Label {
            text,
            at,
            color,
            size,
            anchor,
            background,
        } => {
            if text.trim().is_empty() {
                return Err(Skip::EmptyText);
            }
            out.push(Shape::Text {
                text: text.clone(),
                at: px_inside(*at, width, height),
                anchor: *anchor,
                height: text_px(*size, height),
                color: *color,
                background: *background,
            });
        }
        Annotation::Rect {
            rect,
            color,
            thickness,
            fill,
        } => {
            let (tl, br) = rect.tlbr();
            out.push(Shape::Rect {
                top_left: px(tl, width, height),
                bottom_right: px(br, width, height),
                color: *color,
                thickness: thick(*thickness),
                fill: *fill,
            });
        }
        Annotation::Line {
            from,
            to,
            color,
            thickness,
        } => out.push(Shape::Line {
            from: px(*from, width, height),
            to: px(*to, width, height),
            color: *color,
            thickness: thick(*thickness),
        }),
        Annotation::Marker {
            at,
            style,
            color,
            size,
        } => {
            let r = ((size.clamp(0.0, 1.0) * f64::from(height)).round() as i32).max(2);
            marker(*style, px_inside(*at, width, height), r, *color, out);
        }
        Annotation::Polyline {
            points,
            closed,
            fill,
            color,
            thickness,
        } => {
            if points.len() < 2 {
                return Err(Skip::TooFewPoints);
            }
            out.push(Shape::Poly {
                points: points.iter().map(|p| px(*p, width, height)).collect(),
                closed: *closed || *fill,
                fill: *fill,
                color: *color,
                thickness: thick(*thickness),
            });
        }
        Annotation::Timestamp {
            time,
            at,
            format,
            color,
            size,
            background,
        } => {
            let text = timestamp_text(time.as_deref(), format.as_deref(), frame_time)
                .ok_or(Skip::NoTime)?;
            out.push(Shape::Text {
                text,
                at: px_inside(*at, width, height),
                anchor: Anchor::TopLeft,
                height: text_px(*size, height),
                color: *color,
                background: *background,
            });
        }
        Annotation::BoundingBox {
            rect,
            label,
            confidence,
            track_id,
            color,
        } => {
            let color = box_color(*color, *track_id);
            let thickness = ((height / 360) as i32).max(2);
            let (tl, br) = rect.tlbr();
            let top_left = px(tl, width, height);
            out.push(Shape::Rect {
                top_left,
                bottom_right: px(br, width, height),
                color,
                thickness,
                fill: false,
            });
            if let Some(caption) = box_caption(label.as_deref(), *confidence, *track_id) {
                let text_height = text_px(0.025, height);
                let inside = Rect(
                    rect.0.clamp(0.0, 1.0),
                    rect.1.clamp(0.0, 1.0),
                    rect.2,
                    rect.3,
                );
                let at = px_inside(Point(inside.0, inside.1), width, height);
                // Above the box; inside it when the box touches the top of the image.
                let anchor = if at.1 >= text_height * 2 {
                    Anchor::BottomLeft
                } else {
                    Anchor::TopLeft
                };
                out.push(Shape::Text {
                    text: caption,
                    at,
                    anchor,
                    height: text_height,
                    color: color.contrasting(),
                    background: Some(color),
                });
            }
        }
    }
    Ok(())
}

/// Lays out a whole scene. Returns the shapes and, for every annotation that drew nothing, its
/// index and why.
pub fn lower(
    scene: &Scene,
    width: u32,
    height: u32,
    frame_time: Option<OffsetDateTime>,
) -> (Vec<Shape>, Vec<(usize, Skip)>) {
    let mut shapes = Vec::with_capacity(scene.annotations.len() * 2);
    let mut skipped = Vec::new();
    for (i, a) in scene.annotations.iter().enumerate() {
        if let Err(skip) = lower_one(a, width, height, frame_time, &mut shapes) {
            skipped.push((i, skip));
        }
    }
    (shapes, skipped)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn boxes_get_captions_and_track_colors() {
        assert_eq!(
            box_caption(Some("person"), Some(0.934), Some(3)).as_deref(),
            Some("person 93%")
        );
        assert_eq!(box_caption(None, None, Some(17)).as_deref(), Some("#17"));
        assert_eq!(box_caption(Some(""), None, None), None);
        assert_eq!(box_color(None, Some(5)), Color::for_track(5));
        assert_eq!(
            box_color(Some(Color::rgb(1, 2, 3)), Some(5)),
            Color::rgb(1, 2, 3)
        );
    }

    #[test]
    fn labels_past_the_edge_stay_inside_and_lines_keep_direction() {
        let scene = Scene::from_json(
            r#"{"annotations":[{"type":"label","text":"x","at":[1.5,-0.2]},
            {"type":"line","from":[-0.5,0.5],"to":[1.5,0.5]},
            {"type":"label","text":"  ","at":[0,0]},
            {"type":"polyline","points":[[0.1,0.1]]},
            {"type":"timestamp"}]}"#,
        )
        .unwrap();
        let (shapes, skipped) = lower(&scene, 200, 100, None);
        assert!(
            matches!(&shapes[0], Shape::Text { at: (199, 0), .. }),
            "{shapes:?}"
        );
        assert!(matches!(
            &shapes[1],
            Shape::Line {
                from: (-100, 50),
                to: (300, 50),
                ..
            }
        ));
        assert_eq!(
            skipped,
            vec![
                (2, Skip::EmptyText),
                (3, Skip::TooFewPoints),
                (4, Skip::NoTime)
            ]
        );
    }

    #[test]
    fn timestamps_use_the_fixed_time_or_the_frame_time_in_the_format() {
        let t = time::macros::datetime!(2026-11-30 07:15:09 UTC);
        assert_eq!(
            timestamp_text(None, None, Some(t)).as_deref(),
            Some("2026-11-30 07:15:09")
        );
        assert_eq!(
            timestamp_text(
                Some("2020-01-02T03:04:05Z"),
                Some("[hour]:[minute]"),
                Some(t)
            )
            .as_deref(),
            Some("03:04")
        );
    }

    #[test]
    fn every_marker_style_lays_out_around_its_point() {
        use MarkerStyle::*;
        for style in [Cross, Plus, Diamond, Square, Triangle, Star, Circle] {
            let mut out = Vec::new();
            marker(style, (50, 50), 10, Color::default(), &mut out);
            let within = |p: &Px| (40..=60).contains(&p.0) && (40..=60).contains(&p.1);
            for s in &out {
                match s {
                    Shape::Line { from, to, .. } => assert!(within(from) && within(to)),
                    Shape::Poly { points, .. } => assert!(points.iter().all(within)),
                    Shape::Rect {
                        top_left,
                        bottom_right,
                        ..
                    } => assert!(within(top_left) && within(bottom_right)),
                    Shape::Circle { radius, .. } => assert_eq!(*radius, 10),
                    Shape::Text { .. } => panic!("a marker has no text"),
                }
            }
            assert!(!out.is_empty(), "{style:?}");
        }
    }
}
