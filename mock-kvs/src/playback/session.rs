//! Streaming sessions: GetHLSStreamingSessionURL and GetDASHStreamingSessionURL check their
//! request as the service does and hand out a URL carrying a session token; the session then
//! decides which stored fragments its playlists and manifests list.
//!
//! Shapes, defaults and limits are those of botocore's `kinesis-video-archived-media`
//! service-2.json (2017-09-30) and the API reference pages it is generated from.

use std::collections::HashSet;
use std::sync::Arc;

use serde_json::{json, Value};

pub use super::matroska::Track;
use super::matroska::{playable_track, PlaybackMediaError};
use super::request::{enum_field, playback_stream, Selector};
use crate::media::{now_ms, StoredFragment};
use crate::{error, invalid, ApiError, Ctx, Reply};
use http::StatusCode;

/// Which API created a session.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Protocol {
    Hls,
    Dash,
}

/// `PlaybackMode`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    Live,
    LiveReplay,
    OnDemand,
}

/// `DiscontinuityMode` (HLS).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DiscontinuityMode {
    Always,
    Never,
    OnDiscontinuity,
}

/// A streaming session, found again by its token.
#[derive(Debug, Clone)]
pub struct Session {
    pub protocol: Protocol,
    pub stream: String,
    pub mode: Mode,
    /// Fragments selected and ordered by producer (else server) timestamps.
    pub producer_time: bool,
    pub start_ms: Option<u64>,
    pub end_ms: Option<u64>,
    /// `ContainerFormat` `MPEG_TS` (HLS only).
    pub mpeg_ts: bool,
    pub discontinuity: DiscontinuityMode,
    pub display_timestamp: bool,
    pub display_number: bool,
    pub max_results: usize,
    pub created_ms: u64,
    pub expires_ms: u64,
    /// The video track of the session's first fragment (its init fragment).
    pub track: Track,
    /// The earliest producer time (ms) the session could list when it was made: where a live
    /// DASH timeline starts, fixed for the session's life.
    pub anchor_ms: u64,
    /// The token of the session URL (see [`tokens`]).
    pub url_token: String,
}

/// A stored fragment as a playlist sees it (no media bytes).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Listed {
    /// Position in the session's whole ordered list (HLS media sequence numbers).
    pub sequence: usize,
    pub number: String,
    pub producer_ms: u64,
    pub server_ms: u64,
    pub extent_ms: u64,
    pub bytes: usize,
    /// Which of the session's init fragments the fragment plays with (`SequenceNumber` of
    /// `getMP4InitFragment.mp4`): it counts the codec private data changes before it.
    pub init: usize,
}

/// Per candidate, its init fragment's sequence number: a new one whenever the track's codec
/// private data or size differs from the previous fragment's (a producer restarted with other
/// settings). "For the HLS streaming session, in-track codec private data (CPD) changes are
/// supported" (GetHLSStreamingSessionURL).
pub fn inits(candidates: &[&StoredFragment]) -> Vec<usize> {
    let mut out = Vec::with_capacity(candidates.len());
    let mut previous: Option<(&StoredFragment, Option<Track>)> = None;
    let mut n = 0;
    for f in candidates {
        let track = match previous {
            Some((p, ref t)) if std::sync::Arc::ptr_eq(&p.header, &f.header) => t.clone(),
            _ => super::matroska::track(&f.header).ok(),
        };
        if let Some((_, ref before)) = previous {
            let key = |t: &Option<Track>| {
                t.as_ref()
                    .map(|t| (t.codec_private.clone(), t.width, t.height))
            };
            if key(before) != key(&track) {
                n += 1;
            }
        }
        out.push(n);
        previous = Some((f, track));
    }
    out
}

/// A live session needs a fragment this recent: "a session with a PlaybackMode of LIVE is
/// requested for a stream that has no fragments within the last 30 seconds" is refused
/// (ResourceNotFoundException, kinesis-video-archived-media API reference).
const LIVE_WINDOW_MS: u64 = 30_000;

/// Streaming sessions open at once, all streams together (memory bound of the mock).
const MAX_SESSIONS: usize = 10_000;

/// "This value must be within 24 hours of the specified StartTimestamp" (HLSTimestampRange,
/// DASHTimestampRange, ClipTimestampRange).
pub const MAX_RANGE_MS: u64 = 24 * 3600 * 1000;

impl Session {
    /// The ordering key of a fragment.
    pub fn key(&self, f: &StoredFragment) -> u64 {
        if self.producer_time {
            f.producer_ms
        } else {
            f.server_ms
        }
    }

    fn in_range(&self, key: u64) -> bool {
        self.start_ms.is_none_or(|s| key >= s) && self.end_ms.is_none_or(|e| key <= e)
    }

    /// Every fragment the session may ever list, in timestamp order; a fragment stored twice
    /// (a producer's resend) is listed once.
    pub fn candidates<'a>(&self, fragments: &'a [StoredFragment]) -> Vec<&'a StoredFragment> {
        let mut seen = HashSet::new();
        let mut out: Vec<&StoredFragment> = fragments
            .iter()
            .filter(|f| seen.insert(f.producer_ms) && self.in_range(self.key(f)))
            .collect();
        out.sort_by_key(|f| self.key(f));
        out
    }

    /// What a playlist or manifest lists now. LIVE: the newest `max_results`. LIVE_REPLAY:
    /// from the start timestamp, paced as if live since the session began, the newest
    /// `max_results` of those. ON_DEMAND: the oldest `max_results` ("When the PlaybackMode is
    /// ON_DEMAND, the oldest fragments are returned", MaxMediaPlaylistFragmentResults).
    pub fn window(&self, fragments: &[StoredFragment]) -> Vec<Listed> {
        let all = self.candidates(fragments);
        let init = inits(&all);
        let listed = |(sequence, f): (usize, &&StoredFragment)| Listed {
            sequence,
            number: f.number.clone(),
            producer_ms: f.producer_ms,
            server_ms: f.server_ms,
            extent_ms: f.extent_ms(),
            bytes: f.raw.len(),
            init: init[sequence],
        };
        let indexed = all.iter().enumerate();
        match self.mode {
            Mode::OnDemand => indexed.take(self.max_results).map(listed).collect(),
            Mode::Live => {
                let skip = all.len().saturating_sub(self.max_results);
                indexed.skip(skip).map(listed).collect()
            }
            Mode::LiveReplay => {
                let elapsed = now_ms().saturating_sub(self.created_ms);
                let horizon = self.start_ms.unwrap_or(0).saturating_add(elapsed);
                let due = all.iter().take_while(|f| self.key(f) <= horizon).count();
                let skip = due.saturating_sub(self.max_results);
                indexed.take(due).skip(skip).map(listed).collect()
            }
        }
    }

    /// Whether the list is final (an ON_DEMAND session's).
    pub fn ended(&self) -> bool {
        self.mode == Mode::OnDemand
    }
}

/// A session's tokens: the one its URL carries, 160 characters (the service's are about as
/// long), and the short one its playlists and manifests write into resource URLs, its first 32.
/// Both name the session. Two, because ffmpeg's DASH reader sizes its URL buffers from the
/// manifest URL's length and truncates any resource URL longer than that (a fragment URL
/// holds a 47-digit fragment number besides the token). Hex digits from the process's random
/// hash keys: unguessable enough for a loopback test server; never logged.
fn tokens() -> (String, String) {
    use std::hash::{BuildHasher, RandomState};
    static KEYS: std::sync::OnceLock<RandomState> = std::sync::OnceLock::new();
    static COUNTER: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let n = COUNTER.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let keys = KEYS.get_or_init(RandomState::new);
    let long: String = (0..10u64)
        .map(|i| format!("{:016x}", keys.hash_one((n, i, now_ms()))))
        .collect();
    (long[..SHORT].to_owned(), long)
}

/// Length of the short token.
const SHORT: usize = 32;

/// The service's error for media it cannot play back.
pub fn media_error(e: PlaybackMediaError) -> ApiError {
    let kind = match e {
        PlaybackMediaError::UnsupportedCodec(_) | PlaybackMediaError::NoTrack => {
            "UnsupportedStreamMediaTypeException"
        }
        PlaybackMediaError::MissingCodecPrivate => "MissingCodecPrivateDataException",
        PlaybackMediaError::InvalidCodecPrivate => "InvalidCodecPrivateDataException",
        PlaybackMediaError::BadFrame(_) => "InvalidMediaFrameException",
        PlaybackMediaError::NoMediaKept => "NoDataRetentionException",
    };
    error(StatusCode::BAD_REQUEST, kind, e.to_string())
}

/// Parse a session request (everything but the stream).
fn parse(protocol: Protocol, input: &Value) -> Result<(Session, Option<Selector>), ApiError> {
    let (selector_field, max_field) = match protocol {
        Protocol::Hls => ("HLSFragmentSelector", "MaxMediaPlaylistFragmentResults"),
        Protocol::Dash => ("DASHFragmentSelector", "MaxManifestFragmentResults"),
    };
    let mode = match enum_field(input, "PlaybackMode", &["LIVE", "LIVE_REPLAY", "ON_DEMAND"])? {
        None | Some("LIVE") => Mode::Live,
        Some("LIVE_REPLAY") => Mode::LiveReplay,
        _ => Mode::OnDemand,
    };
    let selector = Selector::parse(input.get(selector_field), selector_field)?;
    check_range(mode, selector.as_ref(), selector_field)?;
    let producer_time = selector.as_ref().is_some_and(|s| s.producer);
    let discontinuity = match enum_field(
        input,
        "DiscontinuityMode",
        &["ALWAYS", "NEVER", "ON_DISCONTINUITY"],
    )? {
        Some("ALWAYS") => DiscontinuityMode::Always,
        Some("NEVER") => DiscontinuityMode::Never,
        Some(_) => DiscontinuityMode::OnDiscontinuity,
        // "The default is ALWAYS when HLSFragmentSelector is set to SERVER_TIMESTAMP, and
        // NEVER when it is set to PRODUCER_TIMESTAMP."
        None if producer_time => DiscontinuityMode::Never,
        None => DiscontinuityMode::Always,
    };
    let always = |field| -> Result<bool, ApiError> {
        Ok(enum_field(input, field, &["ALWAYS", "NEVER"])? == Some("ALWAYS"))
    };
    let mpeg_ts =
        enum_field(input, "ContainerFormat", &["FRAGMENTED_MP4", "MPEG_TS"])? == Some("MPEG_TS");
    let expires = crate::int_field(input, "Expires")?.unwrap_or(300);
    if !(300..=43_200).contains(&expires) {
        return Err(invalid("Expires must be 300 to 43200 seconds"));
    }
    // Defaults: "5 fragments if PlaybackMode is LIVE or LIVE_REPLAY, and 1,000 if
    // PlaybackMode is ON_DEMAND"; 1 to 5000.
    let max_results = match input.get(max_field) {
        None | Some(Value::Null) if mode == Mode::OnDemand => 1000,
        None | Some(Value::Null) => 5,
        Some(v) => match v.as_u64() {
            Some(n @ 1..=5000) => n as usize,
            _ => return Err(invalid(format!("{max_field} must be 1 to 5000"))),
        },
    };
    let now = now_ms();
    let session = Session {
        protocol,
        stream: String::new(),
        mode,
        producer_time,
        start_ms: selector.as_ref().and_then(|s| s.start_ms),
        end_ms: selector.as_ref().and_then(|s| s.end_ms),
        mpeg_ts: protocol == Protocol::Hls && mpeg_ts,
        discontinuity,
        display_timestamp: always("DisplayFragmentTimestamp")?,
        display_number: always("DisplayFragmentNumber")?,
        max_results,
        created_ms: now,
        expires_ms: now + expires as u64 * 1000,
        track: Track::default(),
        anchor_ms: 0,
        url_token: String::new(),
    };
    Ok((session, selector))
}

/// The selector rules of HLSFragmentSelector / HLSTimestampRange (DASH alike).
fn check_range(mode: Mode, selector: Option<&Selector>, field: &str) -> Result<(), ApiError> {
    let range = selector.and_then(|s| s.start_ms.map(|start| (start, s.end_ms)));
    match (mode, range) {
        (Mode::Live, Some(_)) => Err(invalid(format!(
            "{field}.TimestampRange must not be set when PlaybackMode is LIVE"
        ))),
        (Mode::OnDemand | Mode::LiveReplay, None) => Err(invalid(format!(
            "{field} with a TimestampRange is required unless PlaybackMode is LIVE"
        ))),
        (Mode::OnDemand, Some((_, None))) => Err(invalid(
            "EndTimestamp is required when PlaybackMode is ON_DEMAND",
        )),
        (_, Some((start, Some(end)))) if end <= start => {
            Err(invalid("EndTimestamp must be later than StartTimestamp"))
        }
        (_, Some((start, Some(end)))) if end - start > MAX_RANGE_MS => Err(invalid(
            "EndTimestamp must be within 24 hours of StartTimestamp",
        )),
        (_, Some((_, Some(end))))
            if selector.is_some_and(|s| !s.producer) && end > now_ms() + 1000 =>
        {
            Err(invalid(
                "EndTimestamp must be in the past for SERVER_TIMESTAMP",
            ))
        }
        _ => Ok(()),
    }
}

/// GetHLSStreamingSessionURL / GetDASHStreamingSessionURL.
pub fn create(ctx: &Arc<Ctx>, input: &Value, protocol: Protocol, base: &str) -> Reply {
    let (mut session, _) = parse(protocol, input)?;
    session.stream = playback_stream(ctx, input)?;
    {
        let media = ctx.media();
        let fragments = media
            .get(&session.stream)
            .map_or(&[][..], |m| &m.fragments[..]);
        let listed = session.candidates(fragments);
        let recent = now_ms().saturating_sub(LIVE_WINDOW_MS);
        let first = match session.mode {
            Mode::Live => listed
                .iter()
                .any(|f| f.server_ms >= recent)
                .then(|| listed.first().copied())
                .flatten(),
            _ => listed.first().copied(),
        };
        let Some(first) = first else {
            return Err(error(
                StatusCode::NOT_FOUND,
                "ResourceNotFoundException",
                match session.mode {
                    Mode::Live => "No fragments found in the stream within the last 30 seconds",
                    _ => "No fragments found in the stream for the requested timestamp range",
                },
            ));
        };
        session.track = playable_track(&first.header).map_err(media_error)?;
        session.anchor_ms = listed
            .iter()
            .map(|f| f.producer_ms)
            .min()
            .unwrap_or_default();
    }
    let (short, long) = tokens();
    let (path, field) = match protocol {
        Protocol::Hls => ("hls/v1/getHLSMasterPlaylist.m3u8", "HLSStreamingSessionURL"),
        Protocol::Dash => ("dash/v1/getDASHManifest.mpd", "DASHStreamingSessionURL"),
    };
    let url = format!("{base}/{path}?SessionToken={long}");
    session.url_token = long;
    let mut sessions = ctx.sessions();
    let now = now_ms();
    sessions.retain(|_, s| s.expires_ms > now);
    if sessions.len() >= MAX_SESSIONS {
        // Sessions live up to 12 hours: a client opening them without end is refused as the
        // service refuses one over its limits.
        return Err(error(
            StatusCode::BAD_REQUEST,
            "ClientLimitExceededException",
            "Too many streaming sessions are open; try again later",
        ));
    }
    sessions.insert(short, session);
    Ok(json!({ field: url }))
}

/// The session a token names (its short token, and that session), if it exists and has not
/// expired.
pub fn find(ctx: &Ctx, token: &str) -> Option<(String, Session)> {
    let short = token.get(..SHORT)?;
    ctx.sessions()
        .get(short)
        .filter(|s| s.expires_ms > now_ms() && (token == short || token == s.url_token))
        .map(|s| (short.to_owned(), s.clone()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stored(producer_ms: u64) -> StoredFragment {
        StoredFragment {
            number: format!("{producer_ms}"),
            producer_ms,
            server_ms: producer_ms + 300,
            frames: 50,
            duration_ms: 1960,
            raw: vec![0; 10],
            header: Default::default(),
        }
    }

    fn session(mode: Mode, range: Option<(u64, u64)>, max_results: usize) -> Session {
        Session {
            protocol: Protocol::Hls,
            stream: "s".into(),
            mode,
            producer_time: true,
            start_ms: range.map(|r| r.0),
            end_ms: range.map(|r| r.1),
            mpeg_ts: false,
            discontinuity: DiscontinuityMode::Never,
            display_timestamp: false,
            display_number: false,
            max_results,
            created_ms: now_ms(),
            expires_ms: now_ms() + 300_000,
            track: Track::default(),
            anchor_ms: 0,
            url_token: String::new(),
        }
    }

    #[test]
    fn windows_follow_the_playback_mode() {
        // Six fragments 2 s apart, the third one resent (stored twice), stored out of order.
        let mut all: Vec<StoredFragment> = [0u64, 2, 4, 4, 8, 6, 10]
            .iter()
            .map(|s| stored(1_000_000 + s * 1000))
            .collect();
        all[3].number = "resent".into();
        let numbers = |l: Vec<Listed>| l.into_iter().map(|f| f.sequence).collect::<Vec<_>>();
        let live = session(Mode::Live, None, 3);
        assert_eq!(
            numbers(live.window(&all)),
            [3, 4, 5],
            "the newest, once each"
        );
        let range = Some((1_002_000, 1_006_000));
        let on_demand = session(Mode::OnDemand, range, 2);
        let listed = on_demand.window(&all);
        assert_eq!(numbers(listed.clone()), [0, 1], "the oldest in the range");
        assert_eq!(listed[0].producer_ms, 1_002_000);
        // Replaying from 2 s ago's start: only what is due by now.
        let replay = session(Mode::LiveReplay, Some((1_002_000, u64::MAX)), 5);
        assert_eq!(numbers(replay.window(&all)), [0]);
    }

    #[test]
    fn selector_rules_are_the_services() {
        let req = |v: Value| parse(Protocol::Hls, &v).map(|_| ());
        assert!(req(json!({"PlaybackMode": "ON_DEMAND"})).is_err());
        let range = json!({"FragmentSelectorType": "PRODUCER_TIMESTAMP",
                           "TimestampRange": {"StartTimestamp": 10.0, "EndTimestamp": 20.0}});
        assert!(req(json!({"PlaybackMode": "LIVE", "HLSFragmentSelector": range})).is_err());
        assert!(req(json!({"PlaybackMode": "ON_DEMAND", "HLSFragmentSelector": range})).is_ok());
        assert!(req(json!({"PlaybackMode": "LIVE", "Expires": 299})).is_err());
        assert!(
            req(json!({"PlaybackMode": "LIVE", "MaxMediaPlaylistFragmentResults": 5001})).is_err()
        );
        assert!(req(json!({"PlaybackMode": "SOMETIMES"})).is_err());
    }
}
