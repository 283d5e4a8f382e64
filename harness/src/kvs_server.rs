//! `telescope mock-kvs`: run a local KVS endpoint until Ctrl-C.

use std::net::SocketAddr;
use std::path::PathBuf;

use anyhow::{Context, Result};
use clap::Args;
use mock_kvs::{MockKvs, MockKvsConfig};

/// Arguments of `telescope mock-kvs`.
#[derive(Debug, Args)]
pub struct MockKvsArgs {
    /// Address to listen on (port 0 picks a free one).
    #[arg(long, default_value = "127.0.0.1:4566")]
    pub listen: SocketAddr,
    /// Access key id clients must sign with (with --secret-key); unsigned requests are accepted
    /// when absent.
    #[arg(long, requires = "secret_key")]
    pub access_key: Option<String>,
    /// Secret key clients must sign with; also read from TELESCOPE_MOCK_SECRET_KEY.
    #[arg(
        long,
        env = "TELESCOPE_MOCK_SECRET_KEY",
        hide_env_values = true,
        requires = "access_key"
    )]
    pub secret_key: Option<String>,
    /// Keep streams (names, ARNs, retention, tags, versions) in this directory across restarts.
    /// Fragments are not kept: they live in memory, and after a restart ListFragments and
    /// GetMedia find none.
    #[arg(long)]
    pub store: Option<PathBuf>,
    /// Region used in ARNs.
    #[arg(long, default_value = "us-east-1")]
    pub region: String,
    /// Inject a PutMedia fault, repeatable: `reset-after:N` drops each connection at its N-th
    /// fragment, unacknowledged; `reset-after-bytes:N` cuts it after N body bytes; `refuse:N` answers the first N PutMedia requests with 503;
    /// `delay-acks:MS` holds every PERSISTED ack back.
    #[arg(long = "fault")]
    pub faults: Vec<mock_kvs::Fault>,
    /// GetMedia responses stay open waiting for data, as the service's do; once a response
    /// has sent what a producer sent and no producer is connected to the stream, it ends after
    /// this long without a new fragment (90, 90s, 10m; a bare number is seconds).
    #[arg(long, default_value = "3s", value_parser = telescope::units::parse_duration)]
    pub get_media_idle: std::time::Duration,
    /// The longest a GetMedia response lasts, as the service ends its sessions at about 45
    /// minutes.
    #[arg(long, default_value = "45m", value_parser = telescope::units::parse_duration)]
    pub get_media_max: std::time::Duration,
    /// A PutMedia connection that completes no header or fragment for this long is closed, as
    /// the service closes one idle for 30 s (a producer sending a byte a second included).
    #[arg(long, default_value = "30s", value_parser = telescope::units::parse_duration)]
    pub put_media_idle: std::time::Duration,
    /// Time a client has to send a request's headers (and a control-plane request's body)
    /// before its connection is closed.
    #[arg(long, default_value = "10s", value_parser = telescope::units::parse_duration)]
    pub request_timeout: std::time::Duration,
}

pub fn run(args: MockKvsArgs) -> Result<()> {
    let keys = args.access_key.clone().zip(args.secret_key.clone());
    let config = MockKvsConfig {
        listen: args.listen,
        keys: keys.clone(),
        store: args.store.clone(),
        region: args.region.clone(),
        faults: args.faults.clone(),
        get_media_idle: args.get_media_idle,
        get_media_max: args.get_media_max,
        put_media_idle: args.put_media_idle,
        request_timeout: args.request_timeout,
        ..MockKvsConfig::default()
    };
    let mock = MockKvs::start(config)
        .with_context(|| format!("cannot start mock-kvs on {}", args.listen))?;
    let (tx, rx) = std::sync::mpsc::channel();
    ctrlc::set_handler(move || {
        let _ = tx.send(());
    })
    .context("cannot handle Ctrl-C")?;
    // The first line is the URL (tools wait for it); then what to export to use it. These are
    // the mock's own test keys, chosen on this command line. A reader that went away (a test
    // that read the URL and closed the pipe) must not stop the server.
    let mut lines = vec![
        format!("mock-kvs listening on {}", mock.url()),
        format!(
            "  viewer: {}/ (a stream's player: {})",
            mock.url(),
            mock.viewer_url("NAME")
        ),
        format!("  export AWS_ENDPOINT_URL={}", mock.url()),
        format!("  export AWS_REGION={}", args.region),
    ];
    match &keys {
        Some((key, secret)) => {
            lines.push(format!("  export AWS_ACCESS_KEY_ID={key}"));
            lines.push(format!("  export AWS_SECRET_ACCESS_KEY={secret}"));
        }
        None => lines.push(
            "  (no keys: requests are not checked; pass --access-key/--secret-key to verify SigV4)"
                .into(),
        ),
    }
    if let Some(store) = &args.store {
        lines.push(format!(
            "  streams kept in {} (their fragments are not: memory only)",
            store.display()
        ));
    }
    say(&lines);
    let _ = rx.recv();
    drop(mock);
    say(&["mock-kvs stopped".to_owned()]);
    Ok(())
}

fn say(lines: &[String]) {
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    for line in lines {
        if writeln!(out, "{line}").is_err() {
            return;
        }
    }
    let _ = out.flush();
}
