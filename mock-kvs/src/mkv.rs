//! An incremental Matroska reader for the PutMedia body: it sees bytes as they arrive and
//! reports the stream header and each complete cluster (fragment). Malformed input is a typed
//! error, never a panic, and what it holds is bounded: a fragment by KVS's 50 MB limit, the
//! header by the size of one Info and one Tracks, and elements it does not keep (SeekHead,
//! Void, Cues, Tags) are skipped as they stream past rather than buffered.

use telescope_kvs::mkv::{id, UNKNOWN_SIZE};

/// What the reader found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MkvEvent {
    /// EBML header, Segment start, Info and Tracks, as raw bytes (GetMedia replays them).
    Header(Vec<u8>),
    /// A complete cluster.
    Cluster(Cluster),
}

/// One fragment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cluster {
    /// Cluster timecode (milliseconds with a 1 ms timecode scale).
    pub timecode: u64,
    /// Blocks in the cluster.
    pub frames: u32,
    /// Whether the first block is a key frame (a SimpleBlock with its key flag, or a
    /// BlockGroup without a ReferenceBlock).
    pub starts_with_key: bool,
    /// Smallest block offset, milliseconds (the earliest frame is `timecode + first_offset`).
    pub first_offset: i64,
    /// Largest block offset, milliseconds (the latest frame is `timecode + last_offset`).
    pub last_offset: i64,
    /// The cluster's bytes, re-encoded with a known size.
    pub raw: Vec<u8>,
}

impl Cluster {
    /// The earliest frame's timestamp, in timecode units (cluster timecode plus the smallest
    /// block offset; block offsets may be negative).
    pub fn earliest_frame(&self) -> i128 {
        i128::from(self.timecode) + i128::from(self.first_offset)
    }

    /// The latest frame's timestamp, in timecode units.
    pub fn latest_frame(&self) -> i128 {
        i128::from(self.timecode) + i128::from(self.last_offset)
    }
}

/// Why the body is not a Matroska stream KVS would take.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum MkvError {
    #[error("invalid EBML variable-size integer at byte {0}")]
    BadVint(u64),
    #[error("element {id:#x} of {size} bytes is larger than allowed")]
    TooLarge { id: u32, size: u64 },
    #[error("a fragment of more than {MAX_FRAGMENT} bytes (KVS's 50 MB limit)")]
    FragmentTooLarge,
    #[error("the stream does not start with an EBML header")]
    NotMatroska,
    #[error("element {0:#x} has an unknown size where that is not allowed")]
    UnknownSize(u32),
    #[error("a block came before its cluster's timecode")]
    BlockBeforeTimecode,
    #[error("malformed block")]
    BadBlock,
}

impl MkvError {
    /// The PutMedia ErrorId and ErrorCode this error is acknowledged with: 4001
    /// MAX_FRAGMENT_SIZE_REACHED for an oversized fragment, else 4006 INVALID_MKV_DATA
    /// (DOCS-ARCHIVE `API_dataplane_PutMedia.md`, ErrorId list; codes as in the AWS SDK for
    /// Java's `AckErrorCode`).
    pub fn ack_error(&self) -> (u64, &'static str) {
        match self {
            MkvError::FragmentTooLarge => (4001, "MAX_FRAGMENT_SIZE_REACHED"),
            _ => (4006, "INVALID_MKV_DATA"),
        }
    }
}

/// KVS's fragment size limit: "Maximum fragment size: 50 MB" (developer guide, limits.html,
/// PutMedia fragment-level limits).
pub const MAX_FRAGMENT: u64 = 50 * 1024 * 1024;

/// Largest Info or Tracks element kept: the producer SDKs cap codec private data at 1 MiB
/// (limits.html, producer SDK quotas), so a header needs far less than this.
pub const MAX_HEADER_ELEMENT: u64 = 2 << 20;

/// Largest EBML header (a handful of small integers and the DocType).
const MAX_EBML_HEADER: u64 = 4096;

/// Segment-level elements that end a cluster of unknown size.
const LEVEL1: [u32; 10] = [
    id::CLUSTER,
    id::EBML,
    id::SEGMENT,
    id::TRACKS,
    id::INFO,
    0x1C53_BB6B, // Cues
    0x1254_C367, // Tags
    0x114D_9B74, // SeekHead
    0x1043_A770, // Chapters
    0x1941_A469, // Attachments
];

/// Read a vint at `buf[0..]`: (value, length, all-ones). `None` if more bytes are needed.
fn vint(buf: &[u8], keep_marker: bool) -> Result<Option<(u64, usize, bool)>, ()> {
    let Some(&first) = buf.first() else {
        return Ok(None);
    };
    if first == 0 {
        return Err(());
    }
    let len = first.leading_zeros() as usize + 1;
    if buf.len() < len {
        return Ok(None);
    }
    // The bits after the length marker (a u16 shift: an 8-byte vint leaves none).
    let mask = (0xFFu16 >> len) as u8;
    let mut value = u64::from(if keep_marker { first } else { first & mask });
    let mut ones = (first & mask) == mask;
    for b in &buf[1..len] {
        value = (value << 8) | u64::from(*b);
        ones &= *b == 0xFF;
    }
    Ok(Some((value, len, ones)))
}

/// An element header: id, data size (`None` = unknown) and header length.
pub(crate) fn element_header(
    buf: &[u8],
    at: u64,
) -> Result<Option<(u32, Option<u64>, usize)>, MkvError> {
    let Some((id, id_len, _)) = vint(buf, true).map_err(|_| MkvError::BadVint(at))? else {
        return Ok(None);
    };
    if id_len > 4 {
        return Err(MkvError::BadVint(at));
    }
    let Some((size, size_len, unknown)) =
        vint(&buf[id_len..], false).map_err(|_| MkvError::BadVint(at + id_len as u64))?
    else {
        return Ok(None);
    };
    Ok(Some((
        id as u32,
        if unknown { None } else { Some(size) },
        id_len + size_len,
    )))
}

#[derive(Debug, Default)]
enum Place {
    #[default]
    Top,
    Segment,
    /// Inside a cluster of unknown size, children so far.
    OpenCluster,
}

/// The incremental reader.
#[derive(Debug, Default)]
pub struct MkvParser {
    buf: Vec<u8>,
    consumed: u64,
    place: Place,
    /// The EBML header and the Segment's element header.
    preamble: Vec<u8>,
    /// The latest Info (replaced, never appended: a stream of Tracks elements must cost
    /// linear time and constant memory).
    info: Vec<u8>,
    open: Vec<u8>,
    /// Bytes still to skip of an element not kept.
    skip: u64,
    failed: bool,
}

impl MkvParser {
    /// A reader at the start of a stream.
    pub fn new() -> Self {
        Self::default()
    }

    /// Bytes held: what waits for the rest of an element, and an open cluster's children.
    pub fn buffered(&self) -> usize {
        self.buf.capacity() + self.open.capacity()
    }

    /// Feed bytes; returns what they completed. After an error the reader stays failed.
    pub fn push(&mut self, bytes: &[u8]) -> Vec<Result<MkvEvent, MkvError>> {
        let mut out = Vec::new();
        if self.failed {
            return out;
        }
        let mut bytes = bytes;
        if self.buf.is_empty() && self.skip > 0 {
            // Skipped bytes are never copied.
            let n = self.skip.min(bytes.len() as u64) as usize;
            self.skip -= n as u64;
            self.consumed += n as u64;
            bytes = &bytes[n..];
        }
        self.buf.extend_from_slice(bytes);
        let mut pos = 0usize;
        loop {
            if self.skip > 0 {
                let n = self.skip.min((self.buf.len() - pos) as u64) as usize;
                self.skip -= n as u64;
                pos += n;
                if self.skip > 0 {
                    break;
                }
            }
            match self.step(pos) {
                Ok(Some((used, event))) => {
                    pos += used;
                    if let Some(e) = event {
                        out.push(Ok(e));
                    }
                }
                Ok(None) => break,
                Err(e) => {
                    self.failed = true;
                    out.push(Err(e));
                    break;
                }
            }
        }
        self.buf.drain(..pos);
        if self.buf.is_empty() {
            // A large element once waited for must not keep its buffer for ever.
            self.buf = Vec::new();
        }
        self.consumed += pos as u64;
        out
    }

    /// The body ended: a cluster of unknown size still open is complete now.
    pub fn finish(&mut self) -> Vec<Result<MkvEvent, MkvError>> {
        let mut out = Vec::new();
        if matches!(self.place, Place::OpenCluster) && !self.failed {
            out.push(close_cluster(&std::mem::take(&mut self.open)).map(MkvEvent::Cluster));
            self.place = Place::Segment;
        }
        out
    }

    /// Process one element at `pos`; `None` when more bytes are needed.
    fn step(&mut self, pos: usize) -> Result<Option<(usize, Option<MkvEvent>)>, MkvError> {
        let at = self.consumed + pos as u64;
        let Some((eid, size, hlen)) = element_header(&self.buf[pos..], at)? else {
            return Ok(None);
        };
        let limit = match (&self.place, eid) {
            (Place::Top, _) => MAX_EBML_HEADER,
            (Place::Segment, id::INFO | id::TRACKS) => MAX_HEADER_ELEMENT,
            (Place::Segment, id::CLUSTER) | (Place::OpenCluster, _) => MAX_FRAGMENT,
            // Skipped as it streams past: never held, so any size will do.
            (Place::Segment, _) => u64::MAX,
        };
        if size.is_some_and(|s| s > limit) && eid != id::SEGMENT {
            return Err(if limit == MAX_FRAGMENT {
                MkvError::FragmentTooLarge
            } else {
                MkvError::TooLarge {
                    id: eid,
                    size: size.unwrap_or_default(),
                }
            });
        }
        let whole = |size: Option<u64>| -> Result<Option<usize>, MkvError> {
            let size = size.ok_or(MkvError::UnknownSize(eid))? as usize;
            Ok((self.buf.len() - pos >= hlen + size).then_some(hlen + size))
        };
        match (&self.place, eid) {
            (Place::Top, id::EBML) => {
                let Some(len) = whole(size)? else {
                    return Ok(None);
                };
                self.preamble = self.buf[pos..pos + len].to_vec();
                self.info.clear();
                Ok(Some((len, None)))
            }
            (Place::Top, id::SEGMENT) if !self.preamble.is_empty() => {
                // Kept with an unknown size whatever the producer wrote (a file written by a
                // muxer that could seek back has the whole file's size there): the header is
                // replayed before other fragments, as KVS's own GetMedia output has it.
                self.preamble.extend_from_slice(&id::SEGMENT.to_be_bytes());
                self.preamble.extend_from_slice(&UNKNOWN_SIZE);
                self.place = Place::Segment;
                Ok(Some((hlen, None)))
            }
            (Place::Top, _) => Err(MkvError::NotMatroska),
            (Place::OpenCluster, e) if LEVEL1.contains(&e) => {
                // The open cluster ends where the next top-level element starts.
                let cluster = close_cluster(&std::mem::take(&mut self.open))?;
                self.place = if eid == id::EBML {
                    Place::Top
                } else {
                    Place::Segment
                };
                Ok(Some((0, Some(MkvEvent::Cluster(cluster)))))
            }
            (Place::OpenCluster, _) => {
                let total = self.open.len() as u64 + hlen as u64 + size.unwrap_or(0);
                if total > MAX_FRAGMENT {
                    return Err(MkvError::FragmentTooLarge);
                }
                let Some(len) = whole(size)? else {
                    return Ok(None);
                };
                grow_capped(&mut self.open, len);
                self.open.extend_from_slice(&self.buf[pos..pos + len]);
                Ok(Some((len, None)))
            }
            (Place::Segment, id::EBML) => {
                // A new stream on the same connection (the producer restarted).
                self.place = Place::Top;
                Ok(Some((0, None)))
            }
            (Place::Segment, id::CLUSTER) => match size {
                None => {
                    self.place = Place::OpenCluster;
                    self.open = Vec::new();
                    Ok(Some((hlen, None)))
                }
                Some(_) => {
                    let Some(len) = whole(size)? else {
                        return Ok(None);
                    };
                    let cluster = close_cluster(&self.buf[pos + hlen..pos + len])?;
                    Ok(Some((len, Some(MkvEvent::Cluster(cluster)))))
                }
            },
            (Place::Segment, id::INFO) => {
                let Some(len) = whole(size)? else {
                    return Ok(None);
                };
                self.info = self.buf[pos..pos + len].to_vec();
                Ok(Some((len, None)))
            }
            (Place::Segment, id::TRACKS) => {
                let Some(len) = whole(size)? else {
                    return Ok(None);
                };
                let mut header = Vec::with_capacity(self.preamble.len() + self.info.len() + len);
                header.extend_from_slice(&self.preamble);
                header.extend_from_slice(&self.info);
                header.extend_from_slice(&self.buf[pos..pos + len]);
                Ok(Some((len, Some(MkvEvent::Header(header)))))
            }
            (Place::Segment, _) => {
                // Not kept: skipped as it streams past.
                self.skip = size.ok_or(MkvError::UnknownSize(eid))?;
                Ok(Some((hlen, None)))
            }
        }
    }
}

/// Make room for `extra` more bytes, doubling as a Vec does but never past what one fragment
/// may hold, so that an open cluster's buffer stays within the fragment limit.
fn grow_capped(v: &mut Vec<u8>, extra: usize) {
    let needed = v.len() + extra;
    if needed > v.capacity() {
        let target = (v.capacity() * 2)
            .max(needed)
            .min(MAX_FRAGMENT as usize)
            .max(needed);
        v.reserve_exact(target - v.len());
    }
}

/// Parse a cluster's children and re-encode it with a known size.
fn close_cluster(children: &[u8]) -> Result<Cluster, MkvError> {
    let mut pos = 0;
    let mut timecode = None;
    let (mut frames, mut first_key) = (0u32, None);
    let (mut first, mut last) = (i64::MAX, i64::MIN);
    while pos < children.len() {
        let Some((eid, size, hlen)) = element_header(&children[pos..], pos as u64)? else {
            return Err(MkvError::BadBlock);
        };
        let size = size.ok_or(MkvError::UnknownSize(eid))? as usize;
        let body = children
            .get(pos + hlen..pos + hlen + size)
            .ok_or(MkvError::BadBlock)?;
        match eid {
            id::TIMECODE => {
                if body.len() > 8 {
                    return Err(MkvError::BadBlock);
                }
                timecode = Some(body.iter().fold(0u64, |v, b| (v << 8) | u64::from(*b)))
            }
            id::SIMPLE_BLOCK | id::BLOCK_GROUP => {
                if timecode.is_none() {
                    return Err(MkvError::BlockBeforeTimecode);
                }
                let (block, referenced) = if eid == id::BLOCK_GROUP {
                    inner_block(body)?
                } else {
                    (body, false)
                };
                let (_, tlen, _) = vint(block, false)
                    .map_err(|_| MkvError::BadBlock)?
                    .ok_or(MkvError::BadBlock)?;
                let rest = block.get(tlen..tlen + 3).ok_or(MkvError::BadBlock)?;
                let offset = i64::from(i16::from_be_bytes([rest[0], rest[1]]));
                // A SimpleBlock says so in its flags; a BlockGroup is a key frame unless it
                // references another frame (Matroska spec, BlockGroup/ReferenceBlock).
                let key = if eid == id::SIMPLE_BLOCK {
                    rest[2] & 0x80 != 0
                } else {
                    !referenced
                };
                first_key.get_or_insert(key);
                first = first.min(offset);
                last = last.max(offset);
                frames += 1;
            }
            _ => {}
        }
        pos += hlen + size;
    }
    let timecode = timecode.ok_or(MkvError::BlockBeforeTimecode)?;
    if frames == 0 {
        (first, last) = (0, 0);
    }
    let mut raw = Vec::with_capacity(children.len() + 12);
    raw.extend_from_slice(&id::CLUSTER.to_be_bytes());
    telescope_kvs::mkv::push_size(&mut raw, children.len() as u64);
    raw.extend_from_slice(children);
    Ok(Cluster {
        timecode,
        frames,
        starts_with_key: first_key.unwrap_or(false),
        first_offset: first,
        last_offset: last,
        raw,
    })
}

/// The Block inside a BlockGroup, and whether the group holds a ReferenceBlock.
fn inner_block(group: &[u8]) -> Result<(&[u8], bool), MkvError> {
    const REFERENCE_BLOCK: u32 = 0xFB;
    let (mut pos, mut block, mut referenced) = (0, None, false);
    while pos < group.len() {
        let (eid, size, hlen) = element_header(&group[pos..], 0)?.ok_or(MkvError::BadBlock)?;
        let size = size.ok_or(MkvError::BadBlock)? as usize;
        let body = group
            .get(pos + hlen..pos + hlen + size)
            .ok_or(MkvError::BadBlock)?;
        match eid {
            id::BLOCK => block = Some(body),
            REFERENCE_BLOCK => referenced = true,
            _ => {}
        }
        pos += hlen + size;
    }
    block.map(|b| (b, referenced)).ok_or(MkvError::BadBlock)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use telescope_kvs::mkv::{cluster, header, Block, TrackInfo};

    fn stream() -> (Vec<u8>, Vec<Vec<u8>>) {
        let head = header(
            &TrackInfo {
                width: 64,
                height: 48,
                codec_private: vec![1, 2, 3],
                frame_duration_ns: Some(40_000_000),
            },
            [7; 16],
        );
        let clusters: Vec<Vec<u8>> = (0..3u64)
            .map(|i| {
                cluster(
                    1_000_000 + i * 2000,
                    &[
                        Block {
                            offset_ms: 0,
                            key: true,
                            data: vec![9; 100],
                        },
                        Block {
                            offset_ms: 40,
                            key: false,
                            data: vec![8; 50],
                        },
                    ],
                )
            })
            .collect();
        let mut all = head;
        for c in &clusters {
            all.extend_from_slice(c);
        }
        (all, clusters)
    }

    #[test]
    fn a_segment_of_known_size_is_kept_as_one_of_unknown_size() {
        let (live, _) = stream();
        let at = live
            .windows(12)
            .position(|w| w[..4] == [0x18, 0x53, 0x80, 0x67] && w[4..] == UNKNOWN_SIZE)
            .expect("a Segment of unknown size");
        // The same stream as a muxer that seeks back writes it: the Segment's size filled in.
        let mut file = live.clone();
        let rest = (live.len() - at - 12) as u64;
        file[at + 4..at + 12].copy_from_slice(&(rest | (1 << 56)).to_be_bytes());
        let header = |bytes: &[u8]| {
            let events = MkvParser::new().push(bytes);
            match events.into_iter().next() {
                Some(Ok(MkvEvent::Header(h))) => h,
                other => panic!("no header: {other:?}"),
            }
        };
        assert_ne!(file, live);
        assert_eq!(header(&file), header(&live));
    }

    #[test]
    fn our_own_fragments_parse_back() {
        let (bytes, clusters) = stream();
        let mut p = MkvParser::new();
        let events: Vec<MkvEvent> = p
            .push(&bytes)
            .into_iter()
            .collect::<Result<_, _>>()
            .unwrap();
        assert!(matches!(events[0], MkvEvent::Header(_)));
        let parsed: Vec<&Cluster> = events
            .iter()
            .filter_map(|e| {
                if let MkvEvent::Cluster(c) = e {
                    Some(c)
                } else {
                    None
                }
            })
            .collect();
        assert_eq!(parsed.len(), 3);
        assert_eq!(parsed[1].timecode, 1_002_000);
        assert_eq!(
            (
                parsed[1].frames,
                parsed[1].starts_with_key,
                parsed[1].last_offset
            ),
            (2, true, 40)
        );
        assert_eq!(
            parsed[2].raw, clusters[2],
            "clusters are stored byte for byte"
        );
    }

    #[test]
    fn a_stream_of_tracks_elements_costs_constant_memory() {
        // 16000 Tracks in a row once cloned a growing header each time (3.3 MB input, 24 s,
        // 1 GB). Each header reported now holds one Info and the latest Tracks.
        let (bytes, _) = stream();
        let tracks_at = bytes
            .windows(4)
            .position(|w| w == id::TRACKS.to_be_bytes())
            .unwrap();
        let clusters_at = bytes
            .windows(4)
            .position(|w| w == id::CLUSTER.to_be_bytes())
            .unwrap();
        let tracks = &bytes[tracks_at..clusters_at];
        let mut p = MkvParser::new();
        p.push(&bytes[..clusters_at]);
        let mut largest = 0;
        for _ in 0..16_000 {
            for e in p.push(tracks) {
                if let Ok(MkvEvent::Header(h)) = e {
                    largest = largest.max(h.len());
                }
            }
        }
        assert!(largest <= clusters_at, "header grew to {largest} bytes");
    }

    #[test]
    fn an_unknown_size_cluster_past_the_fragment_limit_is_refused() {
        let (bytes, _) = stream();
        let clusters_at = bytes
            .windows(4)
            .position(|w| w == id::CLUSTER.to_be_bytes())
            .unwrap();
        let mut p = MkvParser::new();
        assert!(p.push(&bytes[..clusters_at]).iter().all(Result::is_ok));
        let mut open = id::CLUSTER.to_be_bytes().to_vec();
        open.extend_from_slice(&telescope_kvs::mkv::UNKNOWN_SIZE);
        open.extend_from_slice(&[0xE7, 0x81, 0x00]);
        assert!(p.push(&open).is_empty());
        // 1 MiB SimpleBlocks, one after another.
        let mut block = vec![0xA3, 0x10, 0x10, 0x00, 0x00, 0x81, 0, 0, 0x80];
        block.resize(5 + 0x10_0000, 7);
        let mut refused = None;
        for i in 0..80 {
            let events = p.push(&block);
            assert!(
                p.buffered() as u64 <= MAX_FRAGMENT + (4 << 20),
                "{}",
                p.buffered()
            );
            if let Some(Err(e)) = events.into_iter().next() {
                refused = Some((i, e));
                break;
            }
        }
        let (i, e) = refused.expect("refused before 80 MiB");
        assert_eq!(e, MkvError::FragmentTooLarge);
        assert_eq!(e.ack_error(), (4001, "MAX_FRAGMENT_SIZE_REACHED"));
        assert!((49..=51).contains(&i), "refused at {i} MiB");
    }

    #[test]
    fn elements_not_kept_are_skipped_without_being_buffered() {
        let (bytes, clusters) = stream();
        let clusters_at = bytes
            .windows(4)
            .position(|w| w == id::CLUSTER.to_be_bytes())
            .unwrap();
        let mut p = MkvParser::new();
        p.push(&bytes[..clusters_at]);
        // A 200 MiB Void, sent 1 MiB at a time, then a cluster.
        let mut void = vec![0xEC];
        telescope_kvs::mkv::push_size(&mut void, 200 << 20);
        assert!(p.push(&void).is_empty());
        let mib = vec![0u8; 1 << 20];
        for _ in 0..200 {
            assert!(p.push(&mib).is_empty());
            assert!(p.buffered() < (2 << 20), "{}", p.buffered());
        }
        let events = p.push(&clusters[0]);
        assert!(
            matches!(events.as_slice(), [Ok(MkvEvent::Cluster(_))]),
            "{events:?}"
        );
    }

    proptest! {
        #![proptest_config(ProptestConfig {
            cases: 128,
            rng_seed: proptest::test_runner::RngSeed::Fixed(0x3c7),
            failure_persistence: None,
            ..ProptestConfig::default()
        })]

        #[test]
        fn any_split_gives_the_same_events(cuts in proptest::collection::vec(0usize..2000, 0..10)) {
            let (bytes, _) = stream();
            let whole = MkvParser::new().push(&bytes);
            let mut cuts: Vec<usize> = cuts.into_iter().map(|c| c % (bytes.len() + 1)).collect();
            cuts.sort_unstable();
            let mut p = MkvParser::new();
            let mut got = Vec::new();
            let mut last = 0;
            for c in cuts.into_iter().chain(std::iter::once(bytes.len())) {
                got.extend(p.push(&bytes[last..c]));
                last = c;
            }
            prop_assert_eq!(got, whole);
        }

        #[test]
        fn garbage_is_a_typed_error_not_a_panic(junk in proptest::collection::vec(any::<u8>(), 0..3000), split in 0usize..3000) {
            let mut p = MkvParser::new();
            let split = split.min(junk.len());
            let mut results = p.push(&junk[..split]);
            results.extend(p.push(&junk[split..]));
            results.extend(p.finish());
            for r in results {
                if let Err(e) = r {
                    prop_assert!(!e.to_string().is_empty());
                }
            }
        }
    }
}
