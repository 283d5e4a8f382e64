//! ISO BMFF (MP4) boxes from stored H.264 frames, without re-encoding: the initialization
//! fragment (`ftyp` + `moov`) and media fragments (`moof` + `mdat`) that HLS (fMP4) and DASH
//! sessions serve, and the progressive file GetClip downloads.
//!
//! Written here rather than with GStreamer's `mp4mux`: fragmented, it starts every request's
//! timeline at zero and writes its own `moov` per request, while a playlist needs one init
//! fragment for the session and media fragments whose `tfdt` carry the producer timestamps
//! (`isofmp4mux`, which could, is not packaged by Debian). The Matroska `CodecPrivate` of an
//! H.264 track is an AVCDecoderConfigurationRecord, which is what `avcC` holds, and the
//! frames are length-prefixed already: nothing but the boxes around them changes.

use super::matroska::{Frame, Track};

/// The media timescale: the producer timestamps are milliseconds.
pub const TIMESCALE: u32 = 1000;

/// A box: size, type, body.
pub(crate) fn mp4_box(kind: &[u8; 4], body: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(body.len() + 8);
    out.extend_from_slice(&((body.len() + 8) as u32).to_be_bytes());
    out.extend_from_slice(kind);
    out.extend_from_slice(body);
    out
}

/// A full box: version and flags before the body.
pub(crate) fn full_box(kind: &[u8; 4], version: u8, flags: u32, body: &[u8]) -> Vec<u8> {
    let mut b = Vec::with_capacity(body.len() + 4);
    b.push(version);
    b.extend_from_slice(&flags.to_be_bytes()[1..]);
    b.extend_from_slice(body);
    mp4_box(kind, &b)
}

fn cat(parts: &[&[u8]]) -> Vec<u8> {
    parts.concat()
}

const MATRIX: [u32; 9] = [0x10000, 0, 0, 0, 0x10000, 0, 0, 0, 0x4000_0000];

fn matrix() -> Vec<u8> {
    MATRIX.iter().flat_map(|v| v.to_be_bytes()).collect()
}

pub(crate) fn ftyp(major: &[u8; 4]) -> Vec<u8> {
    cat(&[&mp4_box(
        b"ftyp",
        &cat(&[major, &0u32.to_be_bytes(), b"isomiso6avc1mp41"]),
    )])
}

/// Seconds from 1904-01-01 (MP4's epoch) to the Unix epoch.
const MP4_EPOCH_OFFSET_S: i64 = 2_082_844_800;

/// An MP4 creation time (seconds since 1904) for a time in Unix milliseconds; 0 if unknown.
pub(crate) fn mp4_time(unix_ms: i64) -> u32 {
    u32::try_from(unix_ms / 1000 + MP4_EPOCH_OFFSET_S).unwrap_or(0)
}

/// The movie header; `created` (seconds since 1904) is the creation and modification time.
pub(crate) fn mvhd(duration: u32, created: u32) -> Vec<u8> {
    let mut b = Vec::with_capacity(96);
    b.extend_from_slice(&created.to_be_bytes());
    b.extend_from_slice(&created.to_be_bytes());
    b.extend_from_slice(&TIMESCALE.to_be_bytes());
    b.extend_from_slice(&duration.to_be_bytes());
    b.extend_from_slice(&0x0001_0000u32.to_be_bytes()); // rate 1.0
    b.extend_from_slice(&0x0100u16.to_be_bytes()); // volume 1.0
    b.extend_from_slice(&[0; 10]);
    b.extend_from_slice(&matrix());
    b.extend_from_slice(&[0; 24]);
    b.extend_from_slice(&2u32.to_be_bytes()); // next track id
    full_box(b"mvhd", 0, 0, &b)
}

fn tkhd(track: &Track, duration: u32) -> Vec<u8> {
    let mut b = vec![0u8; 8];
    b.extend_from_slice(&1u32.to_be_bytes()); // track id
    b.extend_from_slice(&[0; 4]);
    b.extend_from_slice(&duration.to_be_bytes());
    b.extend_from_slice(&[0; 16]); // reserved, layer, group, volume, reserved
    b.extend_from_slice(&matrix());
    b.extend_from_slice(&(track.width << 16).to_be_bytes());
    b.extend_from_slice(&(track.height << 16).to_be_bytes());
    full_box(b"tkhd", 0, 3, &b)
}

fn mdhd(duration: u32) -> Vec<u8> {
    let mut b = vec![0u8; 8];
    b.extend_from_slice(&TIMESCALE.to_be_bytes());
    b.extend_from_slice(&duration.to_be_bytes());
    b.extend_from_slice(&0x55C4u16.to_be_bytes()); // "und"
    b.extend_from_slice(&[0; 2]);
    full_box(b"mdhd", 0, 0, &b)
}

fn hdlr() -> Vec<u8> {
    full_box(
        b"hdlr",
        0,
        0,
        &cat(&[&[0; 4], b"vide", &[0; 12], b"VideoHandler\0"]),
    )
}

/// The `avc1` sample description holding the codec private data as `avcC`.
fn stsd(track: &Track) -> Vec<u8> {
    let mut e = vec![0u8; 6];
    e.extend_from_slice(&1u16.to_be_bytes()); // data reference index
    e.extend_from_slice(&[0; 16]);
    e.extend_from_slice(&(track.width as u16).to_be_bytes());
    e.extend_from_slice(&(track.height as u16).to_be_bytes());
    e.extend_from_slice(&0x0048_0000u32.to_be_bytes());
    e.extend_from_slice(&0x0048_0000u32.to_be_bytes());
    e.extend_from_slice(&[0; 4]);
    e.extend_from_slice(&1u16.to_be_bytes()); // frame count
    e.extend_from_slice(&[0; 32]); // compressor name
    e.extend_from_slice(&0x0018u16.to_be_bytes());
    e.extend_from_slice(&0xFFFFu16.to_be_bytes());
    e.extend_from_slice(&mp4_box(b"avcC", &track.codec_private));
    full_box(
        b"stsd",
        0,
        0,
        &cat(&[&1u32.to_be_bytes(), &mp4_box(b"avc1", &e)]),
    )
}

/// The `trak` box; `stbl_tables` are the sample tables after `stsd` (empty ones for fMP4).
pub(crate) fn trak(track: &Track, duration: u32, stbl_tables: &[u8]) -> Vec<u8> {
    let dref = full_box(
        b"dref",
        0,
        0,
        &cat(&[&1u32.to_be_bytes(), &full_box(b"url ", 0, 1, &[])]),
    );
    let minf = mp4_box(
        b"minf",
        &cat(&[
            &full_box(b"vmhd", 0, 1, &[0; 8]),
            &mp4_box(b"dinf", &dref),
            &mp4_box(b"stbl", &cat(&[&stsd(track), stbl_tables])),
        ]),
    );
    let mdia = mp4_box(b"mdia", &cat(&[&mdhd(duration), &hdlr(), &minf]));
    mp4_box(b"trak", &cat(&[&tkhd(track, duration), &mdia]))
}

/// The initialization fragment: `ftyp` and a `moov` with empty sample tables and `mvex`.
pub fn init_segment(track: &Track) -> Vec<u8> {
    let empty = cat(&[
        &full_box(b"stts", 0, 0, &[0; 4]),
        &full_box(b"stsc", 0, 0, &[0; 4]),
        &full_box(b"stsz", 0, 0, &[0; 8]),
        &full_box(b"stco", 0, 0, &[0; 4]),
    ]);
    let trex = full_box(
        b"trex",
        0,
        0,
        &cat(&[&1u32.to_be_bytes(), &1u32.to_be_bytes(), &[0; 12]]),
    );
    let moov = mp4_box(
        b"moov",
        &cat(&[
            &mvhd(0, 0),
            &trak(track, 0, &empty),
            &mp4_box(b"mvex", &trex),
        ]),
    );
    cat(&[&ftyp(b"iso6"), &moov])
}

/// Decode timing of a run of frames: the first decode time and, per frame, (duration, size,
/// key, composition offset). Matroska stores presentation times only; decode times are the
/// sorted presentation times shifted back by the deepest reordering, so every offset is >= 0
/// (no B-frames: decode time = presentation time).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Timing {
    pub first_dts: i64,
    pub samples: Vec<(u32, u32, bool, u32)>,
}

/// Timing of `frames`, the last one lasting until `next_ms` when known, else the mean step.
pub fn timing(frames: &[Frame<'_>], next_ms: Option<i64>) -> Timing {
    let mut sorted: Vec<i64> = frames.iter().map(|f| f.pts_ms).collect();
    sorted.sort_unstable();
    let shift = frames
        .iter()
        .zip(&sorted)
        .map(|(f, s)| s.saturating_sub(f.pts_ms))
        .max()
        .unwrap_or(0)
        .max(0);
    let dts: Vec<i64> = sorted.iter().map(|s| s.saturating_sub(shift)).collect();
    let n = frames.len() as i64;
    let mean = match (sorted.first(), sorted.last()) {
        (Some(a), Some(b)) if n > 1 => (b.saturating_sub(*a) / (n - 1)).max(1),
        _ => 33,
    };
    let samples = frames
        .iter()
        .enumerate()
        .map(|(i, f)| {
            let next = match dts.get(i + 1) {
                Some(d) => *d,
                None => next_ms
                    .map(|t| t.saturating_sub(shift))
                    .filter(|t| *t > dts[i])
                    .unwrap_or(dts[i].saturating_add(mean)),
            };
            let duration = next.saturating_sub(dts[i]).clamp(1, i64::from(u32::MAX)) as u32;
            let cts = f
                .pts_ms
                .saturating_sub(dts[i])
                .clamp(0, i64::from(u32::MAX)) as u32;
            (duration, f.data.len() as u32, f.key, cts)
        })
        .collect();
    Timing {
        first_dts: dts.first().copied().unwrap_or(0),
        samples,
    }
}

fn sample_flags(key: bool) -> u32 {
    if key {
        0x0200_0000 // depends on no other sample
    } else {
        0x0101_0000 // depends on others, not a sync sample
    }
}

/// A media fragment: `moof` (sequence `seq`, `tfdt` = the first decode time in producer
/// milliseconds) and the `mdat` with the frames as stored.
pub fn media_segment(seq: u32, frames: &[Frame<'_>], next_ms: Option<i64>) -> Vec<u8> {
    let t = timing(frames, next_ms);
    let traf_len = |trun_len: usize| 8 + 16 + 20 + trun_len;
    let trun_len = 12 + 8 + 16 * t.samples.len();
    let moof_len = 8 + 16 + traf_len(trun_len);
    let mut trun = Vec::with_capacity(trun_len);
    trun.extend_from_slice(&(t.samples.len() as u32).to_be_bytes());
    trun.extend_from_slice(&((moof_len + 8) as u32).to_be_bytes()); // data offset
    for (duration, size, key, cts) in &t.samples {
        trun.extend_from_slice(&duration.to_be_bytes());
        trun.extend_from_slice(&size.to_be_bytes());
        trun.extend_from_slice(&sample_flags(*key).to_be_bytes());
        trun.extend_from_slice(&cts.to_be_bytes());
    }
    let traf = mp4_box(
        b"traf",
        &cat(&[
            // default-base-is-moof: offsets count from the moof.
            &full_box(b"tfhd", 0, 0x02_0000, &1u32.to_be_bytes()),
            &full_box(b"tfdt", 1, 0, &(t.first_dts.max(0) as u64).to_be_bytes()),
            &full_box(b"trun", 0, 0x000F01, &trun),
        ]),
    );
    let moof = mp4_box(
        b"moof",
        &cat(&[&full_box(b"mfhd", 0, 0, &seq.to_be_bytes()), &traf]),
    );
    debug_assert_eq!(moof.len(), moof_len);
    let payload: usize = frames.iter().map(|f| f.data.len()).sum();
    let mut out = Vec::with_capacity(moof.len() + payload + 8);
    out.extend_from_slice(&moof);
    out.extend_from_slice(&((payload + 8) as u32).to_be_bytes());
    out.extend_from_slice(b"mdat");
    for f in frames {
        out.extend_from_slice(f.data);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(pts_ms: i64, key: bool) -> Frame<'static> {
        Frame {
            pts_ms,
            key,
            data: &[0, 0, 0, 1, 0x65],
        }
    }

    #[test]
    fn decode_times_never_pass_presentation_times() {
        // I P B B, presented I B B P.
        let frames = [
            frame(0, true),
            frame(120, false),
            frame(40, false),
            frame(80, false),
        ];
        let t = timing(&frames, Some(160));
        assert_eq!(t.first_dts, -40);
        let durations: Vec<u32> = t.samples.iter().map(|s| s.0).collect();
        assert_eq!(durations, [40, 40, 40, 40]);
        let offsets: Vec<u32> = t.samples.iter().map(|s| s.3).collect();
        assert_eq!(offsets, [40, 120, 0, 0]);
    }

    #[test]
    fn a_media_segment_points_its_samples_at_its_mdat() {
        let frames = [frame(1_000, true), frame(1_040, false)];
        let seg = media_segment(3, &frames, None);
        assert_eq!(&seg[4..8], b"moof");
        let moof_len = u32::from_be_bytes(seg[0..4].try_into().unwrap()) as usize;
        assert_eq!(&seg[moof_len + 4..moof_len + 8], b"mdat");
        assert_eq!(seg.len(), moof_len + 8 + 10);
    }
}
