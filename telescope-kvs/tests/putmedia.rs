//! The PutMedia client against an in-process mock-kvs and against nothing at all.

use std::time::{Duration, Instant};

use mock_kvs::{MockKvs, MockKvsConfig};
use telescope_kvs::credentials::{Credentials, SharedCredentialsProvider};
use telescope_kvs::mkv::{cluster, header, Block, TrackInfo};
use telescope_kvs::{PutMediaClient, PutMediaConfig, PutMediaStats};

fn creds() -> SharedCredentialsProvider {
    SharedCredentialsProvider::new(Credentials::new(
        "AKIDPUTMEDIA",
        "putmedia-secret",
        None,
        None,
        "test",
    ))
}

/// Create the stream `cam` on `mock` through the control plane.
fn create_cam(mock: &MockKvs) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let kvs = telescope_kvs::KvsConfig {
            region: "us-east-1".into(),
            endpoint: Some(mock.url().to_owned()),
            credentials: telescope_kvs::credentials::CredentialSource::Provider(creds()),
        };
        telescope_kvs::KvsControl::new(&kvs)
            .await
            .unwrap()
            .create("cam", &Default::default())
            .await
            .unwrap();
    });
}

/// Poll the client's counters until `done` holds (bounded).
fn wait(client: &PutMediaClient, done: impl Fn(&PutMediaStats) -> bool) -> PutMediaStats {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let s = client.stats();
        if done(&s) || Instant::now() > deadline {
            return s;
        }
        std::thread::sleep(Duration::from_millis(10)); // polling counters, bounded by the deadline
    }
}

fn fragment(i: u64) -> (u64, Vec<u8>) {
    let t = 1_796_000_000_000 + i * 2000;
    (
        t,
        cluster(
            t,
            &[Block {
                offset_ms: 0,
                key: true,
                data: vec![0, 0, 0, 2, 0x65, i as u8],
            }],
        ),
    )
}

#[test]
fn a_full_store_evicts_the_oldest_fragments_and_counts_them() {
    // Nothing listens on this port: every connection attempt fails.
    let port = testkit::free_port();
    let mut config = PutMediaConfig::new(format!("http://127.0.0.1:{port}"), "cam", "us-east-1");
    let one = fragment(0).1.len();
    config.store_bytes = 3 * one;
    config.initial_backoff = Duration::from_millis(20);
    let client = PutMediaClient::start(config, creds()).unwrap();
    client.header(vec![0x1A, 0x45, 0xDF, 0xA3, 0x80]);
    for i in 0..10 {
        let (t, bytes) = fragment(i);
        client.fragment(t, bytes);
    }
    let s = wait(&client, |s| s.evicted == 7);
    assert_eq!(
        (s.fragments, s.evicted, s.pending, s.persisted),
        (10, 7, 3, 0),
        "{s:?}"
    );
    assert!(
        s.errors >= 1 && s.last_error.as_deref().unwrap_or("").contains("connect"),
        "{s:?}"
    );
    assert!(
        !client.finish(Duration::from_millis(50)),
        "nothing can be persisted"
    );
}

#[test]
fn fragments_are_persisted_by_the_in_process_mock() {
    let mock = MockKvs::start(MockKvsConfig {
        listen: "127.0.0.1:0".parse().unwrap(),
        keys: Some(("AKIDPUTMEDIA".into(), "putmedia-secret".into())),
        ..MockKvsConfig::default()
    })
    .unwrap();
    create_cam(&mock);
    let client =
        PutMediaClient::start(PutMediaConfig::new(mock.url(), "cam", "us-east-1"), creds())
            .unwrap();
    client.header(header(
        &TrackInfo {
            width: 2,
            height: 2,
            codec_private: vec![1, 0x42, 0, 0x1e],
            frame_duration_ns: None,
        },
        [1; 16],
    ));
    for i in 0..5 {
        let (t, bytes) = fragment(i);
        client.fragment(t, bytes);
    }
    assert!(client.finish(Duration::from_secs(30)));
    let s = client.stats();
    assert_eq!(
        (
            s.fragments,
            s.sent,
            s.received,
            s.persisted,
            s.pending,
            s.resent
        ),
        (5, 5, 5, 5, 0, 0),
        "{s:?}"
    );
}

/// The same keys with a fresh session token and a short lifetime on every call, as an STS role
/// session renewed by its provider.
#[derive(Debug, Clone)]
struct ShortLived {
    lifetime: Duration,
    issued: std::sync::Arc<std::sync::atomic::AtomicU64>,
}

impl telescope_kvs::credentials::ProvideCredentials for ShortLived {
    fn provide_credentials<'a>(
        &'a self,
    ) -> aws_credential_types::provider::future::ProvideCredentials<'a>
    where
        Self: 'a,
    {
        let n = self
            .issued
            .fetch_add(1, std::sync::atomic::Ordering::SeqCst)
            + 1;
        aws_credential_types::provider::future::ProvideCredentials::ready(Ok(Credentials::new(
            "AKIDPUTMEDIA",
            "putmedia-secret",
            Some(format!("session-{n}")),
            Some(std::time::SystemTime::now() + self.lifetime),
            "short-lived",
        )))
    }
}

#[test]
fn credentials_renewed_mid_stream_move_the_upload_to_a_new_connection() {
    use telescope_kvs::credentials::{
        CredentialRefresher, RefreshPolicy, RefresherHandle, SystemWallClock,
    };

    let mock = MockKvs::start(MockKvsConfig {
        listen: "127.0.0.1:0".parse().unwrap(),
        keys: Some(("AKIDPUTMEDIA".into(), "putmedia-secret".into())),
        // Slow acks keep the upload going across the credentials' lifetime.
        faults: vec![mock_kvs::Fault::DelayAcks(300)],
        ..MockKvsConfig::default()
    })
    .unwrap();
    create_cam(&mock);
    let source = ShortLived {
        lifetime: Duration::from_secs(4),
        issued: Default::default(),
    };
    let policy = RefreshPolicy {
        margin: Duration::from_secs(2),
        ..RefreshPolicy::default()
    };
    let refresher = RefresherHandle::spawn(
        CredentialRefresher::new(SharedCredentialsProvider::new(source.clone()), policy, None),
        std::sync::Arc::new(SystemWallClock),
    )
    .unwrap();
    assert!(refresher.wait_ready(Duration::from_secs(10)).is_some());
    let mut config = PutMediaConfig::new(mock.url(), "cam", "us-east-1");
    config.credential_margin = Duration::from_secs(1);
    let client =
        PutMediaClient::start(config, SharedCredentialsProvider::new(refresher.clone())).unwrap();
    client.header(header(
        &TrackInfo {
            width: 2,
            height: 2,
            codec_private: vec![1, 0x42, 0, 0x1e],
            frame_duration_ns: None,
        },
        [1; 16],
    ));
    for i in 0..16 {
        let (t, bytes) = fragment(i);
        client.fragment(t, bytes);
    }
    assert!(client.finish(Duration::from_secs(60)));
    let s = client.stats();
    assert_eq!(s.persisted, 16, "{s:?}");
    assert!(
        s.connections >= 2,
        "the upload moved to fresh credentials: {s:?}"
    );
    assert!(
        refresher.status().refreshes >= 2,
        "{:?}",
        refresher.status()
    );
    refresher.stop();
}
