//! The native PutMedia client: one long-lived, chunked, SigV4-signed `POST /putMedia` per
//! connection, fragments kept until KVS says PERSISTED, and a reconnect (with backoff) that
//! resends the header and every unacknowledged fragment in order.
//!
//! The decisions live in [`session::Upload`], a state machine without I/O tested on virtual
//! time; [`PutMediaClient`] runs it on a thread of its own with a tokio loop (`driver`) that
//! owns the sockets, and the request itself is built and signed in `request`.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{mpsc as std_mpsc, Arc, Mutex};
use std::time::Duration;

use aws_credential_types::provider::SharedCredentialsProvider;
use bytes::Bytes;
use tokio::sync::mpsc;

use crate::clock::{Backoff, SystemClock, SystemWallClock};

mod driver;
mod request;
pub mod session;

pub use request::{signed_headers, ChannelBody};
pub use session::{Action, Upload, UploadPolicy};

/// Where and how to PutMedia.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PutMediaConfig {
    /// The data endpoint (from GetDataEndpoint), `https://...` or `http://...`.
    pub endpoint: String,
    /// Stream name.
    pub stream_name: String,
    /// Region the signature is scoped to.
    pub region: String,
    /// Bytes of unacknowledged fragments kept for resending (default 128 MiB).
    pub store_bytes: usize,
    /// First reconnect wait (default 200 ms), doubling up to `max_backoff`.
    pub initial_backoff: Duration,
    /// Longest reconnect wait (default 10 s).
    pub max_backoff: Duration,
    /// Reconnect when the credentials in use expire within this (default 30 s).
    pub credential_margin: Duration,
}

impl PutMediaConfig {
    /// Defaults for a stream at an endpoint.
    pub fn new(
        endpoint: impl Into<String>,
        stream_name: impl Into<String>,
        region: impl Into<String>,
    ) -> Self {
        PutMediaConfig {
            endpoint: endpoint.into(),
            stream_name: stream_name.into(),
            region: region.into(),
            store_bytes: 128 << 20,
            initial_backoff: Duration::from_millis(200),
            max_backoff: Duration::from_secs(10),
            credential_margin: Duration::from_secs(30),
        }
    }
}

/// Delivery counters (read back from reports: counters a report lacks are zero).
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(default)]
pub struct PutMediaStats {
    /// Fragments handed to the client.
    pub fragments: u64,
    /// Fragment transmissions (first sends and resends).
    pub sent: u64,
    /// Fragments KVS reported RECEIVED.
    pub received: u64,
    /// Fragments KVS reported PERSISTED.
    pub persisted: u64,
    /// Fragments sent again after a reconnect.
    pub resent: u64,
    /// Fragments dropped unacknowledged because the store was full.
    pub evicted: u64,
    /// Fragments KVS rejected with a non-retryable error.
    pub rejected: u64,
    /// Bytes written to the connection.
    pub bytes_sent: u64,
    /// Connections opened.
    pub connections: u64,
    /// Connection failures, HTTP errors and retryable ERROR acks.
    pub errors: u64,
    /// Fragments waiting for PERSISTED.
    pub pending: u64,
    /// Send-to-PERSISTED latency of the last fragment, milliseconds.
    pub ack_latency_ms_last: u64,
    /// Worst send-to-PERSISTED latency, milliseconds.
    pub ack_latency_ms_max: u64,
    /// The last error (never contains secrets).
    pub last_error: Option<String>,
}

impl PutMediaConfig {
    /// The decisions part of the configuration.
    pub fn policy(&self) -> UploadPolicy {
        UploadPolicy {
            store_bytes: self.store_bytes,
            backoff: Backoff::new(self.initial_backoff, self.max_backoff),
            credential_margin: self.credential_margin,
            credential_check: Duration::from_secs(1),
        }
    }
}

/// What the producer side hands the upload thread.
enum Command {
    Header(Bytes),
    Fragment { timecode_ms: u64, bytes: Bytes },
    Finish(std_mpsc::SyncSender<bool>),
}

/// The client: a thread with its own runtime, fed from the GStreamer streaming thread.
pub struct PutMediaClient {
    tx: mpsc::UnboundedSender<Command>,
    /// Fragments handed over (counted here so that the count is current at once).
    fragments: AtomicU64,
    stats: Arc<Mutex<PutMediaStats>>,
    thread: Mutex<Option<std::thread::JoinHandle<()>>>,
}

impl std::fmt::Debug for PutMediaClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PutMediaClient").finish_non_exhaustive()
    }
}

impl PutMediaClient {
    /// Start the client's thread. Nothing is sent before a header and a fragment arrive.
    pub fn start(
        config: PutMediaConfig,
        credentials: SharedCredentialsProvider,
    ) -> std::io::Result<Self> {
        let (tx, rx) = mpsc::unbounded_channel();
        let stats = Arc::new(Mutex::new(PutMediaStats::default()));
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        let driver = driver::Driver {
            upload: Upload::new(config.policy()),
            config,
            credentials,
            clock: Arc::new(SystemClock::new()),
            wall: Arc::new(SystemWallClock),
            stats: stats.clone(),
        };
        let thread = std::thread::Builder::new()
            .name("telescope-putmedia".into())
            .spawn(move || runtime.block_on(driver.run(rx)))?;
        Ok(PutMediaClient {
            tx,
            fragments: AtomicU64::new(0),
            stats,
            thread: Mutex::new(Some(thread)),
        })
    }

    /// The stream header (EBML, Segment, Info, Tracks); sent first on every connection.
    pub fn header(&self, header: Vec<u8>) {
        let _ = self.tx.send(Command::Header(Bytes::from(header)));
    }

    /// A complete fragment (one Cluster) with its absolute timecode.
    pub fn fragment(&self, timecode_ms: u64, cluster: Vec<u8>) {
        self.fragments.fetch_add(1, Ordering::Relaxed);
        let _ = self.tx.send(Command::Fragment {
            timecode_ms,
            bytes: Bytes::from(cluster),
        });
    }

    /// Wait (at most `timeout`) until every fragment is PERSISTED, then end the upload.
    /// Returns whether nothing was left undelivered.
    pub fn finish(&self, timeout: Duration) -> bool {
        let (reply, done) = std_mpsc::sync_channel(1);
        if self.tx.send(Command::Finish(reply)).is_err() {
            return false;
        }
        done.recv_timeout(timeout).unwrap_or(false)
    }

    /// Delivery counters so far.
    pub fn stats(&self) -> PutMediaStats {
        let mut stats = self.stats.lock().unwrap_or_else(|p| p.into_inner()).clone();
        stats.fragments = self.fragments.load(Ordering::Relaxed);
        stats
    }
}

impl Drop for PutMediaClient {
    fn drop(&mut self) {
        // Closing the channel ends the upload at once, delivered or not.
        let (tx, _) = mpsc::unbounded_channel();
        drop(std::mem::replace(&mut self.tx, tx));
        if let Some(t) = self.thread.lock().unwrap_or_else(|p| p.into_inner()).take() {
            let _ = t.join();
        }
    }
}
