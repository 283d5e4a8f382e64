//! mock-kvs: a local Kinesis Video Streams endpoint speaking the real wire protocol.
//!
//! The control plane is the KVS REST API (restJson1: `POST /describeStream` and friends) with
//! the real JSON shapes and error types, so the AWS SDK, the AWS CLI and Telescope's own
//! control code work against it unchanged. When keys are configured, every request must carry
//! a valid SigV4 signature for service `kinesisvideo`.
//!
//! The data plane stores what PutMedia sends and serves it back: GetMedia, ListFragments,
//! GetMediaForFragmentList, and playback (HLS and DASH sessions, GetClip, GetImages; see
//! `playback`), with a web viewer at the root URL (`/?stream=NAME`).

use std::collections::{BTreeMap, HashMap};
use std::convert::Infallible;
use std::net::{SocketAddr, TcpListener};
use std::path::PathBuf;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use telescope_kvs::clock::{SystemWallClock, WallClock};

use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use serde_json::{json, Value};

mod archive;
pub mod connections;
pub mod fault;
mod get_media;
pub mod limits;
pub mod media;
pub mod mkv;
pub mod netem;
mod playback;
mod put_media;
pub mod sigv4;
pub mod state;
pub mod viewer;

pub use fault::Fault;

use state::Streams;

/// How a mock-kvs runs.
#[derive(Debug, Clone)]
pub struct MockKvsConfig {
    /// Address to listen on (default `127.0.0.1:4566`, LocalStack's port; port 0 picks one).
    pub listen: SocketAddr,
    /// The one key pair accepted; `None` accepts unsigned requests.
    pub keys: Option<(String, String)>,
    /// Directory to persist streams in (default: memory only).
    pub store: Option<PathBuf>,
    /// Region used in ARNs (requests may be signed for any region).
    pub region: String,
    /// Faults injected into PutMedia.
    pub faults: Vec<Fault>,
    /// The data endpoint GetDataEndpoint answers (default: this server's own URL); a proxy
    /// in front of the data plane, for network faults, goes here.
    pub data_endpoint: Option<String>,
    /// Keep each fragment's bytes for GetMedia (default). A soak that only counts frames turns
    /// it off, so that its process's memory is the producer's, not the store's.
    pub keep_media: bool,
    /// A GetMedia response stays open for new fragments as they arrive (as KVS streams live
    /// media); once it has sent what a producer sent and no producer is connected, it ends after
    /// this long without a new fragment (default 3 s).
    pub get_media_idle: Duration,
    /// The longest a GetMedia response lasts (default 45 min, as the service's sessions).
    pub get_media_max: Duration,
    /// A PutMedia connection that completes no header or fragment for this long is closed
    /// (default 30 s, the service's PutMedia idle limit).
    pub put_media_idle: Duration,
    /// Time a client has to send a request's headers, and a control-plane request's body
    /// (default 10 s).
    pub request_timeout: Duration,
    /// Bytes all PutMedia connections together may hold in partly received fragments
    /// (default 256 MiB; one fragment is at most 50 MB).
    pub buffer_budget: u64,
    /// Connections served at once (default 512, and never more than the descriptor limit
    /// allows); past it, the longest-idle connection makes room for the new one.
    pub max_connections: usize,
}

impl Default for MockKvsConfig {
    fn default() -> Self {
        MockKvsConfig {
            listen: SocketAddr::from(([127, 0, 0, 1], 4566)),
            keys: None,
            store: None,
            region: "us-east-1".into(),
            faults: Vec::new(),
            data_endpoint: None,
            keep_media: true,
            get_media_idle: Duration::from_secs(3),
            get_media_max: Duration::from_secs(45 * 60),
            put_media_idle: Duration::from_secs(30),
            request_timeout: Duration::from_secs(10),
            buffer_budget: 256 << 20,
            max_connections: 512,
        }
    }
}

struct Ctx {
    config: MockKvsConfig,
    url: String,
    streams: Mutex<Streams>,
    media: Mutex<HashMap<String, media::Media>>,
    /// Counters served at `/_mock/stats`.
    stats: media::Stats,
    /// Connections being served.
    connections: Arc<connections::Connections>,
    /// Bytes PutMedia connections hold, all together.
    budget: Arc<limits::ByteBudget>,
    /// Bumped whenever a fragment is stored, for live GetMedia responses.
    stored: tokio::sync::watch::Sender<u64>,
    /// Faults in force (start from the configuration, changed at run time via `/_mock/faults`).
    faults: Mutex<Vec<Fault>>,
    /// PutMedia requests seen (for the `refuse` fault).
    put_requests: std::sync::atomic::AtomicU64,
    /// HLS and DASH streaming sessions by token.
    sessions: Mutex<HashMap<String, playback::Session>>,
}

impl Ctx {
    fn streams(&self) -> MutexGuard<'_, Streams> {
        self.streams.lock().unwrap_or_else(|p| p.into_inner())
    }
    fn faults(&self) -> Vec<Fault> {
        self.faults
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }
    fn stats_json(&self) -> Value {
        let mut stats = self.stats.to_json();
        stats["buffered_bytes"] = json!(self.budget.used());
        stats["connections"] = json!(self.connections.len());
        stats
    }
    fn media(&self) -> MutexGuard<'_, HashMap<String, media::Media>> {
        self.media.lock().unwrap_or_else(|p| p.into_inner())
    }
    fn sessions(&self) -> MutexGuard<'_, HashMap<String, playback::Session>> {
        self.sessions.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// A running mock-kvs; stops when dropped.
pub struct MockKvs {
    url: String,
    addr: SocketAddr,
    ctx: Arc<Ctx>,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl std::fmt::Debug for MockKvs {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MockKvs").field("url", &self.url).finish()
    }
}

impl MockKvs {
    /// Bind and serve on a background thread.
    pub fn start(config: MockKvsConfig) -> std::io::Result<MockKvs> {
        let listener = TcpListener::bind(config.listen)?;
        listener.set_nonblocking(true)?;
        let addr = listener.local_addr()?;
        let url = format!("http://{addr}");
        let streams = Streams::open(config.store.as_deref())?;
        let config_faults = config.faults.clone();
        let budget = limits::ByteBudget::new(config.buffer_budget);
        let ctx = Arc::new(Ctx {
            stats: media::Stats::default(),
            connections: Default::default(),
            budget,
            config,
            url: url.clone(),
            streams: Mutex::new(streams),
            media: Mutex::default(),
            stored: tokio::sync::watch::Sender::new(0),
            put_requests: Default::default(),
            faults: Mutex::new(config_faults),
            sessions: Mutex::default(),
        });
        let handle = ctx.clone();
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()?;
        let (tx, rx) = tokio::sync::oneshot::channel();
        let thread = std::thread::Builder::new()
            .name("mock-kvs".into())
            .spawn(move || {
                runtime.block_on(serve(listener, ctx, rx));
            })?;
        Ok(MockKvs {
            url,
            addr,
            ctx: handle,
            shutdown: Some(tx),
            thread: Some(thread),
        })
    }

    /// Base URL, e.g. `http://127.0.0.1:4566`.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// The web viewer's page for `stream` (`URL/?stream=NAME`).
    pub fn viewer_url(&self, stream: &str) -> String {
        viewer::stream_url(&self.url, stream)
    }

    /// The bound address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Replace the faults in force (as `POST /_mock/faults` does).
    pub fn set_faults(&self, faults: Vec<Fault>) {
        *self.ctx.faults.lock().unwrap_or_else(|p| p.into_inner()) = faults;
    }

    /// The counters `/_mock/stats` serves.
    pub fn stats(&self) -> Value {
        self.ctx.stats_json()
    }

    /// What a stream holds: (fragments stored, distinct frames). A resent fragment is stored
    /// twice, as KVS does; frames are counted once per producer timecode.
    pub fn stored(&self, stream: &str) -> (usize, u64) {
        let media = self.ctx.media();
        let Some(m) = media.get(stream) else {
            return (0, 0);
        };
        let mut seen = std::collections::HashSet::new();
        let frames = m
            .fragments
            .iter()
            .filter(|f| seen.insert(f.producer_ms))
            .map(|f| u64::from(f.frames))
            .sum();
        (m.fragments.len(), frames)
    }
}

impl Drop for MockKvs {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

async fn serve(
    listener: TcpListener,
    ctx: Arc<Ctx>,
    mut shutdown: tokio::sync::oneshot::Receiver<()>,
) {
    let listener = match tokio::net::TcpListener::from_std(listener) {
        Ok(l) => l,
        Err(e) => {
            tracing::error!(error = %e, "mock-kvs cannot listen");
            return;
        }
    };
    let max = connections::descriptor_room().map_or(ctx.config.max_connections, |room| {
        room.min(ctx.config.max_connections)
    });
    let registry = ctx.connections.clone();
    let mut failures = 0u32;
    loop {
        let accepted = tokio::select! {
            _ = &mut shutdown => return,
            accepted = listener.accept() => accepted,
        };
        let stream = match accepted {
            Ok((stream, _)) => {
                failures = 0;
                stream
            }
            Err(e) => {
                // EMFILE and the like: the connection waits in the backlog, so accepting again
                // at once fails again at once. Back off instead of spinning.
                media::Stats::bump(&ctx.stats.accept_errors);
                tracing::warn!(error = %e, "mock-kvs cannot accept a connection");
                let pause = limits::accept_backoff(failures);
                failures = failures.saturating_add(1);
                tokio::select! {
                    _ = &mut shutdown => return,
                    _ = tokio::time::sleep(pause) => continue,
                }
            }
        };
        let admitted = registry.admit(max);
        let ctx = ctx.clone();
        let timeout = ctx.config.request_timeout;
        tokio::spawn(async move {
            let conn = admitted.conn.clone();
            let io = hyper_util::rt::TokioIo::new(stream);
            let service = hyper::service::service_fn(move |req| {
                let in_flight = connections::InFlight::start(&conn);
                let ctx = ctx.clone();
                async move {
                    let response = handle(req, ctx).await?;
                    Ok::<_, Infallible>(response.map(|body| {
                        connections::Tracked {
                            body,
                            _in_flight: in_flight,
                        }
                        .boxed()
                    }))
                }
            });
            let served = hyper::server::conn::http1::Builder::new()
                .timer(hyper_util::rt::TokioTimer::new())
                // A client sending its headers a byte at a time, or nothing at all, is cut off.
                .header_read_timeout(timeout)
                .serve_connection(io, service);
            tokio::select! {
                result = served => {
                    if let Err(e) = result {
                        tracing::debug!(error = %e, "mock-kvs connection ended");
                    }
                }
                _ = admitted.conn.close.notified() => {
                    tracing::debug!("mock-kvs closed an idle connection to make room");
                }
            }
            drop(admitted);
        });
    }
}

/// A KVS error: HTTP status, error type (sent as `x-amzn-ErrorType`) and message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiError {
    pub status: StatusCode,
    pub kind: &'static str,
    pub message: String,
}

/// What an operation answers: its JSON output or a KVS error.
type Reply = Result<Value, ApiError>;

fn error(status: StatusCode, kind: &'static str, message: impl Into<String>) -> ApiError {
    ApiError {
        status,
        kind,
        message: message.into(),
    }
}

fn invalid(message: impl Into<String>) -> ApiError {
    error(StatusCode::BAD_REQUEST, "InvalidArgumentException", message)
}

fn not_found(what: &str) -> ApiError {
    error(
        StatusCode::NOT_FOUND,
        "ResourceNotFoundException",
        format!("The requested stream {what} is not found or not active."),
    )
}

/// Every response body: whole JSON documents or streamed acks and media.
type Body = BoxBody<Bytes, Infallible>;

/// The HTTP response for a reply.
fn respond(reply: Reply) -> Response<Body> {
    let (status, kind, body) = match reply {
        Ok(value) => (StatusCode::OK, None, value.to_string()),
        Err(e) => (
            e.status,
            Some(e.kind),
            // KVS spells it `Message` (producer-c #139, producer-sdk-cpp #433).
            json!({ "Message": e.message }).to_string(),
        ),
    };
    let mut builder = Response::builder()
        .status(status)
        .header("content-type", "application/json");
    if let Some(kind) = kind {
        builder = builder.header("x-amzn-ErrorType", kind);
    }
    builder
        .body(Full::new(Bytes::from(body)).boxed())
        .unwrap_or_else(|_| Response::new(Full::new(Bytes::new()).boxed()))
}

async fn handle(req: Request<Incoming>, ctx: Arc<Ctx>) -> Result<Response<Body>, Infallible> {
    let mut response = route_request(req, ctx).await;
    // Every answer carries a request id, media ones included (boto3 #1828 shows
    // `x-amzn-requestid` on GetMedia; aws-sdk-cpp #2203 spells it `x-amzn-RequestId`).
    if let Ok(id) = http::HeaderValue::from_str(&request_id()) {
        response.headers_mut().insert("x-amzn-RequestId", id);
    }
    Ok(response)
}

/// A fresh request id in the service's UUID form (unique, not secret: a counter hashed with
/// the process's random hash keys).
fn request_id() -> String {
    use std::hash::{BuildHasher, RandomState};
    static KEYS: std::sync::OnceLock<RandomState> = std::sync::OnceLock::new();
    static COUNTER: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let n = COUNTER.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let keys = KEYS.get_or_init(RandomState::new);
    let hex = format!("{:016x}{:016x}", keys.hash_one(n), keys.hash_one(!n));
    format!(
        "{}-{}-{}-{}-{}",
        &hex[0..8],
        &hex[8..12],
        &hex[12..16],
        &hex[16..20],
        &hex[20..32]
    )
}

async fn route_request(req: Request<Incoming>, ctx: Arc<Ctx>) -> Response<Body> {
    let path = req.uri().path().to_owned();
    if path == "/putMedia" {
        // Streamed both ways: acks flow back while the body still arrives.
        return put_media::put_media(req, ctx).await;
    }
    if playback::is_session_path(&path) {
        // Authorized by the session token in the URL, as the service's session URLs are.
        return playback::session_request(req, ctx).await;
    }
    if req.method() == http::Method::GET {
        if let Some(page) = viewer::resource(&path) {
            return page;
        }
    }
    // Session URLs start with the address the client reached (a browser on another machine
    // gets one it can reach too), unless a data endpoint is configured.
    let base = match (
        &ctx.config.data_endpoint,
        req.headers().get(http::header::HOST),
    ) {
        (Some(endpoint), _) => endpoint.trim_end_matches('/').to_owned(),
        (None, Some(host)) => match host.to_str() {
            Ok(h) => format!("http://{h}"),
            Err(_) => ctx.url.clone(),
        },
        (None, None) => ctx.url.clone(),
    };
    // The mock's own admin endpoints take the same credentials as the KVS APIs: whoever may
    // not call DescribeStream may not inject faults either.
    let input =
        match tokio::time::timeout(ctx.config.request_timeout, read_request(req, &ctx)).await {
            Ok(Ok(input)) => input,
            Ok(Err(e)) => return respond(Err(e)),
            Err(_) => {
                media::Stats::bump(&ctx.stats.timed_out);
                return respond(Err(error(
                    StatusCode::REQUEST_TIMEOUT,
                    "InvalidArgumentException",
                    "the request body did not arrive in time",
                )));
            }
        };
    if let Some(response) = playback::api(&ctx, &path, &input, &base).await {
        return response;
    }
    match path.as_str() {
        "/getMedia" => get_media::get_media(ctx, &input),
        "/getMediaForFragmentList" => archive::get_media_for_fragment_list(&ctx, &input),
        _ => respond(route(&ctx, &path, &input)),
    }
}

/// Check the signature and parse the JSON body of a control-plane style request.
async fn read_request(req: Request<Incoming>, ctx: &Ctx) -> Result<Value, ApiError> {
    let (parts, body) = req.into_parts();
    let bytes = Limited::new(body, 1 << 20)
        .collect()
        .await
        .map_err(|_| invalid("request body too large or unreadable"))?
        .to_bytes();
    authorize(ctx, &parts, Some(&bytes))?;
    if parts.method != http::Method::POST {
        return Err(error(
            StatusCode::METHOD_NOT_ALLOWED,
            "InvalidArgumentException",
            "KVS operations are POST requests",
        ));
    }
    if bytes.is_empty() {
        return Ok(json!({}));
    }
    match serde_json::from_slice(&bytes) {
        Ok(v @ Value::Object(_)) => Ok(v),
        Ok(_) => Err(invalid("the request body must be a JSON object")),
        Err(e) => Err(error(
            StatusCode::BAD_REQUEST,
            "SerializationException",
            e.to_string(),
        )),
    }
}

/// Verify SigV4 when keys are configured (`body: None` for a streamed body).
fn authorize(ctx: &Ctx, parts: &http::request::Parts, body: Option<&[u8]>) -> Result<(), ApiError> {
    let Some((key, secret)) = &ctx.config.keys else {
        return Ok(());
    };
    let uri = parts
        .uri
        .path_and_query()
        .map(|p| p.as_str())
        .unwrap_or("/");
    let signed = sigv4::Signed {
        method: parts.method.as_str(),
        uri,
        headers: &parts.headers,
        body,
    };
    sigv4::verify(
        &signed,
        key,
        secret,
        "kinesisvideo",
        SystemWallClock.now(),
        None,
    )
    .map_err(|e| {
        tracing::info!(path = %parts.uri.path(), reason = %e, "mock-kvs refused a request");
        error(
            StatusCode::UNAUTHORIZED,
            "NotAuthorizedException",
            e.to_string(),
        )
    })
}

fn route(ctx: &Ctx, path: &str, input: &Value) -> Reply {
    match path {
        "/createStream" => create_stream(ctx, input),
        "/describeStream" => describe_stream(ctx, input),
        "/listStreams" => list_streams(ctx, input),
        "/deleteStream" => delete_stream(ctx, input),
        "/updateDataRetention" => update_retention(ctx, input),
        "/getDataEndpoint" => get_data_endpoint(ctx, input),
        "/tagStream" => tag_stream(ctx, input),
        "/listTagsForStream" => list_tags(ctx, input),
        "/listFragments" => archive::list_fragments(ctx, input),
        "/_mock/faults" => set_faults(ctx, input),
        "/_mock/stats" => Ok(ctx.stats_json()),
        other => Err(error(
            StatusCode::NOT_FOUND,
            "UnknownOperationException",
            format!("no operation at {other}"),
        )),
    }
}

fn str_field<'a>(input: &'a Value, name: &str) -> Option<&'a str> {
    input.get(name).and_then(Value::as_str)
}

/// KVS stream names: 1-256 of `[a-zA-Z0-9_.-]`.
fn valid_name(name: &str) -> bool {
    (1..=256).contains(&name.len())
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "_.-".contains(c))
}

/// "A Kinesis video stream can support up to 50 tags" (TagStream, kinesisvideo API reference).
const MAX_TAGS: usize = 50;

fn too_many_tags() -> ApiError {
    error(
        StatusCode::BAD_REQUEST,
        "TagsPerResourceExceededLimitException",
        "You have exceeded the limit of tags that you can associate with the resource. \
         A Kinesis video stream can support up to 50 tags.",
    )
}

/// The longest retention: "the maximum value is 87600 (ten years)" (UpdateDataRetention,
/// kinesisvideo API reference).
const MAX_RETENTION_HOURS: i64 = 87_600;

/// An optional integer member. A value that is not a JSON integer fitting the model's 32-bit
/// `integer` (a string, `1e18`, `2.5`) fails deserialization, which the service's framework
/// answers with `SerializationException`, HTTP 400 (aws-sdk-js #2093 shows KVS answering so).
fn int_field(input: &Value, name: &str) -> Result<Option<i64>, ApiError> {
    match input.get(name) {
        None | Some(Value::Null) => Ok(None),
        Some(v) => v
            .as_i64()
            .filter(|n| i32::try_from(*n).is_ok())
            .map(Some)
            .ok_or_else(|| {
                error(
                    StatusCode::BAD_REQUEST,
                    "SerializationException",
                    format!("{name} must be a 32-bit integer"),
                )
            }),
    }
}

fn tags_of(input: &Value) -> Result<BTreeMap<String, String>, ApiError> {
    match input.get("Tags") {
        None | Some(Value::Null) => Ok(BTreeMap::new()),
        Some(Value::Object(map)) => map
            .iter()
            .map(|(k, v)| {
                v.as_str()
                    .map(|v| (k.clone(), v.to_owned()))
                    .ok_or_else(|| invalid("tag values must be strings"))
            })
            .collect(),
        Some(_) => Err(invalid("Tags must be an object")),
    }
}

fn create_stream(ctx: &Ctx, input: &Value) -> Reply {
    let Some(name) = str_field(input, "StreamName") else {
        return Err(invalid("StreamName is required"));
    };
    if !valid_name(name) {
        return Err(invalid(format!(
            "StreamName `{name}` must be 1-256 characters of [a-zA-Z0-9_.-]"
        )));
    }
    let retention = int_field(input, "DataRetentionInHours")?.unwrap_or(0);
    if !(0..=MAX_RETENTION_HOURS).contains(&retention) {
        return Err(invalid(format!(
            "DataRetentionInHours must be 0 to {MAX_RETENTION_HOURS}"
        )));
    }
    let tags = tags_of(input)?;
    if tags.len() > MAX_TAGS {
        return Err(too_many_tags());
    }
    let mut streams = ctx.streams();
    if streams.streams.contains_key(name) {
        return Err(error(
            StatusCode::BAD_REQUEST,
            "ResourceInUseException",
            format!("The stream {name} already exists."),
        ));
    }
    let media_type = str_field(input, "MediaType").map(str::to_owned);
    let device = str_field(input, "DeviceName").map(str::to_owned);
    let stream = streams.create(
        name,
        &ctx.config.region,
        media_type,
        retention,
        device,
        tags,
    );
    if let Err(e) = streams.save() {
        tracing::warn!(error = %e, "mock-kvs cannot persist streams");
    }
    Ok(json!({ "StreamARN": stream.arn }))
}

/// The stream a request names by StreamName or StreamARN.
fn lookup<'a>(streams: &'a Streams, input: &Value) -> Result<&'a state::Stream, ApiError> {
    let (name, arn) = (
        str_field(input, "StreamName"),
        str_field(input, "StreamARN"),
    );
    if name.is_none() && arn.is_none() {
        return Err(invalid("StreamName or StreamARN is required"));
    }
    streams
        .find(name, arn)
        .ok_or_else(|| not_found(name.or(arn).unwrap_or_default()))
}

fn describe_stream(ctx: &Ctx, input: &Value) -> Reply {
    lookup(&ctx.streams(), input).map(|s| json!({ "StreamInfo": s.info() }))
}

fn list_streams(ctx: &Ctx, input: &Value) -> Reply {
    let max = input
        .get("MaxResults")
        .and_then(Value::as_u64)
        .unwrap_or(10_000)
        .clamp(1, 10_000) as usize;
    let start: usize = match str_field(input, "NextToken") {
        None => 0,
        Some(t) => match t.parse() {
            Ok(n) => n,
            Err(_) => return Err(invalid("NextToken is not one this endpoint issued")),
        },
    };
    let prefix = input
        .get("StreamNameCondition")
        .and_then(|c| c.get("ComparisonValue"))
        .and_then(Value::as_str)
        .unwrap_or("");
    let streams = ctx.streams();
    let matching: Vec<&state::Stream> = streams
        .streams
        .values()
        .filter(|s| s.name.starts_with(prefix))
        .collect();
    let page: Vec<Value> = matching
        .iter()
        .skip(start)
        .take(max)
        .map(|s| s.info())
        .collect();
    let mut out = json!({ "StreamInfoList": page });
    if start + max < matching.len() {
        out["NextToken"] = json!((start + max).to_string());
    }
    Ok(out)
}

fn delete_stream(ctx: &Ctx, input: &Value) -> Reply {
    let Some(arn) = str_field(input, "StreamARN") else {
        return Err(invalid("StreamARN is required"));
    };
    let mut streams = ctx.streams();
    let Some(stream) = streams.find(None, Some(arn)).cloned() else {
        return Err(not_found(arn));
    };
    if let Some(v) = str_field(input, "CurrentVersion") {
        if v != stream.version {
            return Err(error(
                StatusCode::BAD_REQUEST,
                "VersionMismatchException",
                "The stream version does not match.",
            ));
        }
    }
    streams.streams.remove(&stream.name);
    let _ = streams.save();
    Ok(json!({}))
}

fn update_retention(ctx: &Ctx, input: &Value) -> Reply {
    let Some(version) = str_field(input, "CurrentVersion") else {
        return Err(invalid("CurrentVersion is required"));
    };
    let Some(change) = int_field(input, "DataRetentionChangeInHours")?.filter(|c| *c >= 1) else {
        return Err(invalid("DataRetentionChangeInHours must be at least 1"));
    };
    let sign = match str_field(input, "Operation") {
        Some("INCREASE_DATA_RETENTION") => 1,
        Some("DECREASE_DATA_RETENTION") => -1,
        _ => {
            return Err(invalid(
                "Operation must be INCREASE_DATA_RETENTION or DECREASE_DATA_RETENTION",
            ))
        }
    };
    let mut streams = ctx.streams();
    let next = streams.next_version();
    let (name, arn) = (
        str_field(input, "StreamName"),
        str_field(input, "StreamARN"),
    );
    let Some(stream) = streams.find_mut(name, arn) else {
        return Err(not_found(name.or(arn).unwrap_or_default()));
    };
    if stream.version != version {
        return Err(error(
            StatusCode::BAD_REQUEST,
            "VersionMismatchException",
            "The stream version does not match.",
        ));
    }
    let retention = stream.retention_hours + sign * change;
    if !(0..=MAX_RETENTION_HOURS).contains(&retention) {
        return Err(invalid(format!(
            "retention would be {retention} hours, outside 0 to {MAX_RETENTION_HOURS}"
        )));
    }
    stream.retention_hours = retention;
    stream.version = next;
    let _ = streams.save();
    Ok(json!({}))
}

fn get_data_endpoint(ctx: &Ctx, input: &Value) -> Reply {
    let api = str_field(input, "APIName").unwrap_or("");
    const APIS: [&str; 8] = [
        "PUT_MEDIA",
        "GET_MEDIA",
        "LIST_FRAGMENTS",
        "GET_MEDIA_FOR_FRAGMENT_LIST",
        "GET_HLS_STREAMING_SESSION_URL",
        "GET_DASH_STREAMING_SESSION_URL",
        "GET_CLIP",
        "GET_IMAGES",
    ];
    if !APIS.contains(&api) {
        return Err(invalid(format!("APIName `{api}` is not a KVS data API")));
    }
    let endpoint = ctx.config.data_endpoint.as_deref().unwrap_or(&ctx.url);
    lookup(&ctx.streams(), input).map(|_| json!({ "DataEndpoint": endpoint }))
}

fn tag_stream(ctx: &Ctx, input: &Value) -> Reply {
    let tags = match tags_of(input) {
        Ok(t) if !t.is_empty() => t,
        Ok(_) => return Err(invalid("Tags must not be empty")),
        Err(r) => return Err(r),
    };
    let mut streams = ctx.streams();
    let (name, arn) = (
        str_field(input, "StreamName"),
        str_field(input, "StreamARN"),
    );
    if name.is_none() && arn.is_none() {
        return Err(invalid("StreamName or StreamARN is required"));
    }
    let Some(stream) = streams.find_mut(name, arn) else {
        return Err(not_found(name.or(arn).unwrap_or_default()));
    };
    // Checked on the merged set before anything changes: a refused request applies nothing.
    let mut merged = stream.tags.clone();
    merged.extend(tags);
    if merged.len() > MAX_TAGS {
        return Err(too_many_tags());
    }
    stream.tags = merged;
    let _ = streams.save();
    Ok(json!({}))
}

fn list_tags(ctx: &Ctx, input: &Value) -> Reply {
    lookup(&ctx.streams(), input).map(|s| json!({ "Tags": s.tags }))
}

/// The admin endpoint: `POST /_mock/faults {"faults": ["reset-after:2", ...]}` replaces the
/// faults in force (an empty list clears them); the answer lists them.
fn set_faults(ctx: &Ctx, input: &Value) -> Reply {
    if let Some(list) = input.get("faults") {
        let specs = list
            .as_array()
            .ok_or_else(|| invalid("faults must be a list of strings"))?;
        let parsed = specs
            .iter()
            .map(|v| {
                v.as_str()
                    .ok_or_else(|| invalid("faults must be strings"))
                    .and_then(|s| s.parse::<Fault>().map_err(invalid))
            })
            .collect::<Result<Vec<_>, _>>()?;
        *ctx.faults.lock().unwrap_or_else(|p| p.into_inner()) = parsed;
    }
    Ok(json!({ "faults": ctx.faults().iter().map(|f| format!("{f:?}")).collect::<Vec<_>>() }))
}
