//! PutMedia throughput to a loopback mock-kvs: how fast the native client moves fragments and
//! what CPU its thread spends doing it.
//!
//! `cargo run --release -p telescope-kvs --example putmedia_throughput -- [MIB] [FRAGMENT_KIB]`

use std::time::{Duration, Instant};

use mock_kvs::{MockKvs, MockKvsConfig};
use telescope_kvs::credentials::{CredentialSource, Credentials, SharedCredentialsProvider};
use telescope_kvs::mkv::{cluster, header, Block, TrackInfo};
use telescope_kvs::{KvsConfig, KvsControl, PutMediaClient, PutMediaConfig};

/// User+system CPU seconds of this process's threads whose name starts with `prefix`.
fn thread_cpu(prefix: &str) -> f64 {
    let ticks = 100.0; // USER_HZ on Linux
    let mut total = 0u64;
    if let Ok(dir) = std::fs::read_dir("/proc/self/task") {
        for task in dir.flatten() {
            let comm = std::fs::read_to_string(task.path().join("comm")).unwrap_or_default();
            if !comm.trim().starts_with(prefix) {
                continue;
            }
            let stat = std::fs::read_to_string(task.path().join("stat")).unwrap_or_default();
            // Fields after the parenthesised name: state is field 3, utime 14, stime 15.
            let after = stat.rsplit_once(") ").map(|(_, r)| r).unwrap_or("");
            let fields: Vec<&str> = after.split_whitespace().collect();
            total += fields
                .get(11)
                .and_then(|v| v.parse::<u64>().ok())
                .unwrap_or(0);
            total += fields
                .get(12)
                .and_then(|v| v.parse::<u64>().ok())
                .unwrap_or(0);
        }
    }
    total as f64 / ticks
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().collect();
    let mib: usize = args.get(1).and_then(|a| a.parse().ok()).unwrap_or(400);
    let fragment_kib: usize = args.get(2).and_then(|a| a.parse().ok()).unwrap_or(1024);
    let mock = MockKvs::start(MockKvsConfig {
        listen: "127.0.0.1:0".parse()?,
        ..MockKvsConfig::default()
    })?;
    let creds =
        SharedCredentialsProvider::new(Credentials::new("AKIDBENCH", "bench", None, None, "bench"));
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    rt.block_on(async {
        let kvs = KvsConfig {
            region: "us-east-1".into(),
            endpoint: Some(mock.url().into()),
            credentials: CredentialSource::Provider(creds.clone()),
        };
        KvsControl::new(&kvs)
            .await?
            .create("bench", &Default::default())
            .await?;
        Ok::<_, Box<dyn std::error::Error>>(())
    })?;
    let mut config = PutMediaConfig::new(mock.url(), "bench", "us-east-1");
    config.store_bytes = 512 << 20;
    let client = PutMediaClient::start(config, creds)?;
    client.header(header(
        &TrackInfo {
            width: 1920,
            height: 1080,
            codec_private: vec![1, 0x4d, 0, 0x28],
            frame_duration_ns: Some(33_333_333),
        },
        [3; 16],
    ));
    let fragments = (mib * 1024 / fragment_kib).max(1);
    // 60 access units per fragment, like 2 s at 30 fps.
    let per_block = fragment_kib * 1024 / 60;
    let clusters: Vec<(u64, Vec<u8>)> = (0..fragments as u64)
        .map(|i| {
            let t = 1_796_000_000_000 + i * 2000;
            let blocks: Vec<Block> = (0..60)
                .map(|b| Block {
                    offset_ms: (b * 33) as i16,
                    key: b == 0,
                    data: vec![(i + b) as u8; per_block],
                })
                .collect();
            (t, cluster(t, &blocks))
        })
        .collect();
    let bytes: usize = clusters.iter().map(|c| c.1.len()).sum();
    let cpu0 = thread_cpu("telescope-putm");
    let all0 = thread_cpu("");
    let start = Instant::now();
    for (t, c) in clusters {
        client.fragment(t, c);
    }
    let ok = client.finish(Duration::from_secs(600));
    let wall = start.elapsed().as_secs_f64();
    let cpu = thread_cpu("telescope-putm") - cpu0;
    let all = thread_cpu("") - all0;
    let stats = client.stats();
    println!(
        "fragments: {} of {} KiB handed over, {} persisted, {} evicted, finished: {ok}",
        stats.fragments, fragment_kib, stats.persisted, stats.evicted
    );
    println!(
        "sent {:.1} MiB in {wall:.2} s = {:.0} Mbit/s",
        bytes as f64 / 1048576.0,
        bytes as f64 * 8.0 / wall / 1e6
    );
    println!("client thread CPU {cpu:.2} s = {:.1} % of one core while sending; {:.2} % of a core per 100 Mbit/s", cpu / wall * 100.0, cpu / (bytes as f64 * 8.0 / 1e8) * 100.0);
    println!(
        "whole process (client and mock-kvs parsing and storing) CPU {all:.2} s = {:.2} % of a core per 100 Mbit/s",
        all / (bytes as f64 * 8.0 / 1e8) * 100.0
    );
    println!(
        "ack latency (send to PERSISTED): last {} ms, max {} ms",
        stats.ack_latency_ms_last, stats.ack_latency_ms_max
    );
    Ok(())
}
