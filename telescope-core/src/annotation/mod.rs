//! Annotations: geometry in normalized coordinates, colors, and the `Scene` that describes what
//! to draw. Drivers that draw a scene on images and media objects build on these.

pub mod color;
pub mod geometry;
pub mod scene;

pub use color::{Color, ColorError};
pub use geometry::{Line, Point, PolyLine, Rect};
pub use scene::{Anchor, Annotation, MarkerStyle, Scene, SceneError};
