//! GetMedia: chunks from the start selector on, then every new fragment as it is stored.

use std::sync::Arc;

use bytes::Bytes;
use http::{Response, StatusCode};
use http_body_util::BodyExt;
use serde_json::{json, Value};
use telescope_kvs::ChannelBody;
use tokio::sync::mpsc;
use tokio::time::Instant;

use crate::media::{chunk, error_chunk, well_formed_number, StoredFragment};
use crate::{invalid, not_found, respond, ApiError, Body, Ctx};

/// The stream a data-plane request names by StreamName or StreamARN.
pub(crate) fn stream_of(ctx: &Ctx, input: &Value) -> Result<String, ApiError> {
    let (name, arn) = (
        input.get("StreamName").and_then(Value::as_str),
        input.get("StreamARN").and_then(Value::as_str),
    );
    if name.is_none() && arn.is_none() {
        return Err(invalid("StreamName or StreamARN is required"));
    }
    ctx.streams()
        .find(name, arn)
        .map(|s| s.name.clone())
        .ok_or_else(|| not_found(name.or(arn).unwrap_or_default()))
}

/// Where a GetMedia starts: a fragment index, or a fragment number not stored.
enum Start {
    At(usize),
    Missing(String),
}

/// The first fragment to send for `selector`.
fn start(ctx: &Ctx, stream: &str, selector: &Value) -> Result<Start, ApiError> {
    let kind = selector
        .get("StartSelectorType")
        .and_then(Value::as_str)
        .unwrap_or("");
    let media = ctx.media();
    let fragments = media.get(stream).map_or(&[][..], |m| &m.fragments[..]);
    // "Start with the chunk after a specific fragment" (StartSelector, FRAGMENT_NUMBER and
    // CONTINUATION_TOKEN).
    let after = |field: &str| -> Result<Start, ApiError> {
        let number = selector.get(field).and_then(Value::as_str).unwrap_or("");
        if !well_formed_number(number) {
            return Err(invalid(format!(
                "{field} `{number}` is not a fragment number"
            )));
        }
        Ok(match fragments.iter().position(|f| f.number == number) {
            Some(i) => Start::At(i + 1),
            None => Start::Missing(number.to_owned()),
        })
    };
    Ok(match kind {
        "EARLIEST" => Start::At(0),
        // The newest fragment, then what follows.
        "NOW" => Start::At(fragments.len().saturating_sub(1)),
        "FRAGMENT_NUMBER" => after("AfterFragmentNumber")?,
        "CONTINUATION_TOKEN" => after("ContinuationToken")?,
        "PRODUCER_TIMESTAMP" | "SERVER_TIMESTAMP" => {
            let Some(at) = selector.get("StartTimestamp").and_then(Value::as_f64) else {
                return Err(invalid("StartTimestamp is required"));
            };
            let at_ms = (at * 1000.0).round().max(0.0) as u64;
            let producer = kind == "PRODUCER_TIMESTAMP";
            Start::At(containing(fragments, at_ms, producer))
        }
        other => {
            return Err(invalid(format!(
                "StartSelectorType `{other}` is not supported"
            )))
        }
    })
}

/// The fragment to start with for a timestamp: "Start with the chunk containing a fragment
/// with the specified producer or server timestamp" (StartSelector, kinesis-video-media API
/// reference), so a fragment whose span holds `at_ms` is sent whole, not skipped; in a gap,
/// the first fragment after it (an inference: the reference does not say).
fn containing(fragments: &[StoredFragment], at_ms: u64, producer: bool) -> usize {
    fragments
        .iter()
        .position(|f| {
            let start = if producer { f.producer_ms } else { f.server_ms };
            start.saturating_add(f.extent_ms()) > at_ms
        })
        .unwrap_or(fragments.len())
}

/// GetMedia: chunks from the start selector on, then every new fragment as it is stored.
///
/// The response stays open waiting for data, as the service's does (boto3 #3532: `get_media`
/// "will block waiting for data even if none is available"; boto3 #1828), so a reader may start
/// before its producer. It ends when the reader has caught up with what a producer sent and no
/// producer is connected to the stream any more for `get_media_idle` (consumers see the end of
/// the payload a few seconds after the producer stops: parser-library #121, #110), when the
/// stream is deleted, or at `get_media_max` (the service ends sessions at about 45 minutes:
/// parser-library #16, #108).
pub(crate) fn get_media(ctx: Arc<Ctx>, input: &Value) -> Response<Body> {
    let stream = match stream_of(&ctx, input) {
        Ok(s) => s,
        Err(e) => return respond(Err(e)),
    };
    let selector = input
        .get("StartSelector")
        .cloned()
        .unwrap_or(json!({"StartSelectorType": "EARLIEST"}));
    let from = match start(&ctx, &stream, &selector) {
        Ok(Start::At(i)) => i,
        Ok(Start::Missing(number)) => {
            // A well-formed number not stored: HTTP 200, then the in-stream error 4000
            // "Requested fragment is not found" (GetMediaOutput.Payload, kinesis-video-media
            // API reference), as an error chunk, and the end.
            let chunk = error_chunk("FRAGMENT_NOT_FOUND", 4000, &number);
            return media_response(http_body_util::Full::new(Bytes::from(chunk)).boxed());
        }
        Err(e) => return respond(Err(e)),
    };
    let (tx, rx) = mpsc::channel::<Bytes>(8);
    let mut changes = ctx.stored.subscribe();
    tokio::spawn(async move {
        let end_of_session = Instant::now() + ctx.config.get_media_max;
        let mut next = from;
        let mut sent = 0usize;
        loop {
            changes.borrow_and_update();
            let (chunks, producers) = {
                if ctx.streams().find(Some(&stream), None).is_none() {
                    return;
                }
                let media = ctx.media();
                let (fragments, producers) = media
                    .get(&stream)
                    .map_or((&[][..], 0), |m| (&m.fragments[..], m.producers));
                let newest = fragments.last().map_or(0, |f| f.server_ms);
                let out: Vec<Bytes> = fragments
                    .iter()
                    .skip(next)
                    .map(|f| Bytes::from(chunk(f, Some(newest))))
                    .collect();
                next = next.max(fragments.len());
                (out, producers)
            };
            sent += chunks.len();
            for c in chunks {
                if tx.send(c).await.is_err() {
                    return;
                }
            }
            let wait = if sent > 0 && producers == 0 {
                // Caught up with a producer that has gone.
                ctx.config.get_media_idle
            } else {
                end_of_session.saturating_duration_since(Instant::now())
            };
            let deadline = (Instant::now() + wait).min(end_of_session);
            match tokio::time::timeout_at(deadline, changes.changed()).await {
                Ok(Ok(())) => {}
                // The session is over, or the server is going away.
                _ => return,
            }
        }
    });
    media_response(ChannelBody(rx).boxed())
}

/// A 200 with a media payload (`video/webm`, as the service answers: producer-sdk-java #47).
pub(crate) fn media_response(body: Body) -> Response<Body> {
    Response::builder()
        .status(StatusCode::OK)
        .header("content-type", "video/webm")
        .body(body)
        .unwrap_or_else(|_| respond(Err(invalid("response"))))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fragment(producer_ms: u64, frames: u32, duration_ms: i64) -> StoredFragment {
        StoredFragment {
            number: producer_ms.to_string(),
            producer_ms,
            server_ms: producer_ms + 500,
            frames,
            duration_ms,
            raw: Vec::new(),
            header: Default::default(),
        }
    }

    #[test]
    fn a_timestamp_inside_a_fragment_starts_with_that_fragment() {
        // Two-second fragments of 50 frames, 40 ms apart, then a gap.
        let fragments = [
            fragment(10_000, 50, 1960),
            fragment(12_000, 50, 1960),
            fragment(20_000, 50, 1960),
        ];
        assert_eq!(containing(&fragments, 9_000, true), 0, "before the first");
        assert_eq!(containing(&fragments, 10_000, true), 0);
        assert_eq!(containing(&fragments, 11_000, true), 0, "inside the first");
        assert_eq!(containing(&fragments, 11_990, true), 0, "in its last frame");
        assert_eq!(containing(&fragments, 12_000, true), 1);
        assert_eq!(
            containing(&fragments, 15_000, true),
            2,
            "in the gap: the next"
        );
        assert_eq!(containing(&fragments, 25_000, true), 3, "after the last");
        assert_eq!(containing(&fragments, 11_000, false), 0, "server time too");
    }
}
