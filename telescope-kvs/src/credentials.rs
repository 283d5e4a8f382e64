//! AWS credentials for KVS: where they come from, keeping temporary ones fresh, and the
//! credentials file kvssink's `credential-path` reads.
//!
//! Secrets never reach a log line, an error or a `Debug` print: [`Credentials`] (from
//! `aws-credential-types`) redacts them, and so does every type here.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, SystemTime};

pub use aws_credential_types::provider::{ProvideCredentials, SharedCredentialsProvider};
pub use aws_credential_types::Credentials;

pub use crate::clock::{SystemWallClock, VirtualWallClock, WallClock};

/// Why credentials could not be had or kept.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CredentialsError {
    /// The provider failed; the message never contains secrets.
    #[error("credentials provider failed: {0}")]
    Provider(String),
    /// The provider handed out credentials that had already expired.
    #[error("the credentials provider returned credentials that expired at {expired_at}")]
    AlreadyExpired { expired_at: String },
    /// The credentials file could not be written or read.
    #[error("credentials file {path}: {reason}")]
    File { path: PathBuf, reason: String },
}

/// Where credentials come from.
#[derive(Clone)]
#[non_exhaustive]
pub enum CredentialSource {
    /// Fixed keys (with a session token for temporary keys).
    Static {
        access_key_id: String,
        secret_access_key: String,
        session_token: Option<String>,
    },
    /// `AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`, `AWS_SESSION_TOKEN`.
    Environment,
    /// The `aws-config` default chain: environment, profiles, SSO, web identity, ECS and
    /// Greengrass container credentials, EC2 instance metadata.
    DefaultChain,
    /// Any provider (a custom one, or [`faults::FaultInjectingProvider`]).
    Provider(SharedCredentialsProvider),
}

impl std::fmt::Debug for CredentialSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            CredentialSource::Static {
                access_key_id,
                session_token,
                ..
            } => f
                .debug_struct("Static")
                .field("access_key_id", access_key_id)
                .field("secret_access_key", &"** redacted **")
                .field(
                    "session_token",
                    &session_token.as_ref().map(|_| "** redacted **"),
                )
                .finish(),
            CredentialSource::Environment => f.write_str("Environment"),
            CredentialSource::DefaultChain => f.write_str("DefaultChain"),
            CredentialSource::Provider(_) => f.write_str("Provider(..)"),
        }
    }
}

impl CredentialSource {
    /// A provider for this source; `region` scopes the default chain's lookups (SSO, STS) and
    /// spares it from asking instance metadata for one.
    pub async fn provider(&self, region: &str) -> SharedCredentialsProvider {
        match self {
            CredentialSource::Static {
                access_key_id,
                secret_access_key,
                session_token,
            } => SharedCredentialsProvider::new(Credentials::new(
                access_key_id,
                secret_access_key,
                session_token.clone(),
                None,
                "telescope-static",
            )),
            CredentialSource::Environment => SharedCredentialsProvider::new(
                aws_config::environment::EnvironmentVariableCredentialsProvider::new(),
            ),
            CredentialSource::DefaultChain => SharedCredentialsProvider::new(
                aws_config::default_provider::credentials::DefaultCredentialsChain::builder()
                    .region(aws_config::Region::new(region.to_owned()))
                    .build()
                    .await,
            ),
            CredentialSource::Provider(p) => p.clone(),
        }
    }
}

/// When to renew and how to retry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RefreshPolicy {
    /// Renew this long before expiry (default 2 minutes).
    pub margin: Duration,
    /// Wait after the first failed renewal (default 1 s); doubles per failure.
    pub initial_backoff: Duration,
    /// Longest wait between retries (default 60 s).
    pub max_backoff: Duration,
    /// How often to re-read credentials that carry no expiry (default 1 hour).
    pub static_recheck: Duration,
}

impl Default for RefreshPolicy {
    fn default() -> Self {
        RefreshPolicy {
            margin: Duration::from_secs(120),
            initial_backoff: Duration::from_secs(1),
            max_backoff: Duration::from_secs(60),
            static_recheck: Duration::from_secs(3600),
        }
    }
}

/// What the refresher reports.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RefreshStatus {
    /// Expiry of the credentials in use (`None`: no expiry, or none yet).
    pub valid_until: Option<SystemTime>,
    /// When credentials were last obtained.
    pub last_refresh: Option<SystemTime>,
    /// Successful refreshes.
    pub refreshes: u64,
    /// Failed attempts in a row (0 when the last one worked).
    pub consecutive_failures: u32,
    /// Failed attempts in total.
    pub failures: u64,
    /// The last failure's message (never a secret).
    pub last_error: Option<String>,
}

/// The refresh logic, driven by explicit time: call [`CredentialRefresher::tick`] and wait for
/// what it returns. [`RefresherHandle`] runs it on a thread; tests drive it on a virtual clock.
#[derive(Debug)]
pub struct CredentialRefresher {
    provider: SharedCredentialsProvider,
    policy: RefreshPolicy,
    file: Option<CredentialsFile>,
    current: Option<Credentials>,
    status: RefreshStatus,
    next_attempt: Option<SystemTime>,
}

impl CredentialRefresher {
    /// A refresher with nothing fetched yet; the first tick fetches.
    pub fn new(
        provider: SharedCredentialsProvider,
        policy: RefreshPolicy,
        file: Option<CredentialsFile>,
    ) -> Self {
        CredentialRefresher {
            provider,
            policy,
            file,
            current: None,
            status: RefreshStatus::default(),
            next_attempt: None,
        }
    }

    /// The credentials in use, if any.
    pub fn current(&self) -> Option<&Credentials> {
        self.current.as_ref()
    }

    /// The current status.
    pub fn status(&self) -> &RefreshStatus {
        &self.status
    }

    /// Whether a refresh is due at `now`.
    pub fn is_due(&self, now: SystemTime) -> bool {
        self.next_attempt.is_none_or(|t| now >= t)
    }

    /// Refresh if due; returns how long to wait before the next tick.
    pub async fn tick(&mut self, now: SystemTime) -> Duration {
        if self.is_due(now) {
            match self.fetch(now).await {
                Ok(creds) => self.adopt(creds, now),
                Err(e) => self.fail(e, now),
            }
        }
        self.next_attempt
            .and_then(|t| t.duration_since(now).ok())
            .unwrap_or(Duration::ZERO)
    }

    async fn fetch(&self, now: SystemTime) -> Result<Credentials, CredentialsError> {
        let creds = self
            .provider
            .provide_credentials()
            .await
            .map_err(|e| CredentialsError::Provider(error_chain(&e)))?;
        if let Some(expiry) = creds.expiry() {
            if expiry <= now {
                return Err(CredentialsError::AlreadyExpired {
                    expired_at: rfc3339(expiry),
                });
            }
        }
        Ok(creds)
    }

    fn adopt(&mut self, creds: Credentials, now: SystemTime) {
        if let Some(file) = &self.file {
            if let Err(e) = file.write(&creds) {
                // The file is how kvssink gets its keys: failing to write it is a failure.
                self.fail(e, now);
                return;
            }
        }
        self.status.valid_until = creds.expiry();
        self.status.last_refresh = Some(now);
        self.status.refreshes += 1;
        self.status.consecutive_failures = 0;
        self.next_attempt = Some(match creds.expiry() {
            // Renew a margin before expiry, but never sooner than half the remaining lifetime
            // (short-lived credentials would otherwise be renewed in a tight loop).
            Some(expiry) => {
                let left = expiry.duration_since(now).unwrap_or_default();
                now + left.saturating_sub(self.policy.margin).max(left / 2)
            }
            None => now + self.policy.static_recheck,
        });
        tracing::info!(
            valid_until = creds.expiry().map(rfc3339).as_deref().unwrap_or("no expiry"),
            access_key_id = %redact_key_id(creds.access_key_id()),
            "credentials refreshed"
        );
        self.current = Some(creds);
    }

    fn fail(&mut self, error: CredentialsError, now: SystemTime) {
        self.status.consecutive_failures += 1;
        self.status.failures += 1;
        self.status.last_error = Some(error.to_string());
        let exp = self.status.consecutive_failures.saturating_sub(1).min(16);
        let backoff = self
            .policy
            .initial_backoff
            .saturating_mul(1 << exp)
            .min(self.policy.max_backoff);
        self.next_attempt = Some(now + backoff);
        tracing::warn!(error = %error, failures = self.status.consecutive_failures, retry_in = ?backoff, "credentials refresh failed");
    }
}

/// An error and its sources joined into one line. AWS providers and the SDK never put secret
/// keys into their errors, so this is safe to log.
pub fn redact_chain(e: &dyn std::error::Error) -> String {
    error_chain(e)
}

/// The error and its sources, joined.
fn error_chain(e: &dyn std::error::Error) -> String {
    let mut out = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        out.push_str(": ");
        out.push_str(&s.to_string());
        source = s.source();
    }
    out
}

/// `AKIA…WXYZ`: enough to tell keys apart in a log, not enough to use.
pub fn redact_key_id(key: &str) -> String {
    if key.len() <= 8 {
        return "****".into();
    }
    format!("{}…{}", &key[..4], &key[key.len() - 4..])
}

/// RFC 3339 in UTC, second precision (`2026-11-30T07:00:00Z`).
pub fn rfc3339(t: SystemTime) -> String {
    let dt = time::OffsetDateTime::from(t);
    let fmt = time::macros::format_description!("[year]-[month]-[day]T[hour]:[minute]:[second]Z");
    dt.to_offset(time::UtcOffset::UTC)
        .format(&fmt)
        .unwrap_or_else(|_| "invalid-time".into())
}

fn parse_rfc3339(s: &str) -> Option<SystemTime> {
    time::OffsetDateTime::parse(s, &time::format_description::well_known::Rfc3339)
        .ok()
        .map(SystemTime::from)
}

/// The credentials file kvssink reads through its `credential-path` property: one line,
/// tab-separated, `CREDENTIALS <key id> <secret>` for long-term keys and
/// `CREDENTIALS <key id> <expiry RFC 3339> <secret> <session token>` for temporary ones.
/// Written atomically (a 0600 temporary file in the same directory, then rename), so a reader
/// never sees a partial file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CredentialsFile {
    path: PathBuf,
}

/// Session tokens without an expiry get this one: kvssink's format needs a date.
const FAR_EXPIRY: &str = "2200-01-01T00:00:00Z";

static TEMP_COUNTER: AtomicU64 = AtomicU64::new(0);

impl CredentialsFile {
    /// A file at `path` (its directory must exist).
    pub fn new(path: impl Into<PathBuf>) -> Self {
        CredentialsFile { path: path.into() }
    }

    /// The file's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    fn error(&self, reason: impl std::fmt::Display) -> CredentialsError {
        CredentialsError::File {
            path: self.path.clone(),
            reason: reason.to_string(),
        }
    }

    /// The file's content for these credentials.
    pub fn render(creds: &Credentials) -> String {
        match (creds.session_token(), creds.expiry()) {
            (None, None) => format!(
                "CREDENTIALS\t{}\t{}\n",
                creds.access_key_id(),
                creds.secret_access_key()
            ),
            (token, expiry) => format!(
                "CREDENTIALS\t{}\t{}\t{}\t{}\n",
                creds.access_key_id(),
                expiry.map(rfc3339).unwrap_or_else(|| FAR_EXPIRY.to_owned()),
                creds.secret_access_key(),
                token.unwrap_or_default()
            ),
        }
    }

    /// Replace the file atomically with these credentials (mode 0600).
    pub fn write(&self, creds: &Credentials) -> Result<(), CredentialsError> {
        use std::os::unix::fs::OpenOptionsExt;
        let dir = match self.path.parent() {
            Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
            _ => PathBuf::from("."),
        };
        let name = self
            .path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let tmp = dir.join(format!(
            ".{name}.{}.{}.tmp",
            std::process::id(),
            TEMP_COUNTER.fetch_add(1, Ordering::Relaxed)
        ));
        let result = (|| {
            let mut f = std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o600)
                .open(&tmp)?;
            f.write_all(Self::render(creds).as_bytes())?;
            f.sync_all()?;
            std::fs::rename(&tmp, &self.path)?;
            // Make the rename itself durable.
            std::fs::File::open(&dir)?.sync_all()
        })();
        if result.is_err() {
            let _ = std::fs::remove_file(&tmp);
        }
        result.map_err(|e| self.error(e))
    }

    /// Read credentials back (the same parser kvssink's format implies).
    pub fn read(&self) -> Result<Credentials, CredentialsError> {
        let text = std::fs::read_to_string(&self.path).map_err(|e| self.error(e))?;
        let fields: Vec<&str> = text.split_whitespace().collect();
        match fields.as_slice() {
            ["CREDENTIALS", key, secret] => Ok(Credentials::new(
                *key,
                *secret,
                None,
                None,
                "telescope-file",
            )),
            ["CREDENTIALS", key, expiry, secret, token] => {
                let expiry = parse_rfc3339(expiry)
                    .ok_or_else(|| self.error("the expiry is not an RFC 3339 time"))?;
                Ok(Credentials::new(
                    *key,
                    *secret,
                    Some((*token).to_owned()),
                    Some(expiry),
                    "telescope-file",
                ))
            }
            _ => Err(self.error(format!(
                "expected CREDENTIALS and 2 or 4 fields, found {} fields",
                fields.len()
            ))),
        }
    }
}

/// Shared state between a running refresher thread and its handles.
#[derive(Debug)]
struct Shared {
    current: Mutex<(Option<Credentials>, RefreshStatus)>,
    /// Signalled when `current` changes.
    ready: std::sync::Condvar,
    stop: Mutex<bool>,
    /// Signalled when `stop` is set.
    wake: std::sync::Condvar,
}

/// A [`CredentialRefresher`] running on its own thread. Clones share it; it also acts as a
/// credentials provider (always handing out the freshest credentials) for SDK clients.
#[derive(Debug, Clone)]
pub struct RefresherHandle {
    shared: Arc<Shared>,
    thread: Arc<Mutex<Option<std::thread::JoinHandle<()>>>>,
}

impl RefresherHandle {
    /// Start refreshing on a background thread, fetching the first credentials at once.
    pub fn spawn(
        mut refresher: CredentialRefresher,
        clock: Arc<dyn WallClock>,
    ) -> std::io::Result<Self> {
        let shared = Arc::new(Shared {
            current: Mutex::new((None, RefreshStatus::default())),
            ready: std::sync::Condvar::new(),
            stop: Mutex::new(false),
            wake: std::sync::Condvar::new(),
        });
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        let inner = shared.clone();
        let thread = std::thread::Builder::new()
            .name("telescope-credentials".into())
            .spawn(move || loop {
                let wait = runtime.block_on(refresher.tick(clock.now()));
                *lock(&inner.current) = (refresher.current().cloned(), refresher.status().clone());
                inner.ready.notify_all();
                let deadline = std::time::Instant::now() + wait.max(Duration::from_millis(10));
                let mut stop = lock(&inner.stop);
                // Checked before every wait: a stop requested while refreshing is never missed.
                while !*stop {
                    let Some(left) = deadline.checked_duration_since(std::time::Instant::now())
                    else {
                        break;
                    };
                    stop = inner
                        .wake
                        .wait_timeout(stop, left)
                        .unwrap_or_else(|p| p.into_inner())
                        .0;
                }
                if *stop {
                    return;
                }
            })?;
        Ok(RefresherHandle {
            shared,
            thread: Arc::new(Mutex::new(Some(thread))),
        })
    }

    /// The credentials in use, if any were obtained.
    pub fn credentials(&self) -> Option<Credentials> {
        lock(&self.shared.current).0.clone()
    }

    /// The refresher's status.
    pub fn status(&self) -> RefreshStatus {
        lock(&self.shared.current).1.clone()
    }

    /// Wait until credentials exist or `timeout` passes.
    pub fn wait_ready(&self, timeout: Duration) -> Option<Credentials> {
        let deadline = std::time::Instant::now() + timeout;
        let mut guard = lock(&self.shared.current);
        loop {
            if let Some(c) = guard.0.clone() {
                return Some(c);
            }
            let left = deadline.checked_duration_since(std::time::Instant::now())?;
            guard = self
                .shared
                .ready
                .wait_timeout(guard, left)
                .unwrap_or_else(|p| p.into_inner())
                .0;
        }
    }

    /// Stop the thread.
    pub fn stop(&self) {
        *lock(&self.shared.stop) = true;
        self.shared.wake.notify_all();
        if let Some(t) = lock(&self.thread).take() {
            let _ = t.join();
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl ProvideCredentials for RefresherHandle {
    fn provide_credentials<'a>(
        &'a self,
    ) -> aws_credential_types::provider::future::ProvideCredentials<'a>
    where
        Self: 'a,
    {
        let result = self.credentials().ok_or_else(|| {
            aws_credential_types::provider::error::CredentialsError::not_loaded(
                self.status()
                    .last_error
                    .unwrap_or_else(|| "credentials not fetched yet".into()),
            )
        });
        aws_credential_types::provider::future::ProvideCredentials::ready(result)
    }
}

pub mod faults {
    //! A credentials provider with faults on demand: what `telescope soak` injects, and what
    //! tests use to check expiry handling.

    use super::*;

    #[derive(Debug, Default)]
    struct Faults {
        fail_next: u32,
        expired_next: u32,
        early_by: Option<Duration>,
    }

    /// Issues fresh temporary credentials (`lifetime` long, numbered so each issue differs) on
    /// every call, unless told to fail, to hand out already-expired credentials, or to make
    /// them expire early.
    #[derive(Debug, Clone)]
    pub struct FaultInjectingProvider {
        clock: Arc<dyn WallClock>,
        lifetime: Duration,
        issued: Arc<AtomicU64>,
        faults: Arc<Mutex<Faults>>,
    }

    impl FaultInjectingProvider {
        /// A provider of credentials valid for `lifetime` from the clock's now.
        pub fn new(clock: Arc<dyn WallClock>, lifetime: Duration) -> Self {
            FaultInjectingProvider {
                clock,
                lifetime,
                issued: Arc::default(),
                faults: Arc::default(),
            }
        }
        /// The next `n` calls fail.
        pub fn fail_next(&self, n: u32) {
            lock(&self.faults).fail_next = n;
        }
        /// The next `n` calls return credentials that have already expired.
        pub fn expired_next(&self, n: u32) {
            lock(&self.faults).expired_next = n;
        }
        /// Credentials issued from now on expire `by` earlier than their lifetime says.
        pub fn expire_early(&self, by: Duration) {
            lock(&self.faults).early_by = Some(by);
        }
        /// Successful issues so far.
        pub fn issued(&self) -> u64 {
            self.issued.load(Ordering::Relaxed)
        }
        /// The secret of issue number `n` (1-based), for tests that look for leaks.
        pub fn secret_of(n: u64) -> String {
            format!("test-secret-{n:04}-do-not-log")
        }

        fn issue(
            &self,
        ) -> Result<Credentials, aws_credential_types::provider::error::CredentialsError> {
            let mut f = lock(&self.faults);
            if f.fail_next > 0 {
                f.fail_next -= 1;
                return Err(
                    aws_credential_types::provider::error::CredentialsError::provider_error(
                        "injected credentials failure",
                    ),
                );
            }
            let now = self.clock.now();
            let expiry = if f.expired_next > 0 {
                f.expired_next -= 1;
                now - Duration::from_secs(1)
            } else {
                now + self.lifetime.saturating_sub(f.early_by.unwrap_or_default())
            };
            let n = self.issued.fetch_add(1, Ordering::Relaxed) + 1;
            Ok(Credentials::new(
                format!("ASIATESTKEY{n:08}"),
                Self::secret_of(n),
                Some(format!("test-session-token-{n:04}")),
                Some(expiry),
                "fault-injecting",
            ))
        }
    }

    impl ProvideCredentials for FaultInjectingProvider {
        fn provide_credentials<'a>(
            &'a self,
        ) -> aws_credential_types::provider::future::ProvideCredentials<'a>
        where
            Self: 'a,
        {
            aws_credential_types::provider::future::ProvideCredentials::ready(self.issue())
        }
    }
}
