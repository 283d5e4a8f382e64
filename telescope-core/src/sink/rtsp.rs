//! RTSP sink: an in-process gst-rtsp-server that serves the Telescope's encoded stream.
//!
//! One [`RtspServer`] serves many mounts; each mount is fed by one Telescope through an
//! `appsink` on its tee (the H.264 is encoded once, in the Telescope's pipeline) and serves a
//! *shared* media (`appsrc ! h264parse ! rtph264pay`), so neither encoding nor packetising cost
//! grows with viewers. The feed outlives the Telescope's pipeline: when the Telescope restarts,
//! viewers stay connected and the picture resumes. A viewer joining gets a key frame at once
//! (an upstream force-key-unit request reaches the encoder), not a grey screen for a GOP.
//!
//! Bad clients cannot exhaust it: connections come in through [`gate`], which bounds what a
//! request may cost before the server parses it, and failed logins are throttled per address
//! and logged in bounded summaries ([`refusals`]).

mod gate;
mod refusals;

use refusals::Refusal;

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr, TcpListener};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};
use std::thread::JoinHandle;

use gst::glib;
use gst::prelude::*;
use gst_app::{AppSink, AppSrc};
use gst_rtsp_server::prelude::*;
use gst_rtsp_server::subclass::prelude::ObjectSubclassIsExt;

use crate::error::TelescopeError;

/// Basic-authentication credentials. `Debug` never shows the password.
#[derive(Clone, PartialEq, Eq)]
pub struct BasicAuth {
    /// User name.
    pub user: String,
    password: String,
}

impl BasicAuth {
    /// Credentials clients must present.
    pub fn new(user: impl Into<String>, password: impl Into<String>) -> Self {
        BasicAuth {
            user: user.into(),
            password: password.into(),
        }
    }
}

impl std::fmt::Debug for BasicAuth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BasicAuth")
            .field("user", &self.user)
            .field("password", &"<redacted>")
            .finish()
    }
}

/// Where and how the RTSP server listens.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RtspServerConfig {
    /// Address to bind (default `0.0.0.0`: every interface).
    pub address: String,
    /// TCP port (default 8554; 0 picks a free one, see [`RtspServer::port`]).
    pub port: u16,
    /// Basic authentication (default none).
    pub auth: Option<BasicAuth>,
}

impl Default for RtspServerConfig {
    fn default() -> Self {
        RtspServerConfig {
            address: "0.0.0.0".to_owned(),
            port: 8554,
            auth: None,
        }
    }
}

/// Counters of an RTSP server.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RtspStats {
    /// Clients connected now.
    pub clients: u64,
    /// Clients that ever connected.
    pub clients_total: u64,
    /// Requests refused with 401 that carried no credentials (the usual first challenge).
    pub auth_challenges: u64,
    /// Requests refused with 401 that carried wrong credentials.
    pub auth_failures: u64,
    /// Requests refused with 401 without checking, their address being in a refusal period
    /// after repeated failures.
    pub auth_throttled: u64,
    /// Connections closed for a request over a size limit or framed ambiguously.
    pub requests_refused: u64,
    /// Connections closed at once, the server or their address having too many open.
    pub connections_refused: u64,
    /// Per mount, sorted by path.
    pub mounts: Vec<MountStats>,
}

/// Counters of one RTSP mount.
#[derive(Debug, Clone, Default, PartialEq, Eq, PartialOrd, Ord)]
pub struct MountStats {
    /// The mount's path, e.g. `/cam1`.
    pub path: String,
    /// Access units handed to the media (counted once however many viewers share it).
    pub delivered: u64,
    /// Media instances alive now (viewers of one mount share one media).
    pub medias: usize,
    /// Media instances ever created for this mount.
    pub medias_total: u64,
    /// Key frames asked of this mount's encoder (a viewer starting to play, a media starting).
    pub key_frame_requests: u64,
}

/// The client address of the request being handled.
fn peer_ip(ctx: &gst_rtsp_server::RTSPContext) -> Option<IpAddr> {
    use glib::translate::ToGlibPtr;
    let raw: *const gst_rtsp_server::ffi::GstRTSPContext = ctx.to_glib_none().0;
    // SAFETY: `ctx` is the live context of the request this thread is handling; its connection
    // (when set) outlives the call and owns the returned string, which is copied at once.
    unsafe {
        let conn = (*raw).conn;
        if conn.is_null() {
            return None;
        }
        let ip = gst_rtsp::ffi::gst_rtsp_connection_get_ip(conn);
        if ip.is_null() {
            return None;
        }
        std::ffi::CStr::from_ptr(ip).to_str().ok()?.parse().ok()
    }
}

/// An authenticator that throttles and counts what it refuses. It never waits: an address in
/// a refusal period is answered 401 (with `Retry-After`) at once, without its credentials being
/// checked, so the one thread serving every client is never held.
mod counting_auth {
    use super::*;
    use gst_rtsp_server::subclass::prelude::*;
    use refusals::{Refusal, Refusals};
    use std::time::Instant;

    #[derive(Default)]
    pub struct Imp {
        pub(super) refusals: OnceLock<Arc<Refusals>>,
        pub(super) challenges: AtomicU64,
    }

    #[glib::object_subclass]
    impl ObjectSubclass for Imp {
        const NAME: &'static str = "TelescopeCountingAuth";
        type Type = CountingAuth;
        type ParentType = gst_rtsp_server::RTSPAuth;
    }

    impl ObjectImpl for Imp {}

    impl RTSPAuthImpl for Imp {
        /// Runs once per request that needs a login (the server then answers 401 itself when no
        /// token was granted).
        fn authenticate(&self, ctx: &gst_rtsp_server::RTSPContext) -> bool {
            let (Some(refusals), Some(ip)) = (self.refusals.get(), peer_ip(ctx)) else {
                return self.parent_authenticate(ctx);
            };
            if refusals
                .throttle()
                .refused_for(ip, Instant::now())
                .is_some()
            {
                refusals.note(Refusal::Throttled, ip);
                return false;
            }
            let ok = self.parent_authenticate(ctx);
            if ctx.token().is_some() {
                refusals.throttle().succeeded(ip);
                return ok;
            }
            let sent = ctx
                .request()
                .is_some_and(|r| !r.parse_auth_credentials().is_empty());
            if sent {
                let penalty = refusals.throttle().failed(ip, Instant::now());
                refusals.note(Refusal::WrongCredentials, ip);
                if let Some(penalty) = penalty {
                    tracing::debug!(client = %ip, ?penalty, "RTSP logins refused for a while");
                }
            } else {
                self.challenges.fetch_add(1, Ordering::Relaxed);
            }
            ok
        }

        fn generate_authenticate_header(&self, ctx: &gst_rtsp_server::RTSPContext) {
            self.parent_generate_authenticate_header(ctx);
            let (Some(refusals), Some(ip)) = (self.refusals.get(), peer_ip(ctx)) else {
                return;
            };
            let wait = refusals.throttle().refused_for(ip, Instant::now());
            if let (Some(wait), Some(response)) = (wait, ctx.response()) {
                let secs = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
                response.add_header(gst_rtsp::RTSPHeaderField::RetryAfter, &secs.to_string());
            }
        }
    }

    glib::wrapper! {
        pub struct CountingAuth(ObjectSubclass<Imp>) @extends gst_rtsp_server::RTSPAuth;
    }
}

/// The H.264 hand-over from a Telescope pipeline to the media serving one mount.
#[derive(Debug, Default)]
struct Feed {
    state: Mutex<FeedState>,
    delivered: AtomicU64,
    medias_total: AtomicU64,
    key_frame_requests: AtomicU64,
}

#[derive(Debug, Default)]
struct FeedState {
    /// Media sources attached.
    sources: Vec<MediaSource>,
    /// The Telescope's appsink, to ask its encoder for a key frame.
    upstream: Option<glib::WeakRef<AppSink>>,
    removed: bool,
}

#[derive(Debug)]
/// One media's appsrc: it waits for a key frame until it has had one, and maps the encoder's
/// timestamps onto its own running time.
struct MediaSource {
    src: AppSrc,
    waiting: bool,
    /// An encoder timestamp and the media running time it was given.
    anchor: Option<(gst::ClockTime, gst::ClockTime)>,
    last_out: Option<gst::ClockTime>,
}

/// How far the mapped timeline may drift from the media's clock before it is anchored again.
const MAX_DRIFT: gst::ClockTime = gst::ClockTime::from_mseconds(500);

impl MediaSource {
    fn new(src: AppSrc) -> Self {
        MediaSource {
            src,
            waiting: true,
            anchor: None,
            last_out: None,
        }
    }

    /// The media running time for an encoder timestamp: the encoder's frame spacing is kept
    /// exactly (RTP timestamps as even as the frame rate, whatever the encoder's own delay), the
    /// timeline is anchored at the media's clock on the first buffer, again when the encoder's
    /// timeline starts over (a Telescope restart) or drifts from the clock by more than
    /// [`MAX_DRIFT`]. `None` when the media has no clock yet (its appsrc then stamps on arrival).
    fn map(&mut self, pts: Option<gst::ClockTime>) -> Option<gst::ClockTime> {
        let now = self.src.current_running_time()?;
        let pts = pts?;
        let mapped = match self.anchor {
            Some((from, to)) if pts >= from => Some(to + (pts - from)),
            _ => None,
        };
        let out = match mapped {
            Some(out) if out.absdiff(now) <= MAX_DRIFT => out,
            _ => {
                // Never behind the previous buffer.
                let start = match self.last_out {
                    Some(last) => now.max(last + gst::ClockTime::from_mseconds(1)),
                    None => now,
                };
                self.anchor = Some((pts, start));
                start
            }
        };
        if self.last_out.is_some_and(|last| out <= last) {
            self.anchor = None;
            return None;
        }
        self.last_out = Some(out);
        Some(out)
    }
}

impl Feed {
    fn lock(&self) -> MutexGuard<'_, FeedState> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn push(&self, buffer: &gst::BufferRef) {
        let mut s = self.lock();
        if s.sources.is_empty() {
            return;
        }
        let key = !buffer.flags().contains(gst::BufferFlags::DELTA_UNIT);
        let pts = buffer.pts();
        s.sources.retain_mut(|m| {
            if m.waiting && !key {
                return true;
            }
            m.waiting = false;
            let mut out = buffer.copy();
            if let Some(b) = out.get_mut() {
                // Without a mapped time the appsrc stamps the buffer on arrival (do-timestamp).
                let at = m.map(pts);
                b.set_pts(at);
                b.set_dts(at);
            }
            // A full queue drops (leaky), so only a shut-down media refuses: forget it then.
            m.src.push_buffer(out).is_ok()
        });
        self.delivered.fetch_add(1, Ordering::Relaxed);
    }

    fn request_key_frame(&self) {
        self.key_frame_requests.fetch_add(1, Ordering::Relaxed);
        let upstream = self.lock().upstream.as_ref().and_then(|w| w.upgrade());
        if let Some(sink) = upstream {
            let event = gst_video::UpstreamForceKeyUnitEvent::builder()
                .all_headers(true)
                .build();
            if !sink.send_event(event) {
                tracing::debug!("key frame request not handled upstream");
            }
        }
    }
}

/// A mount point on an [`RtspServer`]; used as a sink by one Telescope at a time.
#[derive(Clone)]
pub struct RtspMount {
    path: String,
    url: String,
    feed: Arc<Feed>,
}

impl std::fmt::Debug for RtspMount {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RtspMount").field("url", &self.url).finish()
    }
}

impl PartialEq for RtspMount {
    fn eq(&self, other: &Self) -> bool {
        Arc::ptr_eq(&self.feed, &other.feed)
    }
}

impl RtspMount {
    /// The mount path (always starting with `/`).
    pub fn path(&self) -> &str {
        &self.path
    }
    /// The URL viewers open.
    pub fn url(&self) -> &str {
        &self.url
    }

    pub(crate) fn preflight(&self) -> Result<(), TelescopeError> {
        if self.feed.lock().removed {
            return Err(TelescopeError::Config(format!(
                "RTSP mount {} was removed",
                self.path
            )));
        }
        Ok(())
    }

    /// The branch: `queue (leaky) ! h264parse ! capsfilter(byte-stream, au) ! appsink`.
    pub(crate) fn build(
        &self,
        pipeline: &gst::Pipeline,
        index: usize,
    ) -> Result<gst::Element, TelescopeError> {
        let caps = super::h264_caps("byte-stream");
        let appsink = AppSink::builder()
            .caps(&caps)
            .sync(false)
            .max_buffers(30)
            .drop(true)
            .build();
        let feed = Arc::downgrade(&self.feed);
        appsink.set_callbacks(
            gst_app::AppSinkCallbacks::builder()
                .new_sample(move |sink| {
                    let sample = sink.pull_sample().map_err(|_| gst::FlowError::Eos)?;
                    if let (Some(feed), Some(buffer)) = (feed.upgrade(), sample.buffer()) {
                        feed.push(buffer);
                    }
                    Ok(gst::FlowSuccess::Ok)
                })
                .build(),
        );
        self.feed.lock().upstream = Some(appsink.downgrade());
        let (queue, parse) = super::h264_branch(pipeline, index, &caps, appsink.upcast_ref())?;
        // Viewers must never hold back the other sinks: drop the oldest when the media lags.
        queue.set_property("max-size-buffers", 30u32);
        queue.set_property("max-size-time", 0u64);
        queue.set_property("max-size-bytes", 0u32);
        queue.set_property_from_str("leaky", "downstream");
        // SPS/PPS with every key frame: a viewer can start at any of them.
        parse.set_property("config-interval", -1i32);
        // A viewer may already be waiting: start its picture with a key frame.
        self.feed.request_key_frame();
        tracing::info!(url = %self.url, "RTSP sink");
        Ok(queue)
    }
}

type Mounts = Mutex<HashMap<String, Arc<Feed>>>;

struct Inner {
    server: gst_rtsp_server::RTSPServer,
    main_loop: glib::MainLoop,
    thread: Mutex<Option<JoinHandle<()>>>,
    port: u16,
    host: String,
    mounts: Arc<Mounts>,
    /// The authenticator, when logins are required.
    auth: Option<counting_auth::CountingAuth>,
    refusals: Arc<refusals::Refusals>,
    /// Stopped first, so that no connection is handed to a server going away.
    gate: Mutex<Option<gate::Gate>>,
    clients: Arc<AtomicU64>,
    clients_total: Arc<AtomicU64>,
}

impl Drop for Inner {
    fn drop(&mut self) {
        drop(self.gate.lock().unwrap_or_else(|p| p.into_inner()).take());
        self.refusals.flush_now();
        // `quit()` before the thread has entered `run()` would be forgotten by it (run() marks
        // the loop running again) and the join below would wait for ever: ask the loop's own
        // context to quit it, which happens on its first iteration whenever that is.
        let main_loop = self.main_loop.clone();
        self.main_loop
            .context()
            .invoke_with_priority(glib::Priority::HIGH, move || main_loop.quit());
        self.main_loop.quit();
        if let Some(t) = self.thread.lock().unwrap_or_else(|p| p.into_inner()).take() {
            let _ = t.join();
        }
    }
}

/// An in-process RTSP server. Cheap to clone; stops when the last clone is dropped.
#[derive(Clone)]
pub struct RtspServer {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for RtspServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RtspServer")
            .field("host", &self.inner.host)
            .field("port", &self.inner.port)
            .finish()
    }
}

impl PartialEq for RtspServer {
    fn eq(&self, other: &Self) -> bool {
        Arc::ptr_eq(&self.inner, &other.inner)
    }
}

/// The path of an RTSP request URI (`rtsp://host:port/cam/stream=0?x` -> `/cam/stream=0`).
fn url_path(uri: &str) -> String {
    let rest = uri.split_once("://").map_or(uri, |(_, r)| r);
    let path = rest.find('/').map_or("/", |i| &rest[i..]);
    path.split(['?', '#']).next().unwrap_or("/").to_owned()
}

/// The mount a request path falls under: the longest mount path equal to it or followed by
/// `/` in it (a stream's control URL, `/cam/stream=0`), as the server's own matching does.
fn mount_of(feeds: &HashMap<String, Arc<Feed>>, path: &str) -> Option<Arc<Feed>> {
    let path = path.trim_end_matches('/');
    feeds
        .iter()
        .filter(|(m, _)| {
            path == m.as_str()
                || path
                    .strip_prefix(m.as_str())
                    .is_some_and(|r| r.starts_with('/'))
        })
        .max_by_key(|(m, _)| m.len())
        .map(|(_, f)| f.clone())
}

/// Normalise a mount path: one leading `/`, no trailing `/`.
pub fn normalize_mount_path(path: &str) -> Result<String, TelescopeError> {
    let trimmed = path.trim().trim_matches('/');
    if trimmed.is_empty()
        || trimmed
            .chars()
            .any(|c| c.is_whitespace() || c == '?' || c == '#')
    {
        return Err(TelescopeError::Config(format!(
            "`{path}` is not a usable RTSP mount path (e.g. /camera1)"
        )));
    }
    Ok(format!("/{trimmed}"))
}

impl RtspServer {
    /// Bind and start serving (with no mounts yet).
    pub fn start(config: RtspServerConfig) -> Result<Self, TelescopeError> {
        crate::init()?;
        // We accept connections ourselves (see `gate`); the server never listens.
        let listener = listen(&config.address, config.port)?;
        let server = gst_rtsp_server::RTSPServer::new();
        // A second line behind the gate's own body limit.
        server.set_content_length_limit(gate::MAX_BODY_BYTES);
        let refusals = Arc::new(refusals::Refusals::default());
        let auth = config
            .auth
            .as_ref()
            .map(|basic| require_login(&server, basic, &refusals));
        let mounts: Arc<Mounts> = Arc::default();
        let (clients, clients_total) = count_clients(&server, &mounts);
        let context = glib::MainContext::new();
        let cleanup = cleanup_source(&server, &refusals);
        cleanup.attach(Some(&context));
        let gate = gate::Gate::start(listener, refusals.clone(), hand_over(&server, &context))
            .map_err(|e| TelescopeError::Pipeline(format!("cannot start the RTSP gate: {e}")))?;
        let port = gate.local_addr().port();
        let main_loop = glib::MainLoop::new(Some(&context), false);
        let thread = {
            let main_loop = main_loop.clone();
            std::thread::Builder::new()
                .name("telescope-rtsp".into())
                .spawn(move || {
                    main_loop.run();
                    cleanup.destroy();
                })
                .map_err(|e| {
                    TelescopeError::Pipeline(format!("cannot start the RTSP thread: {e}"))
                })?
        };
        tracing::info!(address = %config.address, port, auth = config.auth.is_some(), "RTSP server listening");
        let inner = Inner {
            server,
            main_loop,
            thread: Mutex::new(Some(thread)),
            port,
            host: viewer_host(&config.address),
            mounts,
            auth,
            refusals,
            gate: Mutex::new(Some(gate)),
            clients,
            clients_total,
        };
        Ok(RtspServer {
            inner: Arc::new(inner),
        })
    }

    /// The port the server listens on (the one picked, when configured with 0).
    pub fn port(&self) -> u16 {
        self.inner.port
    }

    /// The URL of a mount path, as viewers on this machine open it.
    pub fn url(&self, path: &str) -> String {
        format!("rtsp://{}:{}{}", self.inner.host, self.inner.port, path)
    }

    fn mounts(&self) -> MutexGuard<'_, HashMap<String, Arc<Feed>>> {
        self.inner.mounts.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Add a mount; a path without a leading `/` gets one. Errors if the path is taken.
    pub fn mount(&self, path: &str) -> Result<RtspMount, TelescopeError> {
        let path = normalize_mount_path(path)?;
        let mut mounts = self.mounts();
        if mounts.contains_key(&path) {
            return Err(TelescopeError::Config(format!(
                "RTSP mount {path} already exists"
            )));
        }
        let feed = Arc::new(Feed::default());
        let factory = gst_rtsp_server::RTSPMediaFactory::new();
        factory.set_shared(true);
        factory.set_protocols(gst_rtsp::RTSPLowerTrans::UDP | gst_rtsp::RTSPLowerTrans::TCP);
        // No secret and nothing user-supplied in it: a fixed description of the media.
        // The feed's key frames already carry SPS/PPS (its h264parse inserts them): the payloader
        // must not insert them again, as it would before *each* slice of a multi-slice key frame,
        // which splits that frame in two for players (a parameter set after a slice starts a new
        // access unit) with one timestamp repeated.
        factory.set_launch(
            "( appsrc name=telescope-src is-live=true format=time do-timestamp=true ! h264parse ! rtph264pay name=pay0 pt=96 config-interval=0 )",
        );
        if self.inner.auth.is_some() {
            factory.add_role_from_structure(
                &gst::Structure::builder("viewer")
                    .field(gst_rtsp_server::RTSP_PERM_MEDIA_FACTORY_ACCESS, true)
                    .field(gst_rtsp_server::RTSP_PERM_MEDIA_FACTORY_CONSTRUCT, true)
                    .build(),
            );
        }
        let weak = Arc::downgrade(&feed);
        factory.connect_media_configure(move |_, media| {
            let Some(feed) = weak.upgrade() else { return };
            let Some(src) = media
                .element()
                .downcast::<gst::Bin>()
                .ok()
                .and_then(|bin| bin.by_name("telescope-src"))
            else {
                return;
            };
            let Ok(src) = src.downcast::<AppSrc>() else {
                return;
            };
            let caps = gst::Caps::builder("video/x-h264")
                .field("stream-format", "byte-stream")
                .field("alignment", "au")
                .build();
            src.set_caps(Some(&caps));
            src.set_property("max-buffers", 60u64);
            src.set_property_from_str("leaky-type", "downstream");
            src.set_property("block", false);
            feed.lock().sources.push(MediaSource::new(src));
            feed.medias_total.fetch_add(1, Ordering::Relaxed);
            feed.request_key_frame();
        });
        let Some(points) = self.inner.server.mount_points() else {
            return Err(TelescopeError::Pipeline(
                "RTSP server has no mount points".into(),
            ));
        };
        points.add_factory(&path, factory);
        mounts.insert(path.clone(), feed.clone());
        tracing::info!(path = %path, "RTSP mount added");
        Ok(RtspMount {
            url: self.url(&path),
            path,
            feed,
        })
    }

    /// Remove a mount: new viewers get 404, current viewers see the end of the stream.
    pub fn unmount(&self, path: &str) -> Result<(), TelescopeError> {
        let path = normalize_mount_path(path)?;
        let feed = self
            .mounts()
            .remove(&path)
            .ok_or_else(|| TelescopeError::Config(format!("no RTSP mount {path}")))?;
        if let Some(points) = self.inner.server.mount_points() {
            points.remove_factory(&path);
        }
        let mut s = feed.lock();
        s.removed = true;
        for MediaSource { src, .. } in s.sources.drain(..) {
            let _ = src.end_of_stream();
        }
        tracing::info!(path = %path, "RTSP mount removed");
        Ok(())
    }

    /// Counters: clients, refusals, per-mount delivery.
    pub fn stats(&self) -> RtspStats {
        let mut mounts: Vec<MountStats> = self
            .mounts()
            .iter()
            .map(|(p, f)| MountStats {
                path: p.clone(),
                delivered: f.delivered.load(Ordering::Relaxed),
                medias: f.lock().sources.len(),
                medias_total: f.medias_total.load(Ordering::Relaxed),
                key_frame_requests: f.key_frame_requests.load(Ordering::Relaxed),
            })
            .collect();
        mounts.sort();
        RtspStats {
            clients: self.inner.clients.load(Ordering::Relaxed),
            clients_total: self.inner.clients_total.load(Ordering::Relaxed),
            auth_challenges: self
                .inner
                .auth
                .as_ref()
                .map_or(0, |a| a.imp().challenges.load(Ordering::Relaxed)),
            auth_failures: self.inner.refusals.count(Refusal::WrongCredentials),
            auth_throttled: self.inner.refusals.count(Refusal::Throttled),
            requests_refused: self.inner.refusals.count(Refusal::Oversized),
            connections_refused: self.inner.refusals.count(Refusal::Crowded),
            mounts,
        }
    }
}

/// The listening socket for `address:port` (IPv4 or IPv6).
fn listen(address: &str, port: u16) -> Result<TcpListener, TelescopeError> {
    let bind: SocketAddr = format!("{address}:{port}")
        .parse()
        .or_else(|_| format!("[{address}]:{port}").parse())
        .map_err(|_| TelescopeError::Config(format!("`{address}` is not an IP address to bind")))?;
    TcpListener::bind(bind).map_err(|e| {
        TelescopeError::Config(format!(
            "cannot listen for RTSP on {bind}: {e} (choose another RTSP port)"
        ))
    })
}

/// Basic authentication on every mount, its failures counted by `refusals`.
fn require_login(
    server: &gst_rtsp_server::RTSPServer,
    basic: &BasicAuth,
    refusals: &Arc<refusals::Refusals>,
) -> counting_auth::CountingAuth {
    let auth: counting_auth::CountingAuth = glib::Object::new();
    let _ = auth.imp().refusals.set(refusals.clone());
    let token = gst_rtsp_server::RTSPToken::builder()
        .field(gst_rtsp_server::RTSP_TOKEN_MEDIA_FACTORY_ROLE, "viewer")
        .build();
    let basic = gst_rtsp_server::RTSPAuth::make_basic(&basic.user, &basic.password);
    auth.add_basic(basic.as_str(), &token);
    server.set_auth(Some(&auth));
    auth
}

/// Count viewers (now and in total), and ask the played mount for a key frame when a viewer
/// plays, so that it gets a picture at once.
fn count_clients(
    server: &gst_rtsp_server::RTSPServer,
    mounts: &Arc<Mounts>,
) -> (Arc<AtomicU64>, Arc<AtomicU64>) {
    let clients = Arc::new(AtomicU64::new(0));
    let clients_total = Arc::new(AtomicU64::new(0));
    let (now, total) = (clients.clone(), clients_total.clone());
    let feeds = Arc::downgrade(mounts);
    server.connect_client_connected(move |_, client| {
        now.fetch_add(1, Ordering::Relaxed);
        total.fetch_add(1, Ordering::Relaxed);
        let gone = now.clone();
        client.connect_closed(move |_| {
            gone.fetch_sub(1, Ordering::Relaxed);
        });
        let feeds = feeds.clone();
        client.connect_play_request(move |_, ctx| {
            // Only the mount being played: the other mounts' streams (and their KVS
            // fragments) are left alone.
            let Some(feeds) = feeds.upgrade() else { return };
            let path = ctx.uri().map(|u| url_path(u.request_uri().as_str()));
            let played: Vec<Arc<Feed>> = {
                let feeds = feeds.lock().unwrap_or_else(|p| p.into_inner());
                match path.as_deref().and_then(|p| mount_of(&feeds, p)) {
                    Some(feed) => vec![feed],
                    // Not a mount we know: every mount, so that no viewer waits.
                    None => feeds.values().cloned().collect(),
                }
            };
            for feed in played {
                feed.request_key_frame();
            }
        });
    });
    (clients, clients_total)
}

/// Every 2 s: time out the sessions of clients that vanished without TEARDOWN, and log the
/// refusals' summary.
fn cleanup_source(
    server: &gst_rtsp_server::RTSPServer,
    refusals: &Arc<refusals::Refusals>,
) -> glib::Source {
    let pool = server.session_pool();
    let summaries = refusals.clone();
    glib::timeout_source_new(
        std::time::Duration::from_secs(2),
        None,
        glib::Priority::DEFAULT,
        move || {
            if let Some(pool) = &pool {
                pool.cleanup();
            }
            summaries.flush();
            glib::ControlFlow::Continue
        },
    )
}

/// How the gate hands an accepted connection to the server.
fn hand_over(
    server: &gst_rtsp_server::RTSPServer,
    context: &glib::MainContext,
) -> Box<gate::HandOver> {
    let (server, context) = (server.clone(), context.clone());
    Box::new(move |fd: std::os::fd::OwnedFd, ip: IpAddr, port: u16| {
        let server = server.clone();
        // The server serves a connection in the context of the source that hands it over:
        // hand it over from a source of the server's own context.
        context.invoke(move || {
            let handed = gst_rtsp_server::gio::Socket::from_fd(fd)
                .map_err(|e| e.to_string())
                .and_then(|socket| {
                    server
                        .transfer_connection(socket, &ip.to_string(), port.into(), None)
                        .map_err(|e| e.to_string())
                });
            if let Err(error) = handed {
                tracing::debug!(client = %ip, %error, "RTSP connection not taken");
            }
        });
    })
}

/// The host viewers on this machine use for a bind address.
fn viewer_host(address: &str) -> String {
    match address {
        "0.0.0.0" | "::" => "127.0.0.1".to_owned(),
        a if a.contains(':') => format!("[{a}]"),
        a => a.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_uris_find_their_mount_by_whole_path_segments() {
        assert_eq!(
            url_path("rtsp://127.0.0.1:8554/cam/stream=0"),
            "/cam/stream=0"
        );
        assert_eq!(url_path("rtsp://[::1]:8554/cam?token=x"), "/cam");
        assert_eq!(url_path("rtsp://host:8554"), "/");
        let feeds: HashMap<String, Arc<Feed>> = ["/cam", "/cam2", "/cam/inner"]
            .into_iter()
            .map(|p| (p.to_owned(), Arc::new(Feed::default())))
            .collect();
        let found = |path: &str| {
            mount_of(&feeds, path).map(|f| {
                feeds
                    .iter()
                    .find(|(_, g)| Arc::ptr_eq(g, &f))
                    .map(|(p, _)| p.clone())
                    .unwrap()
            })
        };
        assert_eq!(found("/cam").as_deref(), Some("/cam"));
        assert_eq!(found("/cam/").as_deref(), Some("/cam"));
        assert_eq!(found("/cam/stream=0").as_deref(), Some("/cam"));
        assert_eq!(found("/cam2/stream=0").as_deref(), Some("/cam2"));
        assert_eq!(found("/cam/inner/stream=0").as_deref(), Some("/cam/inner"));
        assert_eq!(found("/camera"), None);
        assert_eq!(found("/"), None);
    }
}
