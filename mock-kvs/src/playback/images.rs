//! GetImages: one JPEG or PNG every `SamplingInterval` from `StartTimestamp` to `EndTimestamp`,
//! each decoded (GStreamer `avdec_h264`, `videoscale`, `jpegenc`/`pngenc`) from the key frame
//! that starts the fragment holding that time, `MaxResults` a page with a `NextToken`; a time
//! no fragment covers is reported in its entry (`Error: NO_MEDIA`), as the service does.
//!
//! Members and limits: botocore `kinesis-video-archived-media` GetImagesInput (SamplingInterval
//! "minimum value … is 200 ms"; "If the time range between StartTimestamp and EndTimestamp is
//! more than 300 seconds above StartTimestamp, you will receive an IllegalArgumentException";
//! MaxResults "The default limit is 25 images per API response. Providing a MaxResults greater
//! than this value will result in a page size of 25"; FormatConfig `JPEGQuality` 1-100,
//! default 80; WidthPixels 1-3840 and HeightPixels 1-2160, both or neither).

use std::sync::Arc;
use std::time::Duration;

use gst::prelude::*;

use http::StatusCode;
use serde_json::{json, Value};

use super::gst::{make, run, RepackError, Unit};
use super::matroska::{frames, track, Track};
use super::request::{enum_field, playback_stream, timestamp_ms};
use crate::{error, int_field, invalid, ApiError, Ctx, Reply};

const MIN_INTERVAL_MS: u64 = 200;
const MAX_SPAN_MS: u64 = 300_000;
const PAGE: usize = 25;

/// A parsed GetImages request.
#[derive(Debug, Clone)]
struct Ask {
    producer: bool,
    start_ms: u64,
    end_ms: u64,
    interval_ms: u64,
    png: bool,
    quality: i32,
    size: Option<(u32, u32)>,
    page: usize,
    from: usize,
}

/// `WidthPixels` x `HeightPixels`: both or neither.
fn size(input: &Value) -> Result<Option<(u32, u32)>, ApiError> {
    match (
        int_field(input, "WidthPixels")?,
        int_field(input, "HeightPixels")?,
    ) {
        (None, None) => Ok(None),
        (Some(w @ 1..=3840), Some(h @ 1..=2160)) => Ok(Some((w as u32, h as u32))),
        (Some(_), Some(_)) => Err(invalid(
            "WidthPixels must be 1 to 3840 and HeightPixels 1 to 2160",
        )),
        // "If only the WidthPixels parameter is provided or if only the HeightPixels is
        // provided, a ValidationException will be thrown."
        _ => Err(error(
            StatusCode::BAD_REQUEST,
            "ValidationException",
            "WidthPixels and HeightPixels go together",
        )),
    }
}

/// The page size and the index of the first sampled time on this page.
fn paging(input: &Value) -> Result<(usize, usize), ApiError> {
    let page = match input.get("MaxResults").filter(|v| !v.is_null()) {
        None => PAGE,
        Some(v) => match v.as_u64() {
            Some(n @ 1..=100) => (n as usize).min(PAGE),
            _ => return Err(invalid("MaxResults must be 1 to 100")),
        },
    };
    let from = match input.get("NextToken").and_then(Value::as_str) {
        None => 0,
        Some(t) => t
            .parse::<usize>()
            .map_err(|_| invalid("NextToken was not issued by this endpoint"))?,
    };
    Ok((page, from))
}

fn parse(input: &Value) -> Result<Ask, ApiError> {
    let kind = enum_field(
        input,
        "ImageSelectorType",
        &["PRODUCER_TIMESTAMP", "SERVER_TIMESTAMP"],
    )?
    .ok_or_else(|| invalid("ImageSelectorType is required"))?;
    let start_ms = timestamp_ms(input.get("StartTimestamp"), "StartTimestamp")?
        .ok_or_else(|| invalid("StartTimestamp is required"))?;
    let end_ms = timestamp_ms(input.get("EndTimestamp"), "EndTimestamp")?
        .ok_or_else(|| invalid("EndTimestamp is required"))?;
    if end_ms < start_ms {
        return Err(invalid("EndTimestamp must not be before StartTimestamp"));
    }
    if end_ms - start_ms > MAX_SPAN_MS {
        return Err(invalid(
            "The time range between StartTimestamp and EndTimestamp must be at most 300 seconds",
        ));
    }
    // Not given: an image every 3 s, the minimum the API once had (an inference; the
    // reference names no default).
    let interval_ms = int_field(input, "SamplingInterval")?.unwrap_or(3000);
    if interval_ms < MIN_INTERVAL_MS as i64 {
        return Err(invalid("SamplingInterval must be at least 200 ms"));
    }
    let png = enum_field(input, "Format", &["JPEG", "PNG"])?
        .ok_or_else(|| invalid("Format is required"))?
        == "PNG";
    let quality = match input.get("FormatConfig") {
        None | Some(Value::Null) => 80,
        Some(Value::Object(m)) if m.len() == 1 => m
            .get("JPEGQuality")
            .and_then(Value::as_str)
            .and_then(|q| q.parse::<i32>().ok())
            .filter(|q| (1..=100).contains(q))
            .ok_or_else(|| invalid("FormatConfig takes JPEGQuality, \"1\" to \"100\""))?,
        Some(_) => return Err(invalid("FormatConfig takes one key, JPEGQuality")),
    };
    let size = size(input)?;
    let (page, from) = paging(input)?;
    Ok(Ask {
        producer: kind == "PRODUCER_TIMESTAMP",
        start_ms,
        end_ms,
        interval_ms: interval_ms as u64,
        png,
        quality,
        size,
        page,
        from,
    })
}

/// A sampled time and the key frame (with its track) that shows it, if any.
type Wanted = (u64, Option<(Track, Vec<u8>)>);

/// The page's sample times with the key frame each one shows.
fn key_frames(ctx: &Ctx, stream: &str, ask: &Ask) -> Vec<Wanted> {
    let media = ctx.media();
    let stored = media.get(stream).map_or(&[][..], |m| &m.fragments[..]);
    let key_of = |f: &crate::media::StoredFragment| {
        if ask.producer {
            f.producer_ms
        } else {
            f.server_ms
        }
    };
    let times = (0..)
        .map(|k: u64| ask.start_ms + k * ask.interval_ms)
        .take_while(|t| *t <= ask.end_ms)
        .skip(ask.from)
        .take(ask.page);
    times
        .map(|t| {
            let holding = stored
                .iter()
                .find(|f| (key_of(f)..key_of(f) + f.extent_ms()).contains(&t));
            let frame = holding.and_then(|f| {
                let tr = track(&f.header).ok()?;
                let first_key = frames(f, &tr).ok()?.into_iter().find(|fr| fr.key)?;
                Some((tr.clone(), first_key.data.to_vec()))
            });
            (t, frame)
        })
        .collect()
}

/// Decode key frames of one track into images, one per frame.
fn encode(track: &Track, frames: &[&[u8]], ask: &Ask) -> Result<Vec<Vec<u8>>, RepackError> {
    let decode = make("avdec_h264")?;
    let convert = make("videoconvert")?;
    let scale = make("videoscale")?;
    scale.set_property("add-borders", false);
    let mut caps =
        gst::Caps::builder("video/x-raw").field("pixel-aspect-ratio", gst::Fraction::new(1, 1));
    if let Some((w, h)) = ask.size {
        caps = caps.field("width", w as i32).field("height", h as i32);
    }
    let filter = make("capsfilter")?;
    filter.set_property("caps", caps.build());
    let encoder = if ask.png {
        let e = make("pngenc")?;
        e.set_property("snapshot", false);
        e
    } else {
        let e = make("jpegenc")?;
        e.set_property("quality", ask.quality);
        e
    };
    let units: Vec<Unit<'_>> = frames
        .iter()
        .enumerate()
        .map(|(i, data)| Unit {
            data,
            pts: Duration::from_millis(40 * i as u64),
            dts: None,
            key: true,
        })
        .collect();
    run(
        track,
        vec![decode, convert, scale, filter, encoder],
        &units,
        Duration::from_secs(30),
    )
}

/// Base64 (RFC 4648, padded), as the JSON `ImageContent` carries the image.
pub fn base64(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(ALPHABET[((n >> (18 - 6 * i)) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// GetImages pages rendered at once.
static RENDERING: tokio::sync::Semaphore = tokio::sync::Semaphore::const_new(2);

/// GetImages.
pub async fn get_images(ctx: Arc<Ctx>, input: Value) -> Reply {
    let ask = parse(&input)?;
    let stream = playback_stream(&ctx, &input)?;
    let wanted = key_frames(&ctx, &stream, &ask);
    let total = (ask.end_ms - ask.start_ms) / ask.interval_ms + 1;
    let next = ask.from as u64 + wanted.len() as u64;
    let job = ask.clone();
    // Decoding and encoding a page of full-size images holds tens of MB: a few at a time keep
    // the server's memory bounded under concurrent callers, the rest wait their turn.
    let _turn = RENDERING.acquire().await.map_err(|_| {
        error(
            StatusCode::INTERNAL_SERVER_ERROR,
            "InternalFailure",
            "image worker closed",
        )
    })?;
    let images = tokio::task::spawn_blocking(move || render(&wanted, &job))
        .await
        .map_err(|_| {
            error(
                StatusCode::INTERNAL_SERVER_ERROR,
                "InternalFailure",
                "image worker failed",
            )
        })?;
    let mut out = json!({ "Images": images });
    if next < total {
        out["NextToken"] = json!(next.to_string());
    }
    Ok(out)
}

/// Distinct key frames of one track to decode, and which entries show each.
struct KeyFrames {
    track: Track,
    frames: Vec<Vec<u8>>,
    users: Vec<Vec<usize>>,
}

/// The `Images` entries for sampled times: an image, or the entry's error.
fn render(wanted: &[Wanted], ask: &Ask) -> Vec<Value> {
    let mut out: Vec<Value> = wanted
        .iter()
        .map(|(t, _)| json!({ "TimeStamp": *t as f64 / 1000.0, "Error": "NO_MEDIA" }))
        .collect();
    // Times in one fragment show the same key frame: decode it once.
    let mut groups: Vec<KeyFrames> = Vec::new();
    for (i, (_, frame)) in wanted.iter().enumerate() {
        let Some((tr, data)) = frame else { continue };
        let g = match groups
            .iter()
            .position(|g| g.track.codec_private == tr.codec_private)
        {
            Some(g) => g,
            None => {
                groups.push(KeyFrames {
                    track: tr.clone(),
                    frames: Vec::new(),
                    users: Vec::new(),
                });
                groups.len() - 1
            }
        };
        let group = &mut groups[g];
        match group.frames.iter().position(|d| d == data) {
            Some(k) => group.users[k].push(i),
            None => {
                group.frames.push(data.clone());
                group.users.push(vec![i]);
            }
        }
    }
    for KeyFrames {
        track: tr,
        frames,
        users,
    } in groups
    {
        let refs: Vec<&[u8]> = frames.iter().map(Vec::as_slice).collect();
        let images = encode(&tr, &refs, ask).unwrap_or_else(|e| {
            tracing::warn!(error = %e, "GetImages could not decode key frames");
            Vec::new()
        });
        for (k, entries) in users.iter().enumerate() {
            for &i in entries {
                out[i] = match images.get(k) {
                    Some(img) => json!({
                        "TimeStamp": wanted[i].0 as f64 / 1000.0,
                        "ImageContent": base64(img),
                    }),
                    None => json!({
                        "TimeStamp": wanted[i].0 as f64 / 1000.0,
                        "Error": "MEDIA_ERROR",
                    }),
                };
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_pads_as_rfc_4648() {
        assert_eq!(base64(b""), "");
        assert_eq!(base64(b"f"), "Zg==");
        assert_eq!(base64(b"fo"), "Zm8=");
        assert_eq!(base64(b"foobar"), "Zm9vYmFy");
    }
}
