//! What the data plane stores, and the Matroska chunks GetMedia and GetMediaForFragmentList
//! send: one stand-alone EBML document per fragment, or per error.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use telescope_kvs::clock::{SystemWallClock, WallClock};

use telescope_kvs::mkv;

/// What a stream holds.
#[derive(Debug, Default, Clone)]
pub struct Media {
    /// The latest stream header (EBML, Segment, Info, Tracks).
    pub header: Arc<Vec<u8>>,
    /// Stored fragments in arrival order (a resent fragment is stored again, as KVS does).
    pub fragments: Vec<StoredFragment>,
    /// Fragment numbers handed out (rejected fragments get one too: KVS's ERROR acks carry it).
    pub numbered: u64,
    /// PutMedia connections ingesting into the stream now.
    pub producers: usize,
}

impl Media {
    /// The next fragment number: 47 decimal digits like KVS's (e.g.
    /// `91343852333181432392682062607743920146159169392`, producer-sdk-cpp #684), increasing,
    /// so that numbers compare in arrival order as strings too.
    pub fn next_number(&mut self) -> String {
        self.numbered += 1;
        format!("91343852333{:036}", self.numbered)
    }
}

/// One stored fragment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredFragment {
    pub number: String,
    pub producer_ms: u64,
    pub server_ms: u64,
    pub frames: u32,
    pub duration_ms: i64,
    pub raw: Vec<u8>,
    /// The stream header in force when it arrived (GetMedia starts every chunk with it).
    pub header: Arc<Vec<u8>>,
}

impl StoredFragment {
    /// Milliseconds the fragment covers from its start: its last frame's offset plus one frame
    /// (the mean step between its frames), at least 1.
    pub fn extent_ms(&self) -> u64 {
        let duration = self.duration_ms.max(0) as u64;
        let step = if self.frames > 1 {
            duration / u64::from(self.frames - 1)
        } else {
            0
        };
        (duration + step).max(1)
    }
}

/// Counters a test or an operator reads at `/_mock/stats`.
#[derive(Debug, Default)]
pub struct Stats {
    /// Fragments stored.
    pub fragments: AtomicU64,
    /// Fragments stored that do not start with a key frame: KVS accepts them (nothing in the
    /// PutMedia constraints refuses them), but they are not independently playable, so HLS,
    /// DASH and GetClip stumble on them. A warning, not an error.
    pub fragments_not_key_start: AtomicU64,
    /// ERROR acks sent.
    pub error_acks: AtomicU64,
    /// Connections closed for sending too slowly or not at all.
    pub timed_out: AtomicU64,
    /// PutMedia connections refused or cut because the server's buffer budget was spent.
    pub over_budget: AtomicU64,
    /// Accept errors (EMFILE and the like) the accept loop backed off from.
    pub accept_errors: AtomicU64,
}

impl Stats {
    /// Add one to a counter.
    pub fn bump(counter: &AtomicU64) {
        counter.fetch_add(1, Ordering::Relaxed);
    }

    /// The counters as JSON.
    pub fn to_json(&self) -> serde_json::Value {
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        serde_json::json!({
            "fragments": get(&self.fragments),
            "fragments_not_key_start": get(&self.fragments_not_key_start),
            "error_acks": get(&self.error_acks),
            "timed_out": get(&self.timed_out),
            "over_budget": get(&self.over_budget),
            "accept_errors": get(&self.accept_errors),
        })
    }
}

/// Milliseconds since the Unix epoch.
pub fn now_ms() -> u64 {
    SystemWallClock.unix_ms()
}

/// A time in milliseconds as KVS's tags write it: seconds with three decimals.
pub fn seconds(ms: u64) -> String {
    format!("{}.{:03}", ms / 1000, ms % 1000)
}

/// One chunk for a stored fragment, as KVS sends it: the fragment as a stand-alone MKV
/// segment (the stream header, tags naming the fragment, its cluster), then, for GetMedia,
/// `trailer` tags (how far behind the newest fragment it is and how to continue after it).
pub fn chunk(f: &StoredFragment, trailer: Option<u64>) -> Vec<u8> {
    let mut out = Vec::with_capacity(f.header.len() + f.raw.len() + 256);
    out.extend_from_slice(&f.header);
    out.extend_from_slice(&mkv::tags(&[
        ("AWS_KINESISVIDEO_FRAGMENT_NUMBER", &f.number),
        ("AWS_KINESISVIDEO_SERVER_TIMESTAMP", &seconds(f.server_ms)),
        (
            "AWS_KINESISVIDEO_PRODUCER_TIMESTAMP",
            &seconds(f.producer_ms),
        ),
    ]));
    out.extend_from_slice(&f.raw);
    if let Some(newest_server_ms) = trailer {
        out.extend_from_slice(&mkv::tags(&[
            (
                "AWS_KINESISVIDEO_MILLIS_BEHIND_NOW",
                &newest_server_ms.saturating_sub(f.server_ms).to_string(),
            ),
            ("AWS_KINESISVIDEO_CONTINUATION_TOKEN", &f.number),
        ]));
    }
    out
}

/// An error chunk, as KVS sends one in a media payload: its own EBML header, a Segment of
/// unknown size, and Tags with `AWS_KINESISVIDEO_ERROR_CODE`, `AWS_KINESISVIDEO_ERROR_ID` and
/// `AWS_KINESISVIDEO_FRAGMENT_NUMBER` in that order, and nothing else (no Info, Tracks or
/// Cluster). The layout is the one captured from GetMediaForFragmentList in aws-sdk-js #3217;
/// the KVS parser library's `FragmentMetadataVisitor` reads such a Segment as error metadata.
pub fn error_chunk(code: &str, error_id: u64, number: &str) -> Vec<u8> {
    let mut out = ebml_header();
    out.extend_from_slice(&mkv::id::SEGMENT.to_be_bytes());
    out.extend_from_slice(&mkv::UNKNOWN_SIZE);
    out.extend_from_slice(&mkv::tags(&[
        ("AWS_KINESISVIDEO_ERROR_CODE", code),
        ("AWS_KINESISVIDEO_ERROR_ID", &error_id.to_string()),
        ("AWS_KINESISVIDEO_FRAGMENT_NUMBER", number),
    ]));
    out
}

/// A Matroska EBML header (version 1, DocType `matroska` version 2), as KVS's chunks start.
fn ebml_header() -> Vec<u8> {
    use mkv::id;
    let mut body = Vec::new();
    let mut uint = |eid: u32, v: u8| {
        body.extend_from_slice(&(eid as u16).to_be_bytes());
        body.extend_from_slice(&[0x81, v]);
    };
    uint(id::EBML_VERSION, 1);
    uint(id::EBML_READ_VERSION, 1);
    uint(id::EBML_MAX_ID_LENGTH, 4);
    uint(id::EBML_MAX_SIZE_LENGTH, 8);
    body.extend_from_slice(&(id::DOC_TYPE as u16).to_be_bytes());
    body.push(0x88);
    body.extend_from_slice(b"matroska");
    let mut uint = |eid: u32, v: u8| {
        body.extend_from_slice(&(eid as u16).to_be_bytes());
        body.extend_from_slice(&[0x81, v]);
    };
    uint(id::DOC_TYPE_VERSION, 2);
    uint(id::DOC_TYPE_READ_VERSION, 2);
    let mut out = id::EBML.to_be_bytes().to_vec();
    mkv::push_size(&mut out, body.len() as u64);
    out.extend_from_slice(&body);
    out
}

/// Whether `number` has the shape of a fragment number (`FragmentNumberString`: 1-128 digits,
/// botocore's kinesis-video-media and archived-media models); others are refused up front.
pub fn well_formed_number(number: &str) -> bool {
    (1..=128).contains(&number.len()) && number.bytes().all(|b| b.is_ascii_digit())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mkv::{MkvEvent, MkvParser};

    #[test]
    fn an_error_chunk_is_a_document_of_its_own_with_tags_only() {
        let bytes = error_chunk("FRAGMENT_NOT_FOUND", 3000, "42");
        let events = MkvParser::new().push(&bytes);
        assert!(events.is_empty(), "no header or cluster: {events:?}");
        assert!(bytes.starts_with(&[0x1A, 0x45, 0xDF, 0xA3]));
        let mut with_next = bytes.clone();
        with_next.extend_from_slice(&bytes);
        let events = MkvParser::new().push(&with_next);
        assert!(
            events
                .iter()
                .all(|e| !matches!(e, Ok(MkvEvent::Cluster(_)) | Err(_))),
            "{events:?}"
        );
    }
}
