//! The DASH manifest of a session (`getDASHManifest.mpd`): one period, one video
//! representation whose `SegmentList` names the session's init fragment and each media
//! fragment by number, with a `SegmentTimeline` of producer times (milliseconds). ON_DEMAND
//! sessions are `static`; LIVE and LIVE_REPLAY ones `dynamic`, re-fetched as they grow.

use std::fmt::Write;

use super::hls::{bandwidth, codecs, iso_time};
use super::session::{Listed, Session};

fn duration(ms: u64) -> String {
    format!("PT{}.{:03}S", ms / 1000, ms % 1000)
}

/// The manifest for what the session lists now.
pub fn manifest(session: &Session, token: &str, listed: &[Listed]) -> String {
    let t = &session.track;
    let first = listed.first().map_or(0, |f| f.producer_ms);
    let mut out = String::from("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n");
    let _ = writeln!(
        out,
        "<MPD xmlns=\"urn:mpeg:dash:schema:mpd:2011\" \
         profiles=\"urn:mpeg:dash:profile:isoff-live:2011\" {} minBufferTime=\"PT2S\">",
        presentation(session, listed)
    );
    let _ = writeln!(out, " <Period id=\"0\" start=\"PT0S\">");
    let _ = writeln!(
        out,
        "  <AdaptationSet mimeType=\"video/mp4\" segmentAlignment=\"true\" startWithSAP=\"1\">"
    );
    let _ = writeln!(
        out,
        "   <Representation id=\"1\" codecs=\"{}\" width=\"{}\" height=\"{}\" bandwidth=\"{}\">",
        codecs(&t.codec_private),
        t.width,
        t.height,
        bandwidth(listed)
    );
    let _ = writeln!(
        out,
        "    <SegmentList timescale=\"1000\" presentationTimeOffset=\"{}\">",
        if session.ended() {
            first
        } else {
            session.anchor_ms
        }
    );
    segments(&mut out, session, token, listed);
    out.push_str(
        "    </SegmentList>\n   </Representation>\n  </AdaptationSet>\n </Period>\n</MPD>\n",
    );
    out
}

/// The MPD's type attributes: `static` with its duration once the session has ended, else
/// `dynamic` with its availability start and time-shift window.
fn presentation(session: &Session, listed: &[Listed]) -> String {
    let first = listed.first().map_or(0, |f| f.producer_ms);
    let end = listed.last().map_or(first, |f| f.producer_ms + f.extent_ms);
    if session.ended() {
        format!(
            "type=\"static\" mediaPresentationDuration=\"{}\"",
            duration(end.saturating_sub(first))
        )
    } else {
        format!(
            "type=\"dynamic\" availabilityStartTime=\"{}\" publishTime=\"{}\" \
             minimumUpdatePeriod=\"PT1S\" timeShiftBufferDepth=\"{}\"",
            // Media time is producer time: anchored at the session's earliest fragment (and
            // offset by it in the SegmentList), a live timeline stays put as the window
            // slides, a segment is available once its producer time has passed on the wall
            // clock, and players that start from the availability time (GStreamer's
            // dashdemux) find the media where it is rather than 56 years after 1970.
            iso_time(session.anchor_ms),
            iso_time(crate::media::now_ms()),
            duration(end.saturating_sub(first).max(1000)),
        )
    }
}

/// The init fragment, the timeline of producer times and each fragment's URL.
fn segments(out: &mut String, session: &Session, token: &str, listed: &[Listed]) {
    let _ = writeln!(
        out,
        "     <Initialization sourceURL=\"getMP4InitFragment.mp4?SessionToken={token}&amp;TrackNumber=1\"/>"
    );
    out.push_str("     <SegmentTimeline>\n");
    for f in listed {
        let _ = writeln!(
            out,
            "      <S t=\"{}\" d=\"{}\"/>",
            f.producer_ms, f.extent_ms
        );
    }
    out.push_str("     </SegmentTimeline>\n");
    for f in listed {
        if session.display_number || session.display_timestamp {
            // DisplayFragmentNumber / DisplayFragmentTimestamp ALWAYS: each fragment's number
            // and producer time beside its URL.
            let _ = writeln!(
                out,
                "     <!-- FragmentNumber {} ProducerTimestamp {} -->",
                f.number,
                iso_time(f.producer_ms)
            );
        }
        let _ = writeln!(
            out,
            "     <SegmentURL media=\"getMP4MediaFragment.mp4?FragmentNumber={}&amp;SessionToken={token}&amp;TrackNumber=1\"/>",
            f.number
        );
    }
}
