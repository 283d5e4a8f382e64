//! Amazon Kinesis Video Streams: the control plane (streams and data endpoints), the Matroska
//! fragments KVS ingests, the acknowledgement stream and the native PutMedia client.

pub mod ack;
pub mod control;
pub mod mkv;
pub mod putmedia;

pub use ack::{AckError, AckEvent, AckParser, FragmentAck};
pub use control::{
    CreateStreamOptions, DataApi, KvsConfig, KvsControl, KvsError, StreamDescription,
    ThrottleRetry, LOCAL_ENDPOINT,
};
pub use putmedia::{ChannelBody, PutMediaClient, PutMediaConfig, PutMediaStats};
