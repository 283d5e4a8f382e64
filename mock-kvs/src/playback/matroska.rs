//! Reading stored fragments back as frames: the video track the stream header describes, and
//! each block of a cluster with its producer timestamp. What playback re-packages.

use telescope_kvs::mkv::{id, H264_CODEC_ID};

use crate::media::StoredFragment;
use crate::mkv::element_header;

/// The video track of a stream header.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Track {
    /// `CodecID`, e.g. `V_MPEG4/ISO/AVC`.
    pub codec_id: String,
    /// `CodecPrivate`: for H.264 an AVCDecoderConfigurationRecord (ISO/IEC 14496-15), which is
    /// exactly the body of an MP4 `avcC` box.
    pub codec_private: Vec<u8>,
    pub width: u32,
    pub height: u32,
    /// Nanoseconds per timecode unit (`TimecodeScale`, default 1 ms).
    pub timecode_scale_ns: u64,
    /// The track number blocks carry.
    pub number: u64,
}

/// One access unit of a fragment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Frame<'a> {
    /// Producer timestamp in milliseconds since the epoch (presentation time).
    pub pts_ms: i64,
    pub key: bool,
    /// The length-prefixed (AVCC) access unit, as stored.
    pub data: &'a [u8],
}

/// Why a fragment cannot be played back; each maps onto the error the service names for it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum PlaybackMediaError {
    #[error("the stream header has no track")]
    NoTrack,
    #[error("track 1 has codec ID `{0}`, not {H264_CODEC_ID}")]
    UnsupportedCodec(String),
    #[error("track 1 has no codec private data")]
    MissingCodecPrivate,
    #[error("track 1's codec private data is not an AVCDecoderConfigurationRecord")]
    InvalidCodecPrivate,
    #[error("a frame of fragment {0} cannot be parsed")]
    BadFrame(String),
    #[error("this mock-kvs keeps no media bytes (started without them)")]
    NoMediaKept,
}

/// Children of a master element's body: (id, data). Stops quietly at malformed input (what
/// follows is not trusted). An element of unknown size, or one larger than what is here (the
/// stored header holds a Segment's element header as a producer wrote it, a file's Segment
/// with its whole size), yields the rest of the buffer.
fn children(buf: &[u8]) -> Vec<(u32, &[u8])> {
    let mut out = Vec::new();
    let mut pos = 0usize;
    while pos < buf.len() {
        let Ok(Some((eid, size, hlen))) = element_header(&buf[pos..], pos as u64) else {
            break;
        };
        let start = pos + hlen;
        let end = size
            .and_then(|s| usize::try_from(s).ok())
            .and_then(|s| start.checked_add(s))
            .map_or(buf.len(), |end| end.min(buf.len()));
        out.push((eid, &buf[start..end]));
        pos = end;
    }
    out
}

fn uint(data: &[u8]) -> u64 {
    data.iter()
        .take(8)
        .fold(0u64, |v, b| (v << 8) | u64::from(*b))
}

/// The first video track of a stored stream header (EBML, Segment, Info, Tracks).
pub fn track(header: &[u8]) -> Result<Track, PlaybackMediaError> {
    let mut scale = 1_000_000;
    let mut found = None;
    for (eid, data) in children(header) {
        if eid != id::SEGMENT {
            continue;
        }
        for (eid, data) in children(data) {
            match eid {
                id::INFO => {
                    if let Some((_, v)) = children(data)
                        .into_iter()
                        .find(|(e, _)| *e == id::TIMECODE_SCALE)
                    {
                        scale = uint(v).max(1);
                    }
                }
                id::TRACKS if found.is_none() => {
                    found = children(data)
                        .into_iter()
                        .filter(|(e, _)| *e == id::TRACK_ENTRY)
                        .map(|(_, entry)| track_entry(entry))
                        .next();
                }
                _ => {}
            }
        }
    }
    let mut track = found.ok_or(PlaybackMediaError::NoTrack)?;
    track.timecode_scale_ns = scale;
    Ok(track)
}

fn track_entry(entry: &[u8]) -> Track {
    let mut t = Track {
        number: 1,
        ..Track::default()
    };
    for (eid, v) in children(entry) {
        match eid {
            id::TRACK_NUMBER => t.number = uint(v),
            // EBML strings may be padded with NULs (GStreamer's matroskamux writes one).
            id::CODEC_ID => {
                t.codec_id = String::from_utf8_lossy(v).trim_end_matches('\0').to_owned()
            }
            id::CODEC_PRIVATE => t.codec_private = v.to_vec(),
            id::VIDEO => {
                for (eid, v) in children(v) {
                    match eid {
                        id::PIXEL_WIDTH => t.width = uint(v) as u32,
                        id::PIXEL_HEIGHT => t.height = uint(v) as u32,
                        _ => {}
                    }
                }
            }
            _ => {}
        }
    }
    t
}

/// The track, checked as the service checks a stream before playing it back: H.264 on track 1
/// with AVC codec private data (GetHLSStreamingSessionURL, GetClip requirements in the
/// kinesis-video-archived-media API reference).
pub fn playable_track(header: &[u8]) -> Result<Track, PlaybackMediaError> {
    let t = track(header)?;
    if t.codec_id != H264_CODEC_ID {
        return Err(PlaybackMediaError::UnsupportedCodec(t.codec_id));
    }
    if t.codec_private.is_empty() {
        return Err(PlaybackMediaError::MissingCodecPrivate);
    }
    // configurationVersion 1, then profile, compatibility, level, length size, SPS count.
    if t.codec_private.len() < 7 || t.codec_private[0] != 1 {
        return Err(PlaybackMediaError::InvalidCodecPrivate);
    }
    Ok(t)
}

/// The frames of a stored fragment, in storage (decode) order, with producer timestamps.
pub fn frames<'a>(
    fragment: &'a StoredFragment,
    track: &Track,
) -> Result<Vec<Frame<'a>>, PlaybackMediaError> {
    let bad = || PlaybackMediaError::BadFrame(fragment.number.clone());
    if fragment.raw.is_empty() {
        return Err(PlaybackMediaError::NoMediaKept);
    }
    let Some((eid, body)) = children(&fragment.raw).into_iter().next() else {
        return Err(bad());
    };
    if eid != id::CLUSTER {
        return Err(bad());
    }
    let unit_ns = i64::try_from(track.timecode_scale_ns).unwrap_or(1_000_000);
    let mut out = Vec::new();
    for (eid, data) in children(body) {
        let (block, key_hint) = match eid {
            id::SIMPLE_BLOCK => (data, None),
            id::BLOCK_GROUP => {
                let kids = children(data);
                // A BlockGroup without a ReferenceBlock (0xFB) is a key frame.
                let key = !kids.iter().any(|(e, _)| *e == 0xFB);
                match kids.into_iter().find(|(e, _)| *e == id::BLOCK) {
                    Some((_, b)) => (b, Some(key)),
                    None => continue,
                }
            }
            _ => continue,
        };
        let (number, offset, flags, payload) = parse_block(block).ok_or_else(bad)?;
        if number != track.number {
            continue;
        }
        if flags & 0x06 != 0 {
            // Laced video blocks: not what any H.264 producer sends.
            return Err(bad());
        }
        let pts_ms = i64::try_from(fragment.producer_ms)
            .unwrap_or(i64::MAX)
            .saturating_add(i64::from(offset).saturating_mul(unit_ns) / 1_000_000);
        out.push(Frame {
            pts_ms,
            key: key_hint.unwrap_or(flags & 0x80 != 0),
            data: payload,
        });
    }
    Ok(out)
}

/// A (Simple)Block body: track number, relative timecode, flags, frame.
fn parse_block(b: &[u8]) -> Option<(u64, i16, u8, &[u8])> {
    let first = *b.first()?;
    let len = first.leading_zeros() as usize + 1;
    if len > 8 || b.len() < len + 3 {
        return None;
    }
    let mask = (0xFFu16 >> len) as u8;
    let number = b[1..len]
        .iter()
        .fold(u64::from(first & mask), |v, x| (v << 8) | u64::from(*x));
    let offset = i16::from_be_bytes([b[len], b[len + 1]]);
    Some((number, offset, b[len + 2], &b[len + 3..]))
}

#[cfg(test)]
mod tests {
    use super::*;
    use telescope_kvs::mkv::{cluster, header, Block, TrackInfo};

    #[test]
    fn frames_come_back_with_their_producer_timestamps() {
        let info = TrackInfo {
            width: 64,
            height: 48,
            codec_private: vec![1, 0x42, 0, 0x1e, 0xFF, 0xE1, 0],
            frame_duration_ns: None,
        };
        let head = header(&info, [1; 16]);
        let t = playable_track(&head).unwrap();
        assert_eq!((t.width, t.height, t.number), (64, 48, 1));
        let blocks = [0i16, 40, 80].map(|o| Block {
            offset_ms: o,
            key: o == 0,
            data: vec![0, 0, 0, 1, 0x65],
        });
        let f = StoredFragment {
            number: "1".into(),
            producer_ms: 1_000,
            server_ms: 2_000,
            frames: 3,
            duration_ms: 80,
            raw: cluster(1_000, &blocks),
            header: Default::default(),
        };
        let got = frames(&f, &t).unwrap();
        let times: Vec<i64> = got.iter().map(|f| f.pts_ms).collect();
        assert_eq!(times, [1_000, 1_040, 1_080]);
        assert!(got[0].key && !got[1].key);
        assert_eq!(got[2].data, [0, 0, 0, 1, 0x65]);
    }

    proptest::proptest! {
        #[test]
        fn any_bytes_are_read_without_panicking(
            header in proptest::collection::vec(proptest::num::u8::ANY, 0..300),
            raw in proptest::collection::vec(proptest::num::u8::ANY, 0..300),
        ) {
            let t = track(&header).unwrap_or_default();
            let f = StoredFragment {
                number: "1".into(),
                producer_ms: 1,
                server_ms: 1,
                frames: 1,
                duration_ms: 0,
                raw,
                header: Default::default(),
            };
            let _ = frames(&f, &t);
        }

        #[test]
        fn corrupted_fragments_are_read_without_panicking(
            at in 0usize..200, byte in proptest::num::u8::ANY, cut in 0usize..200,
        ) {
            let blocks = [0i16, 40, 80].map(|o| Block {
                offset_ms: o,
                key: o == 0,
                data: vec![0, 0, 0, 1, 0x65, 1, 2, 3],
            });
            let mut raw = cluster(5_000, &blocks);
            let n = raw.len();
            raw[at % n] = byte;
            raw.truncate(n - cut % n);
            let f = StoredFragment {
                number: "1".into(),
                producer_ms: 5_000,
                server_ms: 5_000,
                frames: 3,
                duration_ms: 80,
                raw,
                header: Default::default(),
            };
            let t = Track { number: 1, timecode_scale_ns: 1_000_000, ..Track::default() };
            let _ = frames(&f, &t);
        }
    }

    #[test]
    fn garbage_is_an_error_not_a_panic() {
        assert!(track(&[0x1A, 0x45, 0xDF]).is_err());
        let f = StoredFragment {
            number: "1".into(),
            producer_ms: 0,
            server_ms: 0,
            frames: 0,
            duration_ms: 0,
            raw: vec![0x1F, 0x43, 0xB6, 0x75, 0x84, 0xA3, 0x81, 0x81, 0],
            header: Default::default(),
        };
        assert!(frames(&f, &Track::default()).is_err());
    }
}
