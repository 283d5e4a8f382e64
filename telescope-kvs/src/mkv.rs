//! A minimal Matroska writer for KVS: one header (EBML, Segment of unknown size, Info, Tracks
//! with one H.264 track), then one Cluster per fragment, each starting with a key frame and
//! carrying an absolute timecode in milliseconds. Owning the muxer (instead of `matroskamux`)
//! makes fragment boundaries exact and lets a reconnect resend the header and the
//! unacknowledged clusters byte for byte.

/// EBML element IDs used here (with their length-marker bits, as written).
pub mod id {
    pub const EBML: u32 = 0x1A45_DFA3;
    pub const EBML_VERSION: u32 = 0x4286;
    pub const EBML_READ_VERSION: u32 = 0x42F7;
    pub const EBML_MAX_ID_LENGTH: u32 = 0x42F2;
    pub const EBML_MAX_SIZE_LENGTH: u32 = 0x42F3;
    pub const DOC_TYPE: u32 = 0x4282;
    pub const DOC_TYPE_VERSION: u32 = 0x4287;
    pub const DOC_TYPE_READ_VERSION: u32 = 0x4285;
    pub const SEGMENT: u32 = 0x1853_8067;
    pub const INFO: u32 = 0x1549_A966;
    pub const TIMECODE_SCALE: u32 = 0x2A_D7B1;
    pub const SEGMENT_UID: u32 = 0x73A4;
    pub const MUXING_APP: u32 = 0x4D80;
    pub const WRITING_APP: u32 = 0x5741;
    pub const TRACKS: u32 = 0x1654_AE6B;
    pub const TRACK_ENTRY: u32 = 0xAE;
    pub const TRACK_NUMBER: u32 = 0xD7;
    pub const TRACK_UID: u32 = 0x73C5;
    pub const TRACK_TYPE: u32 = 0x83;
    pub const CODEC_ID: u32 = 0x86;
    pub const CODEC_PRIVATE: u32 = 0x63A2;
    pub const DEFAULT_DURATION: u32 = 0x23_E383;
    pub const VIDEO: u32 = 0xE0;
    pub const PIXEL_WIDTH: u32 = 0xB0;
    pub const PIXEL_HEIGHT: u32 = 0xBA;
    pub const CLUSTER: u32 = 0x1F43_B675;
    pub const TIMECODE: u32 = 0xE7;
    pub const SIMPLE_BLOCK: u32 = 0xA3;
    pub const BLOCK_GROUP: u32 = 0xA0;
    pub const BLOCK: u32 = 0xA1;
}

/// The codec ID KVS (and every Matroska player) expects for H.264 in AVCC form.
pub const H264_CODEC_ID: &str = "V_MPEG4/ISO/AVC";

/// The size field meaning "unknown" (live streams): all ones in 8 bytes.
pub const UNKNOWN_SIZE: [u8; 8] = [0x01, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF];

fn push_id(out: &mut Vec<u8>, id: u32) {
    let bytes = id.to_be_bytes();
    let skip = bytes.iter().take_while(|b| **b == 0).count().min(3);
    out.extend_from_slice(&bytes[skip..]);
}

/// An EBML variable-size integer for a data size, in the fewest bytes.
pub fn push_size(out: &mut Vec<u8>, size: u64) {
    for len in 1..=8u32 {
        // All-ones is reserved for "unknown", so the largest value is one less.
        let max = (1u64 << (7 * len)) - 2;
        if size <= max {
            let marked = size | (1u64 << (7 * len));
            out.extend_from_slice(&marked.to_be_bytes()[8 - len as usize..]);
            return;
        }
    }
    out.extend_from_slice(&UNKNOWN_SIZE);
}

/// A `Tags` element holding one `Tag` with a `SimpleTag` (name, string) per pair, as Kinesis
/// Video Streams adds to the chunks GetMedia returns (`AWS_KINESISVIDEO_FRAGMENT_NUMBER`...).
pub fn tags(pairs: &[(&str, &str)]) -> Vec<u8> {
    let mut simple = Vec::new();
    for (name, value) in pairs {
        let mut st = Vec::new();
        element(&mut st, 0x45A3, name.as_bytes());
        element(&mut st, 0x4487, value.as_bytes());
        element(&mut simple, 0x67C8, &st);
    }
    let mut tag = Vec::new();
    element(&mut tag, 0x7373, &simple);
    let mut out = Vec::new();
    element(&mut out, 0x1254_C367, &tag);
    out
}

fn element(out: &mut Vec<u8>, id: u32, data: &[u8]) {
    push_id(out, id);
    push_size(out, data.len() as u64);
    out.extend_from_slice(data);
}

fn uint(out: &mut Vec<u8>, id: u32, value: u64) {
    let bytes = value.to_be_bytes();
    let skip = bytes.iter().take_while(|b| **b == 0).count().min(7);
    element(out, id, &bytes[skip..]);
}

fn master(out: &mut Vec<u8>, id: u32, build: impl FnOnce(&mut Vec<u8>)) {
    let mut body = Vec::new();
    build(&mut body);
    element(out, id, &body);
}

/// What the header says about the one video track.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TrackInfo {
    /// Width in pixels.
    pub width: u32,
    /// Height in pixels.
    pub height: u32,
    /// The AVCDecoderConfigurationRecord (`codec_data` of `video/x-h264,stream-format=avc`).
    pub codec_private: Vec<u8>,
    /// Nanoseconds per frame, if constant.
    pub frame_duration_ns: Option<u64>,
}

/// EBML header, Segment start (unknown size), Info and Tracks.
pub fn header(track: &TrackInfo, segment_uid: [u8; 16]) -> Vec<u8> {
    let mut out = Vec::with_capacity(256 + track.codec_private.len());
    master(&mut out, id::EBML, |b| {
        uint(b, id::EBML_VERSION, 1);
        uint(b, id::EBML_READ_VERSION, 1);
        uint(b, id::EBML_MAX_ID_LENGTH, 4);
        uint(b, id::EBML_MAX_SIZE_LENGTH, 8);
        element(b, id::DOC_TYPE, b"matroska");
        uint(b, id::DOC_TYPE_VERSION, 4);
        uint(b, id::DOC_TYPE_READ_VERSION, 2);
    });
    push_id(&mut out, id::SEGMENT);
    out.extend_from_slice(&UNKNOWN_SIZE);
    master(&mut out, id::INFO, |b| {
        uint(b, id::TIMECODE_SCALE, 1_000_000);
        element(b, id::SEGMENT_UID, &segment_uid);
        element(b, id::MUXING_APP, b"telescope");
        element(b, id::WRITING_APP, b"telescope");
    });
    master(&mut out, id::TRACKS, |b| {
        master(b, id::TRACK_ENTRY, |t| {
            uint(t, id::TRACK_NUMBER, 1);
            uint(t, id::TRACK_UID, 1);
            uint(t, id::TRACK_TYPE, 1);
            element(t, id::CODEC_ID, H264_CODEC_ID.as_bytes());
            element(t, id::CODEC_PRIVATE, &track.codec_private);
            if let Some(d) = track.frame_duration_ns {
                uint(t, id::DEFAULT_DURATION, d);
            }
            master(t, id::VIDEO, |v| {
                uint(v, id::PIXEL_WIDTH, u64::from(track.width));
                uint(v, id::PIXEL_HEIGHT, u64::from(track.height));
            });
        });
    });
    out
}

/// One access unit inside a fragment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Block {
    /// Milliseconds from the cluster's timecode (fits in an `i16`).
    pub offset_ms: i16,
    /// Whether this is a key frame.
    pub key: bool,
    /// The AVCC (length-prefixed) access unit.
    pub data: Vec<u8>,
}

/// A Cluster of known size: absolute `timecode_ms`, then one SimpleBlock per access unit.
pub fn cluster(timecode_ms: u64, blocks: &[Block]) -> Vec<u8> {
    let payload: usize = blocks.iter().map(|b| b.data.len() + 16).sum();
    let mut out = Vec::with_capacity(payload + 32);
    master(&mut out, id::CLUSTER, |c| {
        uint(c, id::TIMECODE, timecode_ms);
        for block in blocks {
            let mut body = Vec::with_capacity(block.data.len() + 4);
            body.push(0x81); // track number 1 as an EBML vint
            body.extend_from_slice(&block.offset_ms.to_be_bytes());
            body.push(if block.key { 0x80 } else { 0x00 });
            body.extend_from_slice(&block.data);
            element(c, id::SIMPLE_BLOCK, &body);
        }
    });
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_use_the_fewest_bytes_and_skip_the_reserved_value() {
        let enc = |v| {
            let mut o = Vec::new();
            push_size(&mut o, v);
            o
        };
        assert_eq!(enc(0), vec![0x80]);
        assert_eq!(enc(126), vec![0xFE]);
        assert_eq!(enc(127), vec![0x40, 0x7F], "0xFF alone would mean unknown");
        assert_eq!(enc(16_382), vec![0x7F, 0xFE]);
        assert_eq!(enc(16_383), vec![0x20, 0x3F, 0xFF]);
    }

    #[test]
    fn a_cluster_holds_its_timecode_and_blocks() {
        let c = cluster(
            1_796_022_900_123,
            &[Block {
                offset_ms: 0,
                key: true,
                data: vec![0, 0, 0, 1, 0x65],
            }],
        );
        assert_eq!(&c[..4], &[0x1F, 0x43, 0xB6, 0x75]);
        let size = c[4] & 0x7F;
        assert_eq!(usize::from(size), c.len() - 5);
        assert_eq!(c[5], 0xE7, "Timecode first");
        assert!(
            c.windows(4).any(|w| w == [0x81, 0x00, 0x00, 0x80]),
            "track 1, offset 0, key frame"
        );
    }
}
