pub mod clock;
pub mod error;
pub mod frame;
pub mod rate;
pub mod warmup;
pub mod stats { #[derive(Debug, Clone, Copy)] pub enum StateKind { Idle } }
pub use error::TelescopeError;
