//! The Panorama media-object driver: a Panorama application annotates a `MediaStream` with
//! `add_label(text, x, y)` and `add_rect(x1, y1, x2, y2)` in normalized coordinates, and the
//! appliance draws them on its HDMI output. [`MediaDriver`] sends a [`Scene`] through those two
//! calls; what they cannot express (lines, markers, polylines) is reported as skipped.

use time::OffsetDateTime;

use super::driver::{DrawError, DrawReport, Driver};
use super::layout::{box_caption, timestamp_text, Skip};
use super::scene::{Annotation, Scene};

/// The two drawing calls of a Panorama media object (normalized coordinates).
pub trait MediaCanvas {
    /// Text whose top-left corner is at `(x, y)`.
    fn add_label(&mut self, text: &str, x: f64, y: f64);
    /// A rectangle outline.
    fn add_rect(&mut self, x1: f64, y1: f64, x2: f64, y2: f64);
}

/// Draws scenes on a [`MediaCanvas`].
#[derive(Debug)]
pub struct MediaDriver<'a, C: MediaCanvas + ?Sized> {
    canvas: &'a mut C,
}

impl<'a, C: MediaCanvas + ?Sized> MediaDriver<'a, C> {
    /// A driver for one canvas.
    pub fn new(canvas: &'a mut C) -> Self {
        MediaDriver { canvas }
    }
}

/// Labels must start inside the image for the appliance to show them.
fn inside(v: f64) -> f64 {
    v.clamp(0.0, 1.0)
}

impl<C: MediaCanvas + ?Sized> Driver for MediaDriver<'_, C> {
    fn draw(
        &mut self,
        scene: &Scene,
        frame_time: Option<OffsetDateTime>,
    ) -> Result<DrawReport, DrawError> {
        scene.validate()?;
        let mut report = DrawReport::default();
        for (i, a) in scene.annotations.iter().enumerate() {
            let outcome = match a {
                Annotation::Label { text, at, .. } => {
                    if text.trim().is_empty() {
                        Err(Skip::EmptyText)
                    } else {
                        self.canvas.add_label(text, inside(at.0), inside(at.1));
                        Ok(())
                    }
                }
                Annotation::Rect { rect, .. } => {
                    self.canvas.add_rect(rect.0, rect.1, rect.2, rect.3);
                    Ok(())
                }
                Annotation::BoundingBox {
                    rect,
                    label,
                    confidence,
                    track_id,
                    ..
                } => {
                    self.canvas.add_rect(rect.0, rect.1, rect.2, rect.3);
                    if let Some(caption) = box_caption(label.as_deref(), *confidence, *track_id) {
                        self.canvas
                            .add_label(&caption, inside(rect.0), inside(rect.1));
                    }
                    Ok(())
                }
                Annotation::Timestamp {
                    time, format, at, ..
                } => match timestamp_text(time.as_deref(), format.as_deref(), frame_time) {
                    Some(text) => {
                        self.canvas.add_label(&text, inside(at.0), inside(at.1));
                        Ok(())
                    }
                    None => Err(Skip::NoTime),
                },
                Annotation::Line { .. }
                | Annotation::Marker { .. }
                | Annotation::Polyline { .. } => Err(Skip::Unsupported),
            };
            match outcome {
                Ok(()) => report.drawn += 1,
                Err(skip) => report.skipped.push((i, skip)),
            }
        }
        Ok(report)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Default)]
    struct Calls(Vec<String>);
    impl MediaCanvas for Calls {
        fn add_label(&mut self, text: &str, x: f64, y: f64) {
            self.0.push(format!("label {text} {x} {y}"));
        }
        fn add_rect(&mut self, x1: f64, y1: f64, x2: f64, y2: f64) {
            self.0.push(format!("rect {x1} {y1} {x2} {y2}"));
        }
    }

    #[test]
    fn scenes_become_label_and_rect_calls_and_the_rest_is_reported() {
        let scene = Scene::from_json(
            r#"{"annotations":[{"type":"label","text":"hi","at":[1.2,0.5]},
            {"type":"bounding_box","rect":[0.1,0.2,0.3,0.4],"label":"person","confidence":0.5},
            {"type":"line","from":[0,0],"to":[1,1]},
            {"type":"timestamp","time":"2026-11-30T07:15:00Z","format":"[hour]:[minute]"}]}"#,
        )
        .unwrap();
        let mut calls = Calls::default();
        let report = MediaDriver::new(&mut calls).draw(&scene, None).unwrap();
        assert_eq!(
            calls.0,
            [
                "label hi 1 0.5",
                "rect 0.1 0.2 0.3 0.4",
                "label person 50% 0.1 0.2",
                "label 07:15 0.01 0.01"
            ]
        );
        assert_eq!(report.drawn, 3);
        assert_eq!(report.skipped, vec![(2, Skip::Unsupported)]);
    }

    #[test]
    fn invalid_scenes_draw_nothing() {
        let mut scene = Scene::default();
        scene.annotations.push(Annotation::Rect {
            rect: crate::annotation::Rect(0.5, 0.5, 0.1, 0.1),
            color: Default::default(),
            thickness: 2,
            fill: false,
        });
        let mut calls = Calls::default();
        assert!(matches!(
            MediaDriver::new(&mut calls).draw(&scene, None),
            Err(DrawError::Scene(_))
        ));
        assert!(calls.0.is_empty());
    }
}
