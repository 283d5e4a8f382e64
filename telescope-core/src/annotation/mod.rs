//! Annotations: what the app saw, described once in normalized coordinates (a [`Scene`]), and
//! drawn by any [`Driver`]: OpenCV images and frames ([`opencv`], feature `opencv`), Panorama
//! media objects ([`media`]), the frames Telescope streams ([`overlay`]).

pub mod color;
pub mod coverage;
pub mod driver;
pub mod geometry;
pub mod layout;
pub mod media;
#[cfg(feature = "opencv")]
pub mod opencv;
pub mod overlay;
pub mod scene;

pub use color::{Color, ColorError};
pub use driver::{DrawError, DrawReport, Driver};
pub use geometry::{Line, Point, PolyLine, Rect};
pub use layout::{Shape, Skip};
pub use media::{MediaCanvas, MediaDriver};
pub use overlay::Overlay;
pub use scene::{Anchor, Annotation, MarkerStyle, Scene, SceneError, MAX_TEXT_CHARS};
