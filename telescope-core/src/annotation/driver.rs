//! One interface for everything that can show a [`Scene`]: an image in memory, a Panorama-style
//! media object, a frame on its way to the encoder. A new target is one new file that implements
//! [`Driver`].

use time::OffsetDateTime;

use super::layout::Skip;
use super::scene::{Scene, SceneError};
use crate::frame::PixelFormat;

/// What a draw did: nothing is dropped silently.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DrawReport {
    /// Annotations drawn.
    pub drawn: usize,
    /// Annotations that drew nothing: index in the scene and why.
    pub skipped: Vec<(usize, Skip)>,
}

/// Why a scene could not be drawn at all.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DrawError {
    /// The scene is invalid (NaN coordinates, inverted rects...).
    #[error(transparent)]
    Scene(#[from] SceneError),
    /// The image is not something this driver draws on.
    #[error("cannot draw on {format:?} images")]
    Format {
        /// The format.
        format: PixelFormat,
    },
    /// The image is empty or its layout is inconsistent.
    #[error("cannot draw on this image: {0}")]
    Image(String),
    /// The drawing library failed.
    #[error("drawing failed: {0}")]
    Backend(String),
}

/// Something a scene can be drawn on.
pub trait Driver {
    /// Draws `scene` (validated first). `frame_time` is what timestamps without a fixed time
    /// show; `None` skips them.
    fn draw(
        &mut self,
        scene: &Scene,
        frame_time: Option<OffsetDateTime>,
    ) -> Result<DrawReport, DrawError>;
}
