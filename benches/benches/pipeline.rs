//! The per-frame paths around the encoder: `put_ref` into a running Telescope (copy into a
//! pooled buffer + queueing), BGR -> I420 colour conversion (what `videoconvert` does before
//! x264), Matroska clusters for PutMedia, KVS ack parsing, and SigV4 signing of PutMedia.
//! The encoder itself is measured whole-process by `telescope bench`.

use std::time::{Duration, SystemTime};

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use telescope::kvs::ack::{AckEvent, AckParser, FragmentAck};
use telescope::kvs::mkv::{cluster, Block};
use telescope::{FrameRef, PixelFormat, Rate, SinkConfig, Telescope, TelescopeConfig};

const SIZES: [(u32, u32); 3] = [(640, 480), (1280, 720), (1920, 1080)];

fn put(c: &mut Criterion) {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let mut group = c.benchmark_group("put_ref");
    for (w, h) in SIZES {
        let rate = Rate::whole(30).expect("30 fps");
        let t = Telescope::new(
            TelescopeConfig::builder()
                .fps(rate)
                .size(w, h)
                .sink(SinkConfig::file(dir.path().join(format!("{w}x{h}.mkv"))).expect("sink"))
                .build(),
        )
        .expect("telescope");
        t.start().expect("start");
        let pixels = benches::test_image(w, h);
        let mut n = 0u64;
        group.throughput(Throughput::Bytes(pixels.len() as u64));
        // Faster than the encoder: the queue is full and each put also drops the oldest
        // frame (its buffer goes back to the pool), the worst case for put.
        group.bench_function(format!("{w}x{h}"), |b| {
            b.iter(|| {
                n += 1;
                let frame = FrameRef::new(&pixels, PixelFormat::Bgr8, w, h)
                    .expect("frame")
                    .at(rate.frame_time(n));
                t.put_ref(frame)
            })
        });
        let _ = t.stop();
    }
    group.finish();
}

fn colour(c: &mut Criterion) {
    let _ = gst::init();
    let mut group = c.benchmark_group("convert_bgr_to_i420");
    for (w, h) in SIZES {
        let pixels = benches::test_image(w, h);
        let (Ok(from), Ok(to)) = (
            gst_video::VideoInfo::builder(gst_video::VideoFormat::Bgr, w, h).build(),
            gst_video::VideoInfo::builder(gst_video::VideoFormat::I420, w, h).build(),
        ) else {
            continue;
        };
        let Ok(converter) = gst_video::VideoConverter::new(&from, &to, None) else {
            continue;
        };
        let src = gst::Buffer::from_slice(pixels);
        let Ok(dst) = gst::Buffer::with_size(to.size()) else {
            continue;
        };
        let (Ok(in_frame), Ok(mut out_frame)) = (
            gst_video::VideoFrame::from_buffer_readable(src, &from),
            gst_video::VideoFrame::from_buffer_writable(dst, &to),
        ) else {
            continue;
        };
        group.bench_function(format!("{w}x{h}"), |b| {
            b.iter(|| converter.frame(&in_frame, &mut out_frame))
        });
    }
    group.finish();
}

fn kvs(c: &mut Criterion) {
    // One 2 s fragment at 30 fps and 500 kbit/s: a 60 KB key frame and 59 2 KB deltas.
    let blocks: Vec<Block> = (0..60)
        .map(|i| Block {
            offset_ms: (i * 33) as i16,
            key: i == 0,
            data: vec![0x5a; if i == 0 { 60_000 } else { 2_000 }],
        })
        .collect();
    c.bench_function("kvs/mkv cluster (60 access units, 178 KB)", |b| {
        b.iter(|| cluster(1_764_000_000_000, &blocks))
    });
    let acks: String = (0..100u64)
        .flat_map(|i| {
            [AckEvent::Buffering, AckEvent::Received, AckEvent::Persisted].map(|event| {
                FragmentAck {
                    event,
                    fragment_timecode: Some(1_764_000_000_000 + i * 2000),
                    fragment_number: Some(format!("9134385233318{i:05}")),
                }
                .to_json()
            })
        })
        .collect::<Vec<_>>()
        .join("\n");
    c.bench_function("kvs/ack parse (300 acks, split in 1 KB reads)", |b| {
        b.iter(|| {
            let mut parser = AckParser::new();
            acks.as_bytes()
                .chunks(1024)
                .map(|chunk| parser.push(chunk).len())
                .sum::<usize>()
        })
    });
    let creds = aws_credential_types::Credentials::from_keys(
        "AKIDBENCHMARK0001",
        "bench-secret-key",
        Some("bench-session-token".into()),
    );
    let at = SystemTime::UNIX_EPOCH + Duration::from_secs(1_764_000_000);
    c.bench_function("kvs/sigv4 PutMedia headers", |b| {
        b.iter(|| {
            telescope::kvs::putmedia::signed_headers(
                "us-east-1",
                "lobby",
                "s-1234abcd.kinesisvideo.us-east-1.amazonaws.com",
                &creds,
                1_764_000_000_000,
                at,
            )
        })
    });
}

criterion_group!(benches, put, colour, kvs);
criterion_main!(benches);
