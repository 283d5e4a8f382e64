//! An incremental Matroska reader for the PutMedia body: it sees bytes as they arrive and
//! reports the stream header and each complete cluster (fragment). Malformed input is a typed
//! error, never a panic.

use telescope_kvs::mkv::id;

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
    /// Whether the first block is a key frame.
    pub starts_with_key: bool,
    /// Largest block offset, milliseconds.
    pub last_offset: i64,
    /// The cluster's bytes, re-encoded with a known size.
    pub raw: Vec<u8>,
}

/// Why the body is not a Matroska stream KVS would take.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MkvError {
    #[error("invalid EBML variable-size integer at byte {0}")]
    BadVint(u64),
    #[error("element {id:#x} of {size} bytes is larger than allowed")]
    TooLarge { id: u32, size: u64 },
    #[error("the stream does not start with an EBML header")]
    NotMatroska,
    #[error("element {0:#x} has an unknown size where that is not allowed")]
    UnknownSize(u32),
    #[error("a block came before its cluster's timecode")]
    BlockBeforeTimecode,
    #[error("malformed block")]
    BadBlock,
}

const MAX_ELEMENT: u64 = 256 << 20;

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
fn element_header(buf: &[u8], at: u64) -> Result<Option<(u32, Option<u64>, usize)>, MkvError> {
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
    header: Vec<u8>,
    open: Vec<u8>,
    failed: bool,
}

impl MkvParser {
    /// A reader at the start of a stream.
    pub fn new() -> Self {
        Self::default()
    }

    /// Feed bytes; returns what they completed. After an error the reader stays failed.
    pub fn push(&mut self, bytes: &[u8]) -> Vec<Result<MkvEvent, MkvError>> {
        let mut out = Vec::new();
        if self.failed {
            return out;
        }
        self.buf.extend_from_slice(bytes);
        let mut pos = 0usize;
        loop {
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
        if size.is_some_and(|s| s > MAX_ELEMENT) {
            return Err(MkvError::TooLarge {
                id: eid,
                size: size.unwrap_or_default(),
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
                self.header = self.buf[pos..pos + len].to_vec();
                Ok(Some((len, None)))
            }
            (Place::Top, id::SEGMENT) if !self.header.is_empty() => {
                self.header.extend_from_slice(&self.buf[pos..pos + hlen]);
                self.place = Place::Segment;
                Ok(Some((hlen, None)))
            }
            (Place::Top, _) => Err(MkvError::NotMatroska),
            (Place::OpenCluster, id::CLUSTER | id::EBML | id::SEGMENT)
            | (Place::OpenCluster, id::TRACKS | id::INFO) => {
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
                let Some(len) = whole(size)? else {
                    return Ok(None);
                };
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
                    self.open.clear();
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
            (Place::Segment, _) => {
                let Some(len) = whole(size)? else {
                    return Ok(None);
                };
                let mut event = None;
                if eid == id::INFO || eid == id::TRACKS {
                    self.header.extend_from_slice(&self.buf[pos..pos + len]);
                    if eid == id::TRACKS {
                        event = Some(MkvEvent::Header(self.header.clone()));
                    }
                }
                Ok(Some((len, event)))
            }
        }
    }
}

/// Parse a cluster's children and re-encode it with a known size.
fn close_cluster(children: &[u8]) -> Result<Cluster, MkvError> {
    let mut pos = 0;
    let mut timecode = None;
    let (mut frames, mut first_key, mut last) = (0u32, None, 0i64);
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
                timecode = Some(body.iter().fold(0u64, |v, b| (v << 8) | u64::from(*b)))
            }
            id::SIMPLE_BLOCK | id::BLOCK_GROUP => {
                if timecode.is_none() {
                    return Err(MkvError::BlockBeforeTimecode);
                }
                let block = if eid == id::BLOCK_GROUP {
                    inner_block(body)?
                } else {
                    body
                };
                let (_, tlen, _) = vint(block, false)
                    .map_err(|_| MkvError::BadBlock)?
                    .ok_or(MkvError::BadBlock)?;
                let rest = block.get(tlen..tlen + 3).ok_or(MkvError::BadBlock)?;
                let offset = i16::from_be_bytes([rest[0], rest[1]]);
                let key = eid == id::SIMPLE_BLOCK && rest[2] & 0x80 != 0;
                first_key.get_or_insert(key);
                last = last.max(i64::from(offset));
                frames += 1;
            }
            _ => {}
        }
        pos += hlen + size;
    }
    let timecode = timecode.ok_or(MkvError::BlockBeforeTimecode)?;
    let mut raw = Vec::with_capacity(children.len() + 12);
    raw.extend_from_slice(&id::CLUSTER.to_be_bytes());
    telescope_kvs::mkv::push_size(&mut raw, children.len() as u64);
    raw.extend_from_slice(children);
    Ok(Cluster {
        timecode,
        frames,
        starts_with_key: first_key.unwrap_or(false),
        last_offset: last,
        raw,
    })
}

fn inner_block(group: &[u8]) -> Result<&[u8], MkvError> {
    let mut pos = 0;
    while pos < group.len() {
        let (eid, size, hlen) = element_header(&group[pos..], 0)?.ok_or(MkvError::BadBlock)?;
        let size = size.ok_or(MkvError::BadBlock)? as usize;
        if eid == id::BLOCK {
            return group
                .get(pos + hlen..pos + hlen + size)
                .ok_or(MkvError::BadBlock);
        }
        pos += hlen + size;
    }
    Err(MkvError::BadBlock)
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
