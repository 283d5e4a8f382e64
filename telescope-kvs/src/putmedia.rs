//! The native PutMedia client: one long-lived, chunked, SigV4-signed `POST /putMedia` per
//! connection, fragments kept until KVS says PERSISTED, and a reconnect (with backoff) that
//! resends the header and every unacknowledged fragment in order.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::{Duration, Instant, SystemTime};

use aws_credential_types::provider::{ProvideCredentials, SharedCredentialsProvider};
use bytes::Bytes;
use http_body_util::BodyExt;
use tokio::sync::{mpsc, oneshot};

use super::ack::{AckEvent, AckParser};

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

/// Delivery counters.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
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

#[derive(Debug, Default)]
struct Counters {
    fragments: AtomicU64,
    sent: AtomicU64,
    received: AtomicU64,
    persisted: AtomicU64,
    resent: AtomicU64,
    evicted: AtomicU64,
    rejected: AtomicU64,
    bytes_sent: AtomicU64,
    connections: AtomicU64,
    errors: AtomicU64,
    pending: AtomicU64,
    latency_last: AtomicU64,
    latency_max: AtomicU64,
    last_error: Mutex<Option<String>>,
}

impl Counters {
    fn error(&self, message: String) {
        self.errors.fetch_add(1, Ordering::Relaxed);
        tracing::warn!(error = %message, "PutMedia");
        *self.last_error.lock().unwrap_or_else(|p| p.into_inner()) = Some(message);
    }
}

enum Command {
    Header(Bytes),
    Fragment { timecode_ms: u64, bytes: Bytes },
    Finish(oneshot::Sender<bool>),
}

/// The client: a thread with its own runtime, fed from the GStreamer streaming thread.
pub struct PutMediaClient {
    tx: mpsc::UnboundedSender<Command>,
    counters: Arc<Counters>,
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
        let counters = Arc::new(Counters::default());
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        let mut uploader = Uploader {
            config,
            credentials,
            rx,
            counters: counters.clone(),
            header: None,
            store: VecDeque::new(),
            store_bytes: 0,
            connection: 0,
            finishing: None,
            closed: false,
        };
        let thread = std::thread::Builder::new()
            .name("telescope-putmedia".into())
            .spawn(move || runtime.block_on(uploader.run()))?;
        Ok(PutMediaClient {
            tx,
            counters,
            thread: Mutex::new(Some(thread)),
        })
    }

    /// The stream header (EBML, Segment, Info, Tracks); sent first on every connection.
    pub fn header(&self, header: Vec<u8>) {
        let _ = self.tx.send(Command::Header(Bytes::from(header)));
    }

    /// A complete fragment (one Cluster) with its absolute timecode.
    pub fn fragment(&self, timecode_ms: u64, cluster: Vec<u8>) {
        self.counters.fragments.fetch_add(1, Ordering::Relaxed);
        let _ = self.tx.send(Command::Fragment {
            timecode_ms,
            bytes: Bytes::from(cluster),
        });
    }

    /// Wait (at most `timeout`) until every fragment is PERSISTED, then end the upload.
    /// Returns whether everything was persisted.
    pub fn finish(&self, timeout: Duration) -> bool {
        let (reply, done) = oneshot::channel();
        if self.tx.send(Command::Finish(reply)).is_err() {
            return false;
        }
        let deadline = Instant::now() + timeout;
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .build();
        let persisted = match rt {
            Ok(rt) => rt
                .block_on(async { tokio::time::timeout_at(deadline.into(), done).await })
                .ok()
                .and_then(Result::ok),
            Err(_) => None,
        };
        persisted.unwrap_or(false)
    }

    /// Delivery counters so far.
    pub fn stats(&self) -> PutMediaStats {
        let c = &self.counters;
        let l = |a: &AtomicU64| a.load(Ordering::Relaxed);
        PutMediaStats {
            fragments: l(&c.fragments),
            sent: l(&c.sent),
            received: l(&c.received),
            persisted: l(&c.persisted),
            resent: l(&c.resent),
            evicted: l(&c.evicted),
            rejected: l(&c.rejected),
            bytes_sent: l(&c.bytes_sent),
            connections: l(&c.connections),
            errors: l(&c.errors),
            pending: l(&c.pending),
            ack_latency_ms_last: l(&c.latency_last),
            ack_latency_ms_max: l(&c.latency_max),
            last_error: c
                .last_error
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .clone(),
        }
    }
}

impl Drop for PutMediaClient {
    fn drop(&mut self) {
        // Closing the channel ends the uploader once it has nothing left to do.
        let (tx, _) = mpsc::unbounded_channel();
        drop(std::mem::replace(&mut self.tx, tx));
        if let Some(t) = self.thread.lock().unwrap_or_else(|p| p.into_inner()).take() {
            let _ = t.join();
        }
    }
}

struct Stored {
    timecode_ms: u64,
    bytes: Bytes,
    /// Connection that last sent it (0: never sent).
    sent_on: u64,
    sent_at: Option<Instant>,
}

struct Uploader {
    config: PutMediaConfig,
    credentials: SharedCredentialsProvider,
    rx: mpsc::UnboundedReceiver<Command>,
    counters: Arc<Counters>,
    header: Option<Bytes>,
    store: VecDeque<Stored>,
    store_bytes: usize,
    connection: u64,
    finishing: Option<oneshot::Sender<bool>>,
    closed: bool,
}

/// Why a connection ended.
enum End {
    /// Everything persisted and the upload was finished.
    Finished,
    /// The producer side went away.
    Closed,
    /// Try again after a backoff.
    Retry(String),
}

impl Uploader {
    async fn run(&mut self) {
        let backoff =
            crate::clock::Backoff::new(self.config.initial_backoff, self.config.max_backoff);
        let mut retries = 0;
        loop {
            if self.finishing.is_some() && self.store.is_empty() {
                self.reply_finish(true);
                return;
            }
            if self.header.is_none() || self.store.is_empty() {
                if self.closed {
                    return;
                }
                match self.rx.recv().await {
                    Some(cmd) => self.command(cmd),
                    None => self.closed = true,
                }
                continue;
            }
            match self.connect_and_stream().await {
                End::Finished => {
                    self.reply_finish(true);
                    return;
                }
                End::Closed => return,
                End::Retry(message) => {
                    self.counters.error(message);
                    if self.closed {
                        // The producer is gone (dropped without `finish`): stop retrying.
                        return;
                    }
                    // Keep taking fragments while waiting to reconnect.
                    let wake = tokio::time::Instant::now() + backoff.delay(retries);
                    loop {
                        tokio::select! {
                            _ = tokio::time::sleep_until(wake) => break,
                            cmd = self.rx.recv(), if !self.closed => match cmd {
                                Some(c) => self.command(c),
                                None => self.closed = true,
                            },
                        }
                    }
                    retries = retries.saturating_add(1);
                }
            }
            if self.counters.persisted.load(Ordering::Relaxed) > 0 && self.store.is_empty() {
                retries = 0;
            }
        }
    }

    fn reply_finish(&mut self, ok: bool) {
        if let Some(reply) = self.finishing.take() {
            let _ = reply.send(ok);
        }
    }

    fn command(&mut self, cmd: Command) {
        match cmd {
            Command::Header(h) => self.header = Some(h),
            Command::Fragment { timecode_ms, bytes } => {
                self.store_bytes += bytes.len();
                self.store.push_back(Stored {
                    timecode_ms,
                    bytes,
                    sent_on: 0,
                    sent_at: None,
                });
                while self.store_bytes > self.config.store_bytes && self.store.len() > 1 {
                    if let Some(old) = self.store.pop_front() {
                        self.store_bytes -= old.bytes.len();
                        self.counters.evicted.fetch_add(1, Ordering::Relaxed);
                        tracing::warn!(
                            timecode = old.timecode_ms,
                            "fragment store full: oldest fragment evicted unacknowledged"
                        );
                    }
                }
                self.counters
                    .pending
                    .store(self.store.len() as u64, Ordering::Relaxed);
            }
            Command::Finish(reply) => self.finishing = Some(reply),
        }
    }

    fn persisted(&mut self, timecode: u64) {
        if let Some(i) = self.store.iter().position(|f| f.timecode_ms == timecode) {
            // Fragments before a persisted one were persisted too (KVS acks in order).
            for f in self.store.drain(..=i) {
                self.store_bytes -= f.bytes.len();
                self.counters.persisted.fetch_add(1, Ordering::Relaxed);
                if let Some(at) = f.sent_at {
                    let ms = at.elapsed().as_millis() as u64;
                    self.counters.latency_last.store(ms, Ordering::Relaxed);
                    self.counters.latency_max.fetch_max(ms, Ordering::Relaxed);
                }
            }
            self.counters
                .pending
                .store(self.store.len() as u64, Ordering::Relaxed);
        }
    }

    fn reject(&mut self, timecode: Option<u64>) {
        if let Some(i) = timecode.and_then(|t| self.store.iter().position(|f| f.timecode_ms == t)) {
            if let Some(f) = self.store.remove(i) {
                self.store_bytes -= f.bytes.len();
                self.counters.rejected.fetch_add(1, Ordering::Relaxed);
            }
        }
        self.counters
            .pending
            .store(self.store.len() as u64, Ordering::Relaxed);
    }

    async fn connect_and_stream(&mut self) -> End {
        let creds = match self.credentials.provide_credentials().await {
            Ok(c) => c,
            Err(e) => {
                return End::Retry(format!(
                    "no credentials: {}",
                    crate::credentials::redact_chain(&e)
                ))
            }
        };
        let target = match Target::parse(&self.config.endpoint) {
            Ok(t) => t,
            Err(e) => return End::Retry(e),
        };
        let io = match tokio::time::timeout(Duration::from_secs(10), target.connect()).await {
            Ok(Ok(io)) => io,
            Ok(Err(e)) => {
                return End::Retry(format!("cannot connect to {}: {e}", target.authority))
            }
            Err(_) => return End::Retry(format!("connecting to {} timed out", target.authority)),
        };
        let (mut sender, conn) =
            match hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(io)).await {
                Ok(pair) => pair,
                Err(e) => return End::Retry(format!("HTTP handshake failed: {e}")),
            };
        let conn = tokio::spawn(conn);
        self.connection += 1;
        self.counters.connections.fetch_add(1, Ordering::Relaxed);
        let first_timecode = self
            .store
            .front()
            .map(|f| f.timecode_ms)
            .unwrap_or_default();
        let (body_tx, body_rx) = mpsc::channel::<Bytes>(8);
        let request = match sign_request(
            &self.config,
            &target,
            &creds,
            first_timecode,
            ChannelBody(body_rx),
        ) {
            Ok(r) => r,
            Err(e) => return End::Retry(e),
        };
        let mut response = Box::pin(sender.send_request(request));
        let mut body: Option<hyper::body::Incoming> = None;
        let mut parser = AckParser::new();
        let mut body_tx = Some(body_tx);
        let mut header_sent = false;
        let expires = creds.expiry();
        let mut check = tokio::time::interval(Duration::from_secs(1));
        let end = 'connection: loop {
            let unsent = self.store.iter().position(|f| f.sent_on != self.connection);
            let can_send = body_tx.is_some() && (!header_sent || unsent.is_some());
            tokio::select! {
                permit = async { body_tx.as_ref().map(|tx| tx.reserve()) }, if can_send => {
                    let Some(reserve) = permit else { continue };
                    let Ok(permit) = reserve.await else { break End::Retry("the connection stopped taking data".into()) };
                    let chunk = if !header_sent {
                        header_sent = true;
                        self.header.clone().unwrap_or_default()
                    } else if let Some(i) = unsent {
                        let f = &mut self.store[i];
                        if f.sent_on != 0 {
                            self.counters.resent.fetch_add(1, Ordering::Relaxed);
                        }
                        f.sent_on = self.connection;
                        f.sent_at = Some(Instant::now());
                        self.counters.sent.fetch_add(1, Ordering::Relaxed);
                        f.bytes.clone()
                    } else {
                        continue;
                    };
                    self.counters.bytes_sent.fetch_add(chunk.len() as u64, Ordering::Relaxed);
                    permit.send(chunk);
                }
                cmd = self.rx.recv(), if !self.closed => match cmd {
                    Some(c) => self.command(c),
                    None => self.closed = true,
                },
                resp = &mut response, if body.is_none() => match resp {
                    Ok(r) if r.status() == http::StatusCode::OK => body = Some(r.into_body()),
                    Ok(r) => {
                        let status = r.status();
                        let text = r.into_body().collect().await.map(|b| b.to_bytes()).unwrap_or_default();
                        break End::Retry(format!("PutMedia answered {status}: {}", String::from_utf8_lossy(&text).chars().take(200).collect::<String>()));
                    }
                    Err(e) => break End::Retry(format!("PutMedia request failed: {e}")),
                },
                frame = async { match body.as_mut() { Some(b) => b.frame().await, None => None } }, if body.is_some() => match frame {
                    Some(Ok(frame)) => {
                        if let Some(data) = frame.data_ref() {
                            for ack in parser.push(data) {
                                match ack {
                                    Ok(ack) => match ack.event {
                                        AckEvent::Received => { self.counters.received.fetch_add(1, Ordering::Relaxed); }
                                        AckEvent::Persisted => if let Some(t) = ack.fragment_timecode { self.persisted(t) },
                                        AckEvent::Error { error_id, code } => {
                                            let message = format!("KVS ERROR ack {error_id} {} for fragment {:?}", code.unwrap_or_default(), ack.fragment_timecode);
                                            if retryable(error_id) {
                                                // Resend it on a fresh connection.
                                                break 'connection End::Retry(message);
                                            } else {
                                                self.reject(ack.fragment_timecode);
                                                self.counters.error(format!("{message} (not retryable: fragment dropped)"));
                                            }
                                        }
                                        _ => {}
                                    },
                                    Err(e) => tracing::warn!(error = %e, "unreadable PutMedia ack"),
                                }
                            }
                        }
                    }
                    Some(Err(e)) => break End::Retry(format!("PutMedia connection failed: {e}")),
                    None => break End::Retry("KVS closed the PutMedia connection".into()),
                },
                _ = check.tick() => {
                    let now = SystemTime::now();
                    if expires.is_some_and(|t| t <= now + self.config.credential_margin) {
                        // Move to fresher credentials when the provider has them (KVS ends a
                        // connection when the credentials that signed it expire); keep going
                        // with these until then.
                        let fresher = self.credentials.provide_credentials().await.ok().and_then(|c| c.expiry());
                        let expired = expires.is_some_and(|t| t <= now);
                        if expired || fresher.is_some_and(|f| Some(f) > expires) {
                            break 'connection End::Retry("credentials renewed: reconnecting with the fresh ones".into());
                        }
                    }
                }
            }
            if self.finishing.is_some() && self.store.is_empty() {
                // Everything persisted: end the chunked body so KVS closes cleanly.
                body_tx = None;
                break End::Finished;
            }
            if self.closed {
                break End::Closed;
            }
        };
        drop(body_tx);
        conn.abort();
        end
    }
}

/// KVS ERROR acks worth retrying: service-side failures (5000s) and stream read errors (4000).
fn retryable(error_id: u64) -> bool {
    error_id >= 5000 || error_id == 4000
}

/// A streamed HTTP body: chunks from a channel, ending when the sender is dropped.
#[derive(Debug)]
pub struct ChannelBody(pub mpsc::Receiver<Bytes>);

impl http_body::Body for ChannelBody {
    type Data = Bytes;
    type Error = std::convert::Infallible;

    fn poll_frame(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<http_body::Frame<Bytes>, Self::Error>>> {
        self.0
            .poll_recv(cx)
            .map(|c| c.map(|b| Ok(http_body::Frame::data(b))))
    }
}

/// A parsed data endpoint.
struct Target {
    tls: bool,
    host: String,
    port: u16,
    authority: String,
}

trait Io: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send {}
impl<T: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send> Io for T {}

impl Target {
    fn parse(endpoint: &str) -> Result<Target, String> {
        let uri: http::Uri = endpoint
            .parse()
            .map_err(|_| format!("`{endpoint}` is not a URL"))?;
        let tls = match uri.scheme_str() {
            Some("https") => true,
            Some("http") => false,
            _ => {
                return Err(format!(
                    "`{endpoint}`: the data endpoint must be http:// or https://"
                ))
            }
        };
        let host = uri
            .host()
            .ok_or_else(|| format!("`{endpoint}` has no host"))?
            .trim_matches(['[', ']'])
            .to_owned();
        let port = uri.port_u16().unwrap_or(if tls { 443 } else { 80 });
        let authority = uri
            .authority()
            .map(|a| a.as_str().to_owned())
            .unwrap_or_else(|| host.clone());
        Ok(Target {
            tls,
            host,
            port,
            authority,
        })
    }

    async fn connect(&self) -> std::io::Result<Box<dyn Io>> {
        let tcp = tokio::net::TcpStream::connect((self.host.as_str(), self.port)).await?;
        tcp.set_nodelay(true)?;
        if !self.tls {
            return Ok(Box::new(tcp));
        }
        let mut roots = rustls::RootCertStore::empty();
        for cert in rustls_native_certs::load_native_certs().certs {
            let _ = roots.add(cert);
        }
        let config = rustls::ClientConfig::builder_with_provider(Arc::new(
            rustls::crypto::aws_lc_rs::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .map_err(std::io::Error::other)?
        .with_root_certificates(roots)
        .with_no_client_auth();
        let name = rustls::pki_types::ServerName::try_from(self.host.clone())
            .map_err(std::io::Error::other)?;
        let tls = tokio_rustls::TlsConnector::from(Arc::new(config))
            .connect(name, tcp)
            .await?;
        Ok(Box::new(tls))
    }
}

/// The signed PutMedia request (the body is signed as an empty payload, as KVS expects for a
/// streamed body).
fn sign_request(
    config: &PutMediaConfig,
    target: &Target,
    creds: &aws_credential_types::Credentials,
    first_timecode_ms: u64,
    body: ChannelBody,
) -> Result<http::Request<ChannelBody>, String> {
    let headers = signed_headers(
        &config.region,
        &config.stream_name,
        &target.authority,
        creds,
        first_timecode_ms,
        SystemTime::now(),
    )?;
    let mut builder = http::Request::builder().method("POST").uri("/putMedia");
    for (name, value) in &headers {
        builder = builder.header(name.as_str(), value.as_str());
    }
    builder = builder
        .header("user-agent", "telescope-putmedia")
        .header("accept", "*/*");
    builder
        .body(body)
        .map_err(|e| format!("cannot build PutMedia request: {e}"))
}

/// Every header of a PutMedia request to `authority`, SigV4-signed at `at` (including
/// `authorization`, `x-amz-date` and, with temporary credentials, `x-amz-security-token`).
pub fn signed_headers(
    region: &str,
    stream_name: &str,
    authority: &str,
    creds: &aws_credential_types::Credentials,
    first_timecode_ms: u64,
    at: SystemTime,
) -> Result<Vec<(String, String)>, String> {
    use aws_sigv4::http_request::{sign, SignableBody, SignableRequest, SigningSettings};
    let start = format!(
        "{}.{:03}",
        first_timecode_ms / 1000,
        first_timecode_ms % 1000
    );
    let headers = [
        ("host", authority),
        ("x-amzn-stream-name", stream_name),
        ("x-amzn-fragment-timecode-type", "ABSOLUTE"),
        ("x-amzn-producer-start-timestamp", start.as_str()),
    ];
    let identity = creds.clone().into();
    let params = aws_sigv4::sign::v4::SigningParams::builder()
        .identity(&identity)
        .region(region)
        .name("kinesisvideo")
        .time(at)
        .settings(SigningSettings::default())
        .build()
        .map_err(|e| format!("cannot sign PutMedia: {e}"))?
        .into();
    let signable = SignableRequest::new(
        "POST",
        "/putMedia",
        headers.iter().copied(),
        SignableBody::Bytes(&[]),
    )
    .map_err(|e| format!("cannot sign PutMedia: {e}"))?;
    let (instructions, _) = sign(signable, &params)
        .map_err(|e| format!("cannot sign PutMedia: {e}"))?
        .into_parts();
    let mut out: Vec<(String, String)> = headers
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect();
    out.extend(
        instructions
            .headers()
            .map(|(k, v)| (k.to_owned(), v.to_owned())),
    );
    Ok(out)
}
