//! HLS playlists of a session, as the service writes them: a master playlist naming one
//! media playlist (track 1), and media playlists listing `getMP4MediaFragment.mp4` (after an
//! `EXT-X-MAP` of `getMP4InitFragment.mp4`) or `getTSFragment.ts` URLs by fragment number.
//! The layout follows a captured KVS media playlist (`#EXT-X-VERSION:7`, `#EXT-X-MAP:URI=
//! "getMP4InitFragment.mp4?SessionToken=…&TrackNumber=1"`, `#EXT-X-PROGRAM-DATE-TIME` per
//! fragment, `getMP4MediaFragment.mp4?FragmentNumber=…&SessionToken=…&TrackNumber=1`).

use std::fmt::Write;

use super::session::{DiscontinuityMode, Listed, Session};

/// The RFC 6381 codec string of an AVC track: `avc1.PPCCLL` from its configuration record.
pub fn codecs(codec_private: &[u8]) -> String {
    match codec_private.get(1..4) {
        Some(p) => format!("avc1.{:02x}{:02x}{:02x}", p[0], p[1], p[2]),
        None => "avc1".into(),
    }
}

/// Bits per second over the listed fragments (a floor of 100 kbit/s).
pub fn bandwidth(listed: &[Listed]) -> u64 {
    let bytes: u64 = listed.iter().map(|f| f.bytes as u64).sum();
    let ms: u64 = listed.iter().map(|f| f.extent_ms).sum::<u64>().max(1);
    (bytes * 8 * 1000 / ms).max(100_000)
}

/// `getHLSMasterPlaylist.m3u8`.
pub fn master_playlist(session: &Session, token: &str, listed: &[Listed]) -> String {
    let t = &session.track;
    let mut out = String::from("#EXTM3U\n#EXT-X-INDEPENDENT-SEGMENTS\n");
    let _ = writeln!(
        out,
        "#EXT-X-STREAM-INF:BANDWIDTH={},CODECS=\"{}\",RESOLUTION={}x{}",
        bandwidth(listed),
        codecs(&t.codec_private),
        t.width,
        t.height
    );
    let _ = writeln!(
        out,
        "getHLSMediaPlaylist.m3u8?SessionToken={token}&TrackNumber=1"
    );
    out
}

/// An ISO 8601 UTC time with milliseconds, as `EXT-X-PROGRAM-DATE-TIME` carries it.
pub fn iso_time(ms: u64) -> String {
    let at = time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000)
        .unwrap_or(time::OffsetDateTime::UNIX_EPOCH);
    let format = time::macros::format_description!(
        "[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond digits:3]Z"
    );
    at.format(&format).unwrap_or_default()
}

/// Whether a discontinuity tag goes before fragment `i` (never before the first).
fn discontinuity_before(session: &Session, listed: &[Listed], i: usize) -> bool {
    if i == 0 {
        return false;
    }
    match session.discontinuity {
        DiscontinuityMode::Always => true,
        DiscontinuityMode::Never => false,
        // "a gap or overlap of more than 50 milliseconds" between fragments.
        DiscontinuityMode::OnDiscontinuity => {
            let (prev, next) = (&listed[i - 1], &listed[i]);
            let end = prev.producer_ms + prev.extent_ms;
            end.abs_diff(next.producer_ms) > 50
        }
    }
}

/// `getHLSMediaPlaylist.m3u8`.
pub fn media_playlist(session: &Session, token: &str, listed: &[Listed]) -> String {
    let target = listed
        .iter()
        .map(|f| f.extent_ms.div_ceil(1000))
        .max()
        .unwrap_or(1)
        .max(1);
    let first_seq = listed.first().map_or(0, |f| f.sequence);
    let mut out = String::new();
    let version = if session.mpeg_ts { 3 } else { 7 };
    let _ = write!(
        out,
        "#EXTM3U\n#EXT-X-VERSION:{version}\n#EXT-X-TARGETDURATION:{target}\n\
         #EXT-X-MEDIA-SEQUENCE:{first_seq}\n"
    );
    if session.discontinuity == DiscontinuityMode::Always {
        let _ = writeln!(out, "#EXT-X-DISCONTINUITY-SEQUENCE:{first_seq}");
    }
    if session.ended() {
        out.push_str("#EXT-X-PLAYLIST-TYPE:VOD\n");
    }
    out.push_str("#EXT-X-INDEPENDENT-SEGMENTS\n");
    for (i, f) in listed.iter().enumerate() {
        // A new init fragment (codec private data changed) starts a new discontinuity.
        let new_init = i > 0 && listed[i - 1].init != f.init;
        if discontinuity_before(session, listed, i) || new_init {
            out.push_str("#EXT-X-DISCONTINUITY\n");
        }
        if !session.mpeg_ts && (i == 0 || new_init) {
            let _ = writeln!(
                out,
                "#EXT-X-MAP:URI=\"getMP4InitFragment.mp4?SessionToken={token}&TrackNumber=1&SequenceNumber={}\"",
                f.init
            );
        }
        if session.display_timestamp {
            let _ = writeln!(out, "#EXT-X-PROGRAM-DATE-TIME:{}", iso_time(f.producer_ms));
        }
        let _ = writeln!(out, "#EXTINF:{:.3},", f.extent_ms as f64 / 1000.0);
        let _ = if session.mpeg_ts {
            writeln!(
                out,
                "getTSFragment.ts?FragmentNumber={}&SessionToken={token}",
                f.number
            )
        } else {
            writeln!(
                out,
                "getMP4MediaFragment.mp4?FragmentNumber={}&SessionToken={token}&TrackNumber=1",
                f.number
            )
        };
    }
    if session.ended() {
        out.push_str("#EXT-X-ENDLIST\n");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn listed(starts: &[u64]) -> Vec<Listed> {
        starts
            .iter()
            .enumerate()
            .map(|(i, s)| Listed {
                sequence: i + 7,
                number: format!("{}", 100 + i),
                producer_ms: *s,
                server_ms: *s,
                extent_ms: 2000,
                bytes: 1000,
                init: 0,
            })
            .collect()
    }

    fn session(discontinuity: DiscontinuityMode, mpeg_ts: bool) -> Session {
        Session {
            protocol: super::super::session::Protocol::Hls,
            stream: "s".into(),
            mode: super::super::session::Mode::Live,
            producer_time: true,
            start_ms: None,
            end_ms: None,
            mpeg_ts,
            discontinuity,
            display_timestamp: true,
            display_number: false,
            max_results: 5,
            created_ms: 0,
            expires_ms: u64::MAX,
            track: Default::default(),
            anchor_ms: 0,
            url_token: String::new(),
        }
    }

    #[test]
    fn discontinuities_are_marked_as_the_mode_asks() {
        // A gap of 3 s between the second and third fragments.
        let l = listed(&[10_000, 12_000, 17_000]);
        let count = |m| {
            media_playlist(&session(m, false), "T", &l)
                .matches("#EXT-X-DISCONTINUITY\n")
                .count()
        };
        assert_eq!(count(DiscontinuityMode::Always), 2);
        assert_eq!(count(DiscontinuityMode::Never), 0);
        assert_eq!(count(DiscontinuityMode::OnDiscontinuity), 1);
        let text = media_playlist(&session(DiscontinuityMode::Never, false), "T", &l);
        assert!(text.contains("#EXT-X-MEDIA-SEQUENCE:7\n"), "{text}");
        let map = "#EXT-X-MAP:URI=\"getMP4InitFragment.mp4?SessionToken=T&TrackNumber=1";
        assert!(
            text.contains(&format!("{map}&SequenceNumber=0\"")),
            "{text}"
        );
        assert_eq!(text.matches("#EXT-X-MAP").count(), 1);
        // The producer restarted with other settings at the third fragment: a new init
        // fragment there, after a discontinuity.
        let mut changed = l.clone();
        changed[2].init = 1;
        let text = media_playlist(&session(DiscontinuityMode::Never, false), "T", &changed);
        let tail = &text[text.find("SequenceNumber=1").expect("a second map")..];
        assert!(tail.contains("FragmentNumber=102"), "{text}");
        assert_eq!(text.matches("#EXT-X-DISCONTINUITY\n").count(), 1, "{text}");
        assert!(text.contains("#EXT-X-PROGRAM-DATE-TIME:1970-01-01T00:00:10.000Z"));
        assert!(
            !text.contains("#EXT-X-ENDLIST"),
            "a live playlist stays open"
        );
        let ts = media_playlist(&session(DiscontinuityMode::Never, true), "T", &l);
        assert!(
            ts.contains("getTSFragment.ts?FragmentNumber=100&SessionToken=T"),
            "{ts}"
        );
        assert!(
            !ts.contains("EXT-X-MAP"),
            "TS segments carry their own headers"
        );
    }

    #[test]
    fn program_date_times_have_milliseconds() {
        assert_eq!(iso_time(1_684_331_315_994), "2023-05-17T13:48:35.994Z");
        assert_eq!(codecs(&[1, 0x64, 0, 0x1f]), "avc1.64001f");
    }
}
