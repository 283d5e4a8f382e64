//! Amazon Kinesis Video Streams: the control plane (streams and data endpoints).

pub mod control;

pub use control::{
    CreateStreamOptions, DataApi, KvsConfig, KvsControl, KvsError, StreamDescription,
    ThrottleRetry, LOCAL_ENDPOINT,
};
