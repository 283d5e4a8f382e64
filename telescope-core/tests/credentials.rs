//! Credential refresh on a virtual clock, the kvssink credentials file, and secrets kept out of
//! every log line.

use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use telescope::clock::VirtualClock;
use telescope::credentials::faults::FaultInjectingProvider;
use telescope::credentials::{
    CredentialRefresher, CredentialSource, Credentials, CredentialsFile, RefreshPolicy,
    RefresherHandle, SharedCredentialsProvider, SystemWallClock, VirtualWallClock, WallClock,
};

const LIFETIME: Duration = Duration::from_secs(15 * 60);

fn epoch() -> SystemTime {
    SystemTime::UNIX_EPOCH + Duration::from_secs(1_796_022_900)
}

struct Setup {
    clock: VirtualClock,
    wall: Arc<dyn WallClock>,
    provider: FaultInjectingProvider,
    refresher: CredentialRefresher,
    file: CredentialsFile,
    _dir: tempfile::TempDir,
}

fn setup() -> Setup {
    let clock = VirtualClock::new();
    let wall: Arc<dyn WallClock> = Arc::new(VirtualWallClock::new(epoch(), clock.clone()));
    let provider = FaultInjectingProvider::new(wall.clone(), LIFETIME);
    let dir = tempfile::tempdir().unwrap();
    let file = CredentialsFile::new(dir.path().join("kvs-credentials"));
    let refresher = CredentialRefresher::new(
        SharedCredentialsProvider::new(provider.clone()),
        RefreshPolicy::default(),
        Some(file.clone()),
    );
    Setup {
        clock,
        wall,
        provider,
        refresher,
        file,
        _dir: dir,
    }
}

fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

fn mode(path: &std::path::Path) -> u32 {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(path).unwrap().permissions().mode() & 0o777
}

#[test]
fn temporary_credentials_are_renewed_a_margin_before_expiry() {
    let mut s = setup();
    let rt = rt();
    let wait = rt.block_on(s.refresher.tick(s.wall.now()));
    assert_eq!(s.provider.issued(), 1);
    assert_eq!(
        wait,
        LIFETIME - RefreshPolicy::default().margin,
        "renewal is scheduled 2 min before expiry"
    );
    let first = s.file.read().unwrap();
    assert_eq!(first.expiry(), Some(epoch() + LIFETIME));
    assert_eq!(mode(s.file.path()), 0o600);

    s.clock.advance(wait - Duration::from_secs(1));
    rt.block_on(s.refresher.tick(s.wall.now()));
    assert_eq!(s.provider.issued(), 1, "not due yet");
    s.clock.advance(Duration::from_secs(1));
    rt.block_on(s.refresher.tick(s.wall.now()));
    assert_eq!(s.provider.issued(), 2, "renewed at the margin");
    let second = s.file.read().unwrap();
    assert_ne!(
        second.access_key_id(),
        first.access_key_id(),
        "the file holds the new credentials"
    );
    assert!(second.expiry().unwrap() > s.wall.now() + Duration::from_secs(60));
    let status = s.refresher.status();
    assert_eq!((status.refreshes, status.failures), (2, 0));
    assert_eq!(status.last_refresh, Some(s.wall.now()));
    assert_eq!(status.valid_until, second.expiry());
}

#[test]
fn failures_are_retried_with_backoff_and_expired_credentials_refused() {
    let mut s = setup();
    let rt = rt();
    s.provider.fail_next(3);
    let mut waits = Vec::new();
    for _ in 0..3 {
        let w = rt.block_on(s.refresher.tick(s.wall.now()));
        waits.push(w);
        s.clock.advance(w);
    }
    assert_eq!(
        waits,
        vec![
            Duration::from_secs(1),
            Duration::from_secs(2),
            Duration::from_secs(4)
        ]
    );
    assert_eq!(s.refresher.status().consecutive_failures, 3);
    assert!(s.refresher.current().is_none());
    assert!(
        s.file.read().is_err(),
        "nothing written before credentials exist"
    );
    rt.block_on(s.refresher.tick(s.wall.now()));
    assert!(s.refresher.current().is_some());
    assert_eq!(s.refresher.status().consecutive_failures, 0);
    assert_eq!(s.refresher.status().failures, 3);

    // A provider handing out already-expired credentials is a failure, not an update.
    let before = s.file.read().unwrap();
    s.clock.advance(LIFETIME - RefreshPolicy::default().margin);
    s.provider.expired_next(1);
    let wait = rt.block_on(s.refresher.tick(s.wall.now()));
    assert_eq!(wait, Duration::from_secs(1));
    assert!(s
        .refresher
        .status()
        .last_error
        .as_deref()
        .unwrap()
        .contains("expired"));
    assert_eq!(
        s.file.read().unwrap(),
        before,
        "the file keeps the last good credentials"
    );
    s.clock.advance(wait);
    rt.block_on(s.refresher.tick(s.wall.now()));
    assert_ne!(s.file.read().unwrap(), before);
}

#[test]
fn credentials_that_expire_early_are_renewed_early() {
    let mut s = setup();
    let rt = rt();
    s.provider.expire_early(LIFETIME - Duration::from_secs(60));
    let wait = rt.block_on(s.refresher.tick(s.wall.now()));
    // One minute left, less than the margin: renew at half the remaining lifetime.
    assert_eq!(wait, Duration::from_secs(30));
}

#[test]
fn the_file_is_never_seen_half_written() {
    let dir = tempfile::tempdir().unwrap();
    let file = CredentialsFile::new(dir.path().join("creds"));
    let now = SystemTime::now();
    let make = move |n: u64| {
        Credentials::new(
            format!("ASIA{n:016}"),
            "s".repeat(40 + (n % 7) as usize),
            Some("t".repeat(300 + (n % 13) as usize)),
            Some(now + Duration::from_secs(900)),
            "test",
        )
    };
    file.write(&make(0)).unwrap();
    let writer = {
        let file = file.clone();
        std::thread::spawn(move || {
            for n in 1..=400 {
                file.write(&make(n)).unwrap();
            }
        })
    };
    let mut reads = 0;
    while !writer.is_finished() || reads < 400 {
        let c = file
            .read()
            .expect("a reader racing the writer always sees a whole file");
        assert!(c.access_key_id().starts_with("ASIA"));
        assert_eq!(mode(file.path()), 0o600);
        reads += 1;
    }
    writer.join().unwrap();
    let leftovers: Vec<_> = std::fs::read_dir(dir.path()).unwrap().collect();
    assert_eq!(leftovers.len(), 1, "no temporary files left behind");
}

#[test]
fn the_file_format_is_what_kvssink_reads() {
    let expiry = epoch();
    let temp = Credentials::new(
        "ASIAKEY",
        "secret/key",
        Some("token+abc".into()),
        Some(expiry),
        "t",
    );
    assert_eq!(
        CredentialsFile::render(&temp),
        "CREDENTIALS\tASIAKEY\t2026-11-30T07:15:00Z\tsecret/key\ttoken+abc\n"
    );
    let long = Credentials::new("AKIAKEY", "secret", None, None, "t");
    assert_eq!(
        CredentialsFile::render(&long),
        "CREDENTIALS\tAKIAKEY\tsecret\n"
    );
}

/// A writer for captured log output.
#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Every log line of this test binary goes here (a global subscriber: thread-local ones race
/// with tracing's per-callsite interest cache when tests run in parallel).
fn captured_logs() -> &'static Captured {
    static CAPTURE: std::sync::OnceLock<Captured> = std::sync::OnceLock::new();
    CAPTURE.get_or_init(|| {
        let captured = Captured::default();
        let sink = captured.clone();
        let subscriber = tracing_subscriber::fmt()
            .with_max_level(tracing::Level::TRACE)
            .with_writer(move || sink.clone())
            .with_ansi(false)
            .finish();
        tracing::subscriber::set_global_default(subscriber)
            .expect("the only subscriber of this binary");
        captured
    })
}

#[test]
fn secrets_never_reach_logs_or_debug_output() {
    let captured = captured_logs();
    let mut s = setup();
    let rt = rt();
    s.provider.fail_next(1);
    for _ in 0..4 {
        let w = rt.block_on(s.refresher.tick(s.wall.now()));
        s.clock.advance(w);
    }
    let log = String::from_utf8(captured.0.lock().unwrap().clone()).unwrap();
    assert!(
        log.contains("credentials refreshed"),
        "the capture works: {log}"
    );
    assert!(log.contains("injected credentials failure"));
    assert!(!log.contains("do-not-log"), "a secret leaked into the log");
    assert!(
        !log.contains("test-session-token"),
        "a session token leaked into the log"
    );
    let creds = s.refresher.current().unwrap().clone();
    let source = CredentialSource::Static {
        access_key_id: "AKIAEXAMPLE".into(),
        secret_access_key: "wJalrXUtnFEMI".into(),
        session_token: Some("tok-123".into()),
    };
    let debug = format!("{creds:?} {source:?} {:?}", s.refresher);
    assert!(
        !debug.contains("do-not-log")
            && !debug.contains("wJalrXUtnFEMI")
            && !debug.contains("tok-123"),
        "{debug}"
    );
}

#[test]
fn the_refresher_thread_serves_fresh_credentials() {
    let provider = FaultInjectingProvider::new(Arc::new(SystemWallClock), LIFETIME);
    provider.fail_next(1);
    let refresher = CredentialRefresher::new(
        SharedCredentialsProvider::new(provider.clone()),
        RefreshPolicy {
            initial_backoff: Duration::from_millis(20),
            ..RefreshPolicy::default()
        },
        None,
    );
    let handle = RefresherHandle::spawn(refresher, Arc::new(SystemWallClock)).unwrap();
    let creds = handle
        .wait_ready(Duration::from_secs(30))
        .expect("credentials after one retry");
    assert!(creds.session_token().is_some());
    let status = handle.status();
    assert_eq!((status.failures, status.refreshes), (1, 1));
    handle.stop();
}
