//! What the app saw, described once: a `Scene` of annotations, serializable as JSON so that a
//! command line and other languages can send it.

use serde::{Deserialize, Serialize};

use super::color::Color;
use super::geometry::{Point, Rect};

/// Where a label sits relative to its point.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Anchor {
    /// The point is the label's top-left corner.
    #[default]
    TopLeft,
    /// The point is the label's bottom-left corner (labels above boxes).
    BottomLeft,
    /// The label is centered on the point.
    Center,
}

/// Marker shapes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MarkerStyle {
    /// ×
    #[default]
    Cross,
    /// +
    Plus,
    /// ◇
    Diamond,
    /// □
    Square,
    /// △
    Triangle,
    /// ✶
    Star,
    /// ○
    Circle,
}

fn default_thickness() -> u32 {
    2
}
fn default_text_size() -> f64 {
    0.03
}
fn default_marker_size() -> f64 {
    0.02
}
fn is_default<T: Default + PartialEq>(v: &T) -> bool {
    *v == T::default()
}

/// One thing to draw. Coordinates are normalized; optional fields have defaults.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
#[non_exhaustive]
pub enum Annotation {
    /// Text.
    Label {
        /// The text (empty draws nothing).
        text: String,
        /// Anchor point.
        at: Point,
        /// Text color (default lime).
        #[serde(default)]
        color: Color,
        /// Text height as a fraction of the image height (default 0.03).
        #[serde(default = "default_text_size")]
        size: f64,
        /// Which corner `at` is.
        #[serde(default, skip_serializing_if = "is_default")]
        anchor: Anchor,
        /// A filled box behind the text, in this color.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        background: Option<Color>,
    },
    /// A rectangle outline (or filled).
    Rect {
        /// `[x0, y0, x1, y1]`.
        rect: Rect,
        /// Color (default lime).
        #[serde(default)]
        color: Color,
        /// Line thickness in pixels (default 2).
        #[serde(default = "default_thickness")]
        thickness: u32,
        /// Fill instead of outline.
        #[serde(default, skip_serializing_if = "is_default")]
        fill: bool,
    },
    /// A segment.
    Line {
        /// Start.
        from: Point,
        /// End.
        to: Point,
        /// Color.
        #[serde(default)]
        color: Color,
        /// Thickness in pixels.
        #[serde(default = "default_thickness")]
        thickness: u32,
    },
    /// A marker at a point.
    Marker {
        /// Where.
        at: Point,
        /// Shape (default cross).
        #[serde(default)]
        style: MarkerStyle,
        /// Color.
        #[serde(default)]
        color: Color,
        /// Size as a fraction of the image height (default 0.02).
        #[serde(default = "default_marker_size")]
        size: f64,
    },
    /// An open or closed polyline, optionally filled.
    Polyline {
        /// Vertices.
        points: Vec<Point>,
        /// Join the last point to the first.
        #[serde(default)]
        closed: bool,
        /// Fill the polygon.
        #[serde(default, skip_serializing_if = "is_default")]
        fill: bool,
        /// Color.
        #[serde(default)]
        color: Color,
        /// Thickness in pixels.
        #[serde(default = "default_thickness")]
        thickness: u32,
    },
    /// A time stamp: a fixed RFC 3339 time, or the frame's time when absent.
    Timestamp {
        /// The time to show (RFC 3339).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        time: Option<String>,
        /// Where (default top-left corner).
        #[serde(default = "timestamp_at")]
        at: Point,
        /// How to print it, as a `time` format description such as
        /// `[hour]:[minute]:[second]` (default `[year]-[month]-[day] [hour]:[minute]:[second]`).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        format: Option<String>,
        /// Color.
        #[serde(default)]
        color: Color,
        /// Text height as a fraction of the image height (default 0.03).
        #[serde(default = "default_text_size")]
        size: f64,
        /// A filled box behind the text (default translucent black).
        #[serde(
            default = "timestamp_background",
            skip_serializing_if = "Option::is_none"
        )]
        background: Option<Color>,
    },
    /// A detection: box, label, confidence, track color.
    BoundingBox {
        /// `[x0, y0, x1, y1]`.
        rect: Rect,
        /// Class name.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        label: Option<String>,
        /// Confidence in [0, 1].
        #[serde(default, skip_serializing_if = "Option::is_none")]
        confidence: Option<f64>,
        /// Track id: picks a stable color when `color` is absent.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        track_id: Option<u64>,
        /// Color (default: the track's, else lime).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        color: Option<Color>,
    },
}

fn timestamp_at() -> Point {
    Point(0.01, 0.01)
}

fn timestamp_background() -> Option<Color> {
    Some(Color::rgb(0, 0, 0).with_alpha(0.5))
}

/// The default timestamp format.
pub const DEFAULT_TIME_FORMAT: &str = "[year]-[month]-[day] [hour]:[minute]:[second]";

/// A list of annotations.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Scene {
    /// Drawn in order.
    pub annotations: Vec<Annotation>,
}

/// Why a scene cannot be used.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum SceneError {
    /// Not JSON, or not the scene shape; line and column are 1-based.
    #[error("scene JSON, line {line} column {column}: {message}")]
    Json {
        line: usize,
        column: usize,
        message: String,
    },
    /// A coordinate is NaN or infinite.
    #[error("annotation {index}: coordinates must be finite numbers")]
    NotFinite { index: usize },
    /// x1 < x0 or y1 < y0.
    #[error("annotation {index}: rectangle [{x0}, {y0}, {x1}, {y1}] is inverted")]
    InvertedRect {
        index: usize,
        x0: f64,
        y0: f64,
        x1: f64,
        y1: f64,
    },
    /// A size or confidence out of range.
    #[error("annotation {index}: {what}")]
    OutOfRange { index: usize, what: String },
    /// A timestamp format that `time` cannot parse.
    #[error("annotation {index}: `{format}` is not a time format description (e.g. `[hour]:[minute]:[second]`)")]
    BadFormat { index: usize, format: String },
    /// A timestamp that is not RFC 3339.
    #[error("annotation {index}: `{time}` is not an RFC 3339 time")]
    BadTime { index: usize, time: String },
    /// A text (label, box label, timestamp format) longer than [`MAX_TEXT_CHARS`]: drawing
    /// costs time in proportion to its length (10 MB took 100 s at size 1.0).
    #[error(
        "annotation {index}: {what} has {chars} characters, more than the {MAX_TEXT_CHARS} drawn"
    )]
    TextTooLong {
        index: usize,
        what: &'static str,
        chars: usize,
    },
}

/// The longest text an annotation may carry, in characters: a caption of 1024 characters is
/// wider than any screen at a readable size and draws in milliseconds.
pub const MAX_TEXT_CHARS: usize = 1024;

impl Scene {
    /// Parse and validate JSON.
    pub fn from_json(text: &str) -> Result<Scene, SceneError> {
        let scene: Scene = serde_json::from_str(text).map_err(|e| {
            // serde_json ends its message with the position, which is given separately.
            let message = e.to_string();
            let suffix = format!(" at line {} column {}", e.line(), e.column());
            SceneError::Json {
                line: e.line(),
                column: e.column(),
                message: message.strip_suffix(&suffix).unwrap_or(&message).to_owned(),
            }
        })?;
        scene.validate()?;
        Ok(scene)
    }

    /// As JSON.
    pub fn to_json(&self) -> String {
        serde_json::to_string(self).unwrap_or_else(|_| "{\"annotations\":[]}".to_owned())
    }

    /// Check what JSON cannot: finite coordinates, upright rectangles, sane sizes. Coordinates
    /// outside [0, 1] are fine: drawing clips them at the image edge.
    pub fn validate(&self) -> Result<(), SceneError> {
        for (index, a) in self.annotations.iter().enumerate() {
            validate_geometry(index, a)?;
            validate_text(index, a)?;
            validate_ranges(index, a)?;
        }
        Ok(())
    }
}

/// Finite coordinates and upright rectangles.
fn validate_geometry(index: usize, a: &Annotation) -> Result<(), SceneError> {
    let points: Vec<Point> = match a {
        Annotation::Label { at, .. }
        | Annotation::Marker { at, .. }
        | Annotation::Timestamp { at, .. } => vec![*at],
        Annotation::Line { from, to, .. } => vec![*from, *to],
        Annotation::Polyline { points, .. } => points.clone(),
        Annotation::Rect { rect, .. } | Annotation::BoundingBox { rect, .. } => {
            if !rect.is_finite() {
                return Err(SceneError::NotFinite { index });
            }
            if rect.is_inverted() {
                return Err(SceneError::InvertedRect {
                    index,
                    x0: rect.0,
                    y0: rect.1,
                    x1: rect.2,
                    y1: rect.3,
                });
            }
            vec![]
        }
    };
    if points.iter().any(|p| !p.is_finite()) {
        return Err(SceneError::NotFinite { index });
    }
    Ok(())
}

/// Texts, labels and formats no longer than [`MAX_TEXT_CHARS`].
fn validate_text(index: usize, a: &Annotation) -> Result<(), SceneError> {
    let text = match a {
        Annotation::Label { text, .. } => Some(("the text", text)),
        Annotation::BoundingBox { label: Some(l), .. } => Some(("the label", l)),
        Annotation::Timestamp {
            format: Some(f), ..
        } => Some(("the format", f)),
        _ => None,
    };
    if let Some((what, text)) = text {
        // Counted only up to the limit: a 10 MB string is refused just as fast.
        let chars = text.chars().take(MAX_TEXT_CHARS + 1).count();
        if chars > MAX_TEXT_CHARS {
            return Err(SceneError::TextTooLong {
                index,
                what,
                chars: text.chars().count(),
            });
        }
    }
    Ok(())
}

/// Sizes, thicknesses and confidences in range; timestamp formats and times that parse.
fn validate_ranges(index: usize, a: &Annotation) -> Result<(), SceneError> {
    let range = |what: &str, v: f64, max: f64| {
        if v.is_finite() && v > 0.0 && v <= max {
            Ok(())
        } else {
            Err(SceneError::OutOfRange {
                index,
                what: format!("{what} {v} must be in (0, {max}]"),
            })
        }
    };
    match a {
        Annotation::Label { size, .. } => range("text size", *size, 1.0),
        Annotation::Marker { size, .. } => range("marker size", *size, 1.0),
        Annotation::Rect { thickness, .. }
        | Annotation::Line { thickness, .. }
        | Annotation::Polyline { thickness, .. } => {
            range("thickness", f64::from(*thickness), 100.0)
        }
        Annotation::BoundingBox {
            confidence: Some(c),
            ..
        } if !(0.0..=1.0).contains(c) => Err(SceneError::OutOfRange {
            index,
            what: format!("confidence {c} must be in [0, 1]"),
        }),
        Annotation::Timestamp {
            size, format, time, ..
        } => {
            range("text size", *size, 1.0)?;
            if let Some(f) = format
                .as_ref()
                .filter(|f| time::format_description::parse_owned::<2>(f).is_err())
            {
                return Err(SceneError::BadFormat {
                    index,
                    format: f.clone(),
                });
            }
            let rfc3339 = &time::format_description::well_known::Rfc3339;
            if let Some(t) = time
                .as_ref()
                .filter(|t| time::OffsetDateTime::parse(t, rfc3339).is_err())
            {
                return Err(SceneError::BadTime {
                    index,
                    time: t.clone(),
                });
            }
            Ok(())
        }
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const EXAMPLE: &str = r##"{"annotations":[{"type":"label","text":"hello","at":[0.1,0.2],"color":"#ff0000"},
        {"type":"rect","rect":[0.1,0.1,0.5,0.5],"color":"#00ff00","thickness":2},
        {"type":"line","from":[0,0],"to":[1,1]}, {"type":"marker","at":[0.5,0.5],"style":"cross"},
        {"type":"polyline","points":[[0.1,0.1],[0.2,0.3],[0.4,0.1]],"closed":true},
        {"type":"timestamp","time":"2026-11-30T07:15:00Z"},
        {"type":"bounding_box","rect":[0.2,0.2,0.6,0.9],"label":"person","confidence":0.93}]}"##;

    #[test]
    fn the_documented_shape_parses_with_defaults() {
        let scene = Scene::from_json(EXAMPLE).unwrap();
        assert_eq!(scene.annotations.len(), 7);
        assert!(
            matches!(&scene.annotations[2], Annotation::Line { thickness: 2, color, .. } if *color == Color::default())
        );
        assert!(
            matches!(&scene.annotations[0], Annotation::Label { color, size, .. } if *color == Color::rgb(255, 0, 0) && *size == 0.03)
        );
        assert_eq!(Scene::from_json(&scene.to_json()).unwrap(), scene);
    }

    #[test]
    fn texts_longer_than_the_limit_are_refused_before_drawing() {
        let label = |text: String| {
            format!(
                r#"{{"annotations":[{{"type":"label","text":"{text}","at":[0,0],"size":1.0}}]}}"#
            )
        };
        // 10 MB took 100 s to draw at size 1.0; it is refused at once.
        let started = std::time::Instant::now();
        let err = Scene::from_json(&label("é".repeat(5_000_000))).unwrap_err();
        assert!(started.elapsed() < std::time::Duration::from_secs(5));
        assert!(
            matches!(
                err,
                SceneError::TextTooLong {
                    index: 0,
                    chars: 5_000_000,
                    ..
                }
            ),
            "{err}"
        );
        assert!(err.to_string().contains("1024"), "{err}");
        assert!(Scene::from_json(&label("x".repeat(MAX_TEXT_CHARS))).is_ok());
        let boxed = format!(
            r#"{{"annotations":[{{"type":"timestamp","at":[0,0]}},{{"type":"bounding_box","rect":[0,0,1,1],"label":"{}"}}]}}"#,
            "y".repeat(MAX_TEXT_CHARS + 1)
        );
        assert!(matches!(
            Scene::from_json(&boxed),
            Err(SceneError::TextTooLong {
                index: 1,
                what: "the label",
                ..
            })
        ));
    }

    #[test]
    fn bad_scenes_are_typed_errors_with_positions() {
        let err = Scene::from_json(
            "{\"annotations\": [\n  {\"type\": \"rect\", \"rect\": [0, 0, 1]}\n]}",
        )
        .unwrap_err();
        // serde reports where it noticed: the end of the bad object, not line 1.
        assert!(matches!(err, SceneError::Json { line: 2..=3, .. }), "{err}");
        assert_eq!(err.to_string().matches("line").count(), 1, "{err}");
        assert!(matches!(
            Scene::from_json(r#"{"annotations":[{"type":"nope"}]}"#),
            Err(SceneError::Json { .. })
        ));
        assert!(matches!(
            Scene::from_json(r#"{"annotations":[{"type":"rect","rect":[0.5,0.5,0.1,0.9]}]}"#),
            Err(SceneError::InvertedRect { index: 0, .. })
        ));
        assert!(matches!(
            Scene::from_json(
                r#"{"annotations":[{"type":"bounding_box","rect":[0,0,1,1],"confidence":1.5}]}"#
            ),
            Err(SceneError::OutOfRange { .. })
        ));
        assert!(matches!(
            Scene::from_json(r#"{"annotations":[{"type":"timestamp","time":"yesterday"}]}"#),
            Err(SceneError::BadTime { .. })
        ));
        let nan = Scene {
            annotations: vec![Annotation::Marker {
                at: Point(f64::NAN, 0.0),
                style: MarkerStyle::Star,
                color: Color::default(),
                size: 0.1,
            }],
        };
        assert_eq!(nan.validate(), Err(SceneError::NotFinite { index: 0 }));
        // Outside [0, 1] is allowed: drawing clips.
        assert!(Scene::from_json(r#"{"annotations":[{"type":"marker","at":[1.5,-0.2]}]}"#).is_ok());
    }

    fn point() -> impl Strategy<Value = Point> {
        (-0.5f64..1.5, -0.5f64..1.5).prop_map(|(x, y)| Point(x, y))
    }

    fn annotation() -> impl Strategy<Value = Annotation> {
        let color = (any::<u8>(), any::<u8>(), any::<u8>(), any::<u8>())
            .prop_map(|(r, g, b, a)| Color { r, g, b, a });
        prop_oneof![
            (".{0,20}", point(), color.clone()).prop_map(|(text, at, color)| Annotation::Label {
                text,
                at,
                color,
                size: 0.05,
                anchor: Anchor::BottomLeft,
                background: None
            }),
            (point(), 0.0f64..1.0, 0.0f64..1.0, 1u32..10).prop_map(|(p, w, h, thickness)| {
                Annotation::Rect {
                    rect: Rect::from_tlhw(p, h, w),
                    color: Color::default(),
                    thickness,
                    fill: false,
                }
            }),
            (point(), point()).prop_map(|(from, to)| Annotation::Line {
                from,
                to,
                color: Color::rgb(1, 2, 3),
                thickness: 3
            }),
            (proptest::collection::vec(point(), 0..6), any::<bool>()).prop_map(
                |(points, closed)| Annotation::Polyline {
                    points,
                    closed,
                    fill: closed,
                    color: Color::default(),
                    thickness: 1
                }
            ),
            (point(), 0.0f64..1.0, proptest::option::of(0u64..1000)).prop_map(
                |(p, c, track_id)| Annotation::BoundingBox {
                    rect: Rect::from_tlhw(p, 0.2, 0.1),
                    label: Some("car".into()),
                    confidence: Some(c),
                    track_id,
                    color: None
                }
            ),
        ]
    }

    proptest! {
        #![proptest_config(ProptestConfig {
            cases: 200,
            rng_seed: proptest::test_runner::RngSeed::Fixed(0x5ce),
            failure_persistence: None,
            ..ProptestConfig::default()
        })]

        #[test]
        fn scenes_round_trip_through_json(annotations in proptest::collection::vec(annotation(), 0..8)) {
            let scene = Scene { annotations };
            prop_assert_eq!(Scene::from_json(&scene.to_json()).unwrap(), scene);
        }
    }
}
