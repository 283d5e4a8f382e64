//! Panorama-node simulator: replays recorded footage into an application with the timing of a
//! real camera, so edge apps and their Telescope streams can be tested without the appliance.

pub mod footage;
pub mod graph;
pub mod motion;
pub mod node;
pub mod source;
pub mod timestamps;
pub mod timing;

pub use footage::{Footage, FootageError};
pub use motion::{MotionApp, MotionConfig};
pub use node::{App, CameraConfig, MediaStream, Node, NodeConfig};
pub use source::{Source, SourceError, SourceSpec};
pub use timing::{
    CameraModelError, CameraModelOptions, Delivery, Jitter, TimingConfig, TimingModel,
};
