//! GetClip: the fragments that start in a timestamp range as one progressive MP4 file
//! ("Traditional MP4 file that contains the media clip … The output will contain the first
//! 100 MB or the first 200 fragments from the specified start timestamp", GetClipOutput),
//! `Content-Type: video/mp4`. The frames are copied, not re-encoded; the file's timeline
//! starts at the first frame, whose producer time is the movie's creation time.

use std::sync::Arc;

use bytes::Bytes;
use http::{Response, StatusCode};
use http_body_util::BodyExt;
use serde_json::Value;

use super::matroska::{frames, playable_track, Frame, Track};
use super::mp4::{ftyp, full_box, mp4_box, mp4_time, mvhd, timing, trak};
use super::request::{playback_stream, Selector};
use super::session::{media_error, MAX_RANGE_MS};
use crate::media::StoredFragment;
use crate::{error, invalid, respond, ApiError, Body, Ctx};

const MAX_FRAGMENTS: usize = 200;
const MAX_BYTES: usize = 100 << 20;

/// The fragments of the clip: starting in the range, in timestamp order, once each, at most
/// the first 200 or 100 MB.
fn select(ctx: &Ctx, stream: &str, sel: &Selector) -> Vec<StoredFragment> {
    let (start, end) = (sel.start_ms.unwrap_or(0), sel.end_ms.unwrap_or(u64::MAX));
    let key = |f: &StoredFragment| {
        if sel.producer {
            f.producer_ms
        } else {
            f.server_ms
        }
    };
    let media = ctx.media();
    let stored = media.get(stream).map_or(&[][..], |m| &m.fragments[..]);
    let mut seen = std::collections::HashSet::new();
    let mut chosen: Vec<&StoredFragment> = stored
        .iter()
        .filter(|f| (start..=end).contains(&key(f)) && seen.insert(f.producer_ms))
        .collect();
    chosen.sort_by_key(|f| key(f));
    // One MP4 track has one codec configuration: the clip ends where the producer changed
    // its codec private data or size (a later clip starting there holds what follows).
    let same_track = super::session::inits(&chosen)
        .iter()
        .take_while(|n| **n == 0)
        .count();
    let mut bytes = 0usize;
    chosen
        .into_iter()
        .take(same_track.min(MAX_FRAGMENTS))
        .take_while(|f| {
            bytes += f.raw.len();
            bytes <= MAX_BYTES
        })
        .cloned()
        .collect()
}

fn request(ctx: &Ctx, input: &Value) -> Result<(String, Selector), ApiError> {
    let sel = Selector::parse(input.get("ClipFragmentSelector"), "ClipFragmentSelector")?
        .ok_or_else(|| invalid("ClipFragmentSelector is required"))?;
    let (Some(start), Some(end)) = (sel.start_ms, sel.end_ms) else {
        return Err(invalid(
            "ClipFragmentSelector.TimestampRange needs StartTimestamp and EndTimestamp",
        ));
    };
    if end <= start {
        return Err(invalid("EndTimestamp must be later than StartTimestamp"));
    }
    if end - start > MAX_RANGE_MS {
        return Err(invalid(
            "EndTimestamp must be within 24 hours of StartTimestamp",
        ));
    }
    Ok((playback_stream(ctx, input)?, sel))
}

/// GetClip.
pub async fn get_clip(ctx: Arc<Ctx>, input: Value) -> Response<Body> {
    let (stream, sel) = match request(&ctx, &input) {
        Ok(r) => r,
        Err(e) => return respond(Err(e)),
    };
    let chosen = select(&ctx, &stream, &sel);
    let Some(first) = chosen.first() else {
        return respond(Err(error(
            StatusCode::NOT_FOUND,
            "ResourceNotFoundException",
            "No fragments found in the stream for the requested timestamp range",
        )));
    };
    let track = match playable_track(&first.header) {
        Ok(t) => t,
        Err(e) => return respond(Err(media_error(e))),
    };
    let built = tokio::task::spawn_blocking(move || clip_file(&track, &chosen)).await;
    match built {
        Ok(Ok(file)) => Response::builder()
            .status(StatusCode::OK)
            .header("content-type", "video/mp4")
            .body(http_body_util::Full::new(Bytes::from(file)).boxed())
            .unwrap_or_else(|_| respond(Err(invalid("response")))),
        Ok(Err(e)) => respond(Err(e)),
        Err(_) => respond(Err(error(
            StatusCode::INTERNAL_SERVER_ERROR,
            "InternalFailure",
            "clip worker failed",
        ))),
    }
}

/// The MP4 file of the fragments' frames.
fn clip_file(track: &Track, chosen: &[StoredFragment]) -> Result<Vec<u8>, ApiError> {
    let mut all: Vec<Frame<'_>> = Vec::new();
    for f in chosen {
        all.extend(frames(f, track).map_err(media_error)?);
    }
    Ok(progressive(track, &all))
}

/// `ftyp`, `moov` with full sample tables, then one `mdat` holding every frame (one chunk).
pub fn progressive(track: &Track, frames: &[Frame<'_>]) -> Vec<u8> {
    let t = timing(frames, None);
    let n = t.samples.len() as u32;
    let total: u64 = t.samples.iter().map(|s| u64::from(s.0)).sum();
    let duration = u32::try_from(total).unwrap_or(u32::MAX);
    // Run-length decoding durations.
    let mut runs: Vec<(u32, u32)> = Vec::new();
    for s in &t.samples {
        match runs.last_mut() {
            Some((count, d)) if *d == s.0 => *count += 1,
            _ => runs.push((1, s.0)),
        }
    }
    let mut stts = (runs.len() as u32).to_be_bytes().to_vec();
    runs.iter()
        .for_each(|(c, d)| stts.extend([c.to_be_bytes(), d.to_be_bytes()].concat()));
    let mut ctts = n.to_be_bytes().to_vec();
    t.samples
        .iter()
        .for_each(|s| ctts.extend([1u32.to_be_bytes(), s.3.to_be_bytes()].concat()));
    let keys: Vec<u32> = (1..=n).filter(|i| t.samples[*i as usize - 1].2).collect();
    let mut stss = (keys.len() as u32).to_be_bytes().to_vec();
    keys.iter().for_each(|k| stss.extend(k.to_be_bytes()));
    let mut stsz = [0u32.to_be_bytes(), n.to_be_bytes()].concat();
    t.samples
        .iter()
        .for_each(|s| stsz.extend(s.1.to_be_bytes()));
    let stsc = [1u32, 1, n, 1].map(u32::to_be_bytes).concat();
    let tables = |offset: u64| {
        [
            full_box(b"stts", 0, 0, &stts),
            full_box(b"ctts", 0, 0, &ctts),
            full_box(b"stss", 0, 0, &stss),
            full_box(b"stsc", 0, 0, &stsc),
            full_box(b"stsz", 0, 0, &stsz),
            full_box(
                b"co64",
                0,
                0,
                &[1u32.to_be_bytes().to_vec(), offset.to_be_bytes().to_vec()].concat(),
            ),
        ]
        .concat()
    };
    // The file's timeline starts at zero; when it was recorded is the producer time of its
    // first frame, in the movie header (`creation_time` to ffprobe), to the second.
    let created = mp4_time(frames.iter().map(|f| f.pts_ms).min().unwrap_or(0));
    let moov = |offset| {
        mp4_box(
            b"moov",
            &[
                mvhd(duration, created),
                trak(track, duration, &tables(offset)),
            ]
            .concat(),
        )
    };
    let head = ftyp(b"isom");
    let offset = (head.len() + moov(0).len() + 8) as u64;
    let payload: usize = frames.iter().map(|f| f.data.len()).sum();
    let mut out = Vec::with_capacity(offset as usize + payload);
    out.extend_from_slice(&head);
    out.extend_from_slice(&moov(offset));
    out.extend_from_slice(&((payload + 8) as u32).to_be_bytes());
    out.extend_from_slice(b"mdat");
    for f in frames {
        out.extend_from_slice(f.data);
    }
    out
}
