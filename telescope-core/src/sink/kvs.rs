//! The native KVS sink: H.264 from the shared encoder, cut into one Matroska cluster per key
//! frame (about `fragment_duration` long), stamped with absolute capture time, streamed by the
//! [`PutMediaClient`]. No Producer SDK, no kvssink.
//!
//! The client outlives pipeline incarnations, so fragments not yet PERSISTED when the
//! Telescope restarts are resent, not lost.

use std::sync::{Arc, Mutex};
use std::time::{Duration, UNIX_EPOCH};

use gst::prelude::*;
use gst_app::AppSink;

use crate::credentials::{
    CredentialRefresher, CredentialSource, RefreshPolicy, RefresherHandle,
    SharedCredentialsProvider, SystemWallClock, WallClock,
};
use crate::error::TelescopeError;
use crate::kvs::mkv::{self, Block, TrackInfo};
use crate::kvs::{
    CreateStreamOptions, DataApi, KvsConfig, KvsControl, PutMediaClient, PutMediaConfig,
    PutMediaStats,
};

/// A KVS stream to stream to.
#[derive(Debug, Clone)]
pub struct KvsSinkConfig {
    /// Stream name.
    pub stream_name: String,
    /// Region, endpoint override and credentials.
    pub kvs: KvsConfig,
    /// Create the stream when it does not exist (default: no, it must exist).
    pub create: Option<CreateStreamOptions>,
    /// Target fragment length (default 2 s; fragments start at key frames).
    pub fragment_duration: Duration,
    /// Bytes of unacknowledged fragments kept for resending (default 128 MiB).
    pub store_bytes: usize,
    /// How long stopping waits for every fragment to be PERSISTED (default 8 s).
    pub finish_timeout: Duration,
}

impl KvsSinkConfig {
    /// Defaults for a stream.
    pub fn new(stream_name: impl Into<String>, kvs: KvsConfig) -> Self {
        KvsSinkConfig {
            stream_name: stream_name.into(),
            kvs,
            create: None,
            fragment_duration: Duration::from_secs(2),
            store_bytes: 128 << 20,
            finish_timeout: Duration::from_secs(8),
        }
    }
}

/// A connected KVS sink: the stream checked, the data endpoint found, the client running.
#[derive(Clone)]
pub struct KvsSink {
    inner: Arc<Inner>,
}

struct Inner {
    config: KvsSinkConfig,
    client: PutMediaClient,
    refresher: RefresherHandle,
    data_endpoint: String,
}

impl Drop for Inner {
    fn drop(&mut self) {
        self.refresher.stop();
    }
}

impl std::fmt::Debug for KvsSink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KvsSink")
            .field("stream", &self.inner.config.stream_name)
            .field("region", &self.inner.config.kvs.region)
            .finish()
    }
}

impl PartialEq for KvsSink {
    fn eq(&self, other: &Self) -> bool {
        Arc::ptr_eq(&self.inner, &other.inner)
    }
}

impl KvsSink {
    /// Check the stream (creating it if configured), find the PutMedia endpoint and start the
    /// client. Errors name the stream and region.
    pub fn connect(config: KvsSinkConfig) -> Result<Self, TelescopeError> {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| TelescopeError::Pipeline(format!("cannot start a runtime: {e}")))?;
        let kvs_err = TelescopeError::Kvs;
        let (provider, data_endpoint) = rt.block_on(async {
            let provider = config.kvs.credentials.provider(&config.kvs.region).await;
            let control = KvsControl::new(&KvsConfig {
                credentials: CredentialSource::Provider(provider.clone()),
                ..config.kvs.clone()
            })
            .await
            .map_err(kvs_err)?;
            control
                .ensure_stream(&config.stream_name, config.create.as_ref())
                .await
                .map_err(kvs_err)?;
            let endpoint = control
                .data_endpoint(&config.stream_name, DataApi::PutMedia)
                .await
                .map_err(kvs_err)?;
            Ok::<_, TelescopeError>((provider, endpoint))
        })?;
        // Temporary credentials are renewed ahead of expiry; the client reconnects with them.
        let refresher = RefresherHandle::spawn(
            CredentialRefresher::new(provider, RefreshPolicy::default(), None),
            Arc::new(SystemWallClock),
        )
        .map_err(|e| {
            TelescopeError::Pipeline(format!("cannot start the credentials refresher: {e}"))
        })?;
        let mut put = PutMediaConfig::new(&data_endpoint, &config.stream_name, &config.kvs.region);
        put.store_bytes = config.store_bytes;
        let client = PutMediaClient::start(put, SharedCredentialsProvider::new(refresher.clone()))
            .map_err(|e| {
                TelescopeError::Pipeline(format!("cannot start the PutMedia client: {e}"))
            })?;
        tracing::info!(stream = %config.stream_name, region = %config.kvs.region, endpoint = %data_endpoint, "KVS sink ready");
        Ok(KvsSink {
            inner: Arc::new(Inner {
                config,
                client,
                refresher,
                data_endpoint,
            }),
        })
    }

    /// The stream name.
    pub fn stream_name(&self) -> &str {
        &self.inner.config.stream_name
    }

    /// The PutMedia endpoint in use.
    pub fn data_endpoint(&self) -> &str {
        &self.inner.data_endpoint
    }

    /// Delivery counters.
    pub fn stats(&self) -> PutMediaStats {
        self.inner.client.stats()
    }

    /// Wait until every fragment handed over so far is PERSISTED (at most `timeout`).
    pub fn flush(&self, timeout: Duration) -> bool {
        self.inner.client.finish(timeout)
    }

    /// The branch: `queue ! h264parse ! capsfilter(avc, au) ! appsink` feeding the fragmenter.
    pub(crate) fn build(
        &self,
        pipeline: &gst::Pipeline,
        index: usize,
    ) -> Result<gst::Element, TelescopeError> {
        let caps = super::h264_caps("avc");
        let appsink = AppSink::builder().caps(&caps).sync(false).build();
        let fragmenter = Arc::new(Mutex::new(Fragmenter::new(self.clone())));
        let on_sample = fragmenter.clone();
        let on_eos = fragmenter;
        let sink = self.clone();
        appsink.set_callbacks(
            gst_app::AppSinkCallbacks::builder()
                .new_sample(move |appsink| {
                    let sample = appsink.pull_sample().map_err(|_| gst::FlowError::Eos)?;
                    on_sample.lock().unwrap_or_else(|p| p.into_inner()).push(&sample);
                    Ok(gst::FlowSuccess::Ok)
                })
                .eos(move |_| {
                    on_eos.lock().unwrap_or_else(|p| p.into_inner()).flush();
                    // Hold the end of stream until KVS has persisted everything (bounded).
                    if !sink.flush(sink.inner.config.finish_timeout) {
                        tracing::warn!(stream = %sink.stream_name(), "not every fragment was persisted before the stop timeout");
                    }
                })
                .build(),
        );
        let (queue, _) = super::h264_branch(pipeline, index, &caps, appsink.upcast_ref())?;
        Ok(queue)
    }
}

/// Cuts access units into fragments at key frames.
struct Fragmenter {
    sink: KvsSink,
    header_sent: bool,
    /// Wall-clock milliseconds of pipeline time zero.
    base_ms: Option<u64>,
    cluster_ms: u64,
    blocks: Vec<Block>,
}

impl Fragmenter {
    fn new(sink: KvsSink) -> Self {
        Fragmenter {
            sink,
            header_sent: false,
            base_ms: None,
            cluster_ms: 0,
            blocks: Vec::new(),
        }
    }

    fn push(&mut self, sample: &gst::Sample) {
        let (Some(buffer), Some(caps)) = (sample.buffer(), sample.caps()) else {
            return;
        };
        if !self.header_sent {
            let Some(header) = header_from_caps(caps) else {
                tracing::warn!(
                    "H.264 caps without codec_data; waiting for a key frame with headers"
                );
                return;
            };
            self.sink.inner.client.header(header);
            self.header_sent = true;
        }
        let pts_ms = buffer.pts().map(|t| t.mseconds()).unwrap_or(0);
        // Absolute time: capture times map to wall clock through the first frame's arrival.
        let now_ms = SystemWallClock.unix_ms();
        let base = *self.base_ms.get_or_insert(now_ms.saturating_sub(pts_ms));
        let at = base + pts_ms;
        let key = !buffer.flags().contains(gst::BufferFlags::DELTA_UNIT);
        let length = at.saturating_sub(self.cluster_ms);
        let target = self.sink.inner.config.fragment_duration.as_millis() as u64;
        let cut =
            !self.blocks.is_empty() && ((key && length * 10 >= target * 9) || length >= 30_000);
        if cut {
            self.flush();
        }
        if self.blocks.is_empty() {
            if !key {
                // A fragment must start with a key frame; the encoder sends one every fragment.
                tracing::debug!("dropping a delta frame before the first key frame");
                return;
            }
            self.cluster_ms = at;
        }
        let Ok(map) = buffer.map_readable() else {
            return;
        };
        let offset = i16::try_from(at.saturating_sub(self.cluster_ms)).unwrap_or(i16::MAX);
        self.blocks.push(Block {
            offset_ms: offset,
            key,
            data: map.as_slice().to_vec(),
        });
    }

    fn flush(&mut self) {
        if self.blocks.is_empty() {
            return;
        }
        let cluster = mkv::cluster(self.cluster_ms, &self.blocks);
        self.sink.inner.client.fragment(self.cluster_ms, cluster);
        self.blocks.clear();
    }
}

impl Drop for Fragmenter {
    fn drop(&mut self) {
        // A pipeline torn down without EOS (a restart) still hands over its last fragment.
        self.flush();
    }
}

fn header_from_caps(caps: &gst::CapsRef) -> Option<Vec<u8>> {
    let s = caps.structure(0)?;
    let codec_data = s.get::<gst::Buffer>("codec_data").ok()?;
    let map = codec_data.map_readable().ok()?;
    let width = u32::try_from(s.get::<i32>("width").ok()?).ok()?;
    let height = u32::try_from(s.get::<i32>("height").ok()?).ok()?;
    let frame_duration_ns = s
        .get::<gst::Fraction>("framerate")
        .ok()
        .filter(|f| f.numer() > 0 && f.denom() > 0)
        .map(|f| 1_000_000_000u64 * f.denom() as u64 / f.numer() as u64);
    let mut uid = [0u8; 16];
    let seed = SystemWallClock
        .now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_nanos()
        .to_be_bytes();
    uid.copy_from_slice(&seed);
    Some(mkv::header(
        &TrackInfo {
            width,
            height,
            codec_private: map.as_slice().to_vec(),
            frame_duration_ns,
        },
        uid,
    ))
}
