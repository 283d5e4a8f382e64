//! telescope-kvs: Amazon Kinesis Video Streams without GStreamer. The control plane (streams and
//! data endpoints), the Matroska fragments KVS ingests, the acknowledgement stream, the native
//! PutMedia client, and the AWS credentials (static, environment, provider chain, and a
//! credentials file refreshed before temporary credentials expire) with the clock they expire on.
//!
//! `telescope` re-exports this crate as `telescope::kvs` (and its `credentials`, `clock` and
//! `units` modules at its top level); `mock-kvs` speaks the same wire format from the server side.

pub mod ack;
pub mod clock;
pub mod control;
pub mod credentials;
pub mod mkv;
pub mod putmedia;
pub mod units;

pub use ack::{AckError, AckEvent, AckParser, FragmentAck};
pub use clock::{
    Backoff, Clock, SystemClock, SystemWallClock, VirtualClock, VirtualWallClock, WallClock,
};
pub use control::{
    CreateStreamOptions, DataApi, KvsConfig, KvsControl, KvsError, StreamDescription, ThrottleRetry,
};
pub use putmedia::{ChannelBody, PutMediaClient, PutMediaConfig, PutMediaStats};
