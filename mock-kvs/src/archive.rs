//! The archived-media API: ListFragments and GetMediaForFragmentList.

use bytes::Bytes;
use http::Response;
use http_body_util::BodyExt;
use serde_json::{json, Value};

use crate::get_media::{media_response, stream_of};
use crate::media::{chunk, error_chunk, well_formed_number, StoredFragment};
use crate::{invalid, respond, Body, Ctx, Reply};

/// ListFragments: the stored fragments (within `FragmentSelector`'s timestamp range when
/// given), `MaxResults` at a time (default and at most 1000), with a `NextToken` while more
/// remain.
pub(crate) fn list_fragments(ctx: &Ctx, input: &Value) -> Reply {
    let stream = stream_of(ctx, input)?;
    let max = match input.get("MaxResults").map(Value::as_u64) {
        None => 1000,
        Some(Some(n @ 1..=1000)) => n as usize,
        Some(_) => return Err(invalid("MaxResults must be 1 to 1000")),
    };
    let skip = match input.get("NextToken").and_then(Value::as_str) {
        None => 0,
        Some(t) => t
            .parse::<usize>()
            .map_err(|_| invalid(format!("NextToken `{t}` was not issued here")))?,
    };
    let range = match input.get("FragmentSelector") {
        None => None,
        Some(sel) => {
            let kind = sel
                .get("FragmentSelectorType")
                .and_then(Value::as_str)
                .unwrap_or("");
            if kind != "PRODUCER_TIMESTAMP" && kind != "SERVER_TIMESTAMP" {
                return Err(invalid(format!("FragmentSelectorType `{kind}`")));
            }
            let at = |field: &str| {
                sel.get("TimestampRange")
                    .and_then(|r| r.get(field))
                    .and_then(Value::as_f64)
                    .map(|s| (s * 1000.0).round() as u64)
                    .ok_or_else(|| invalid(format!("TimestampRange.{field} is required")))
            };
            Some((
                kind == "PRODUCER_TIMESTAMP",
                at("StartTimestamp")?,
                at("EndTimestamp")?,
            ))
        }
    };
    let media = ctx.media();
    let selected: Vec<&StoredFragment> = media
        .get(&stream)
        .map_or(&[][..], |m| &m.fragments[..])
        .iter()
        .filter(|f| {
            range.is_none_or(|(producer, from, to)| {
                let t = if producer { f.producer_ms } else { f.server_ms };
                (from..=to).contains(&t)
            })
        })
        .collect();
    let fragments: Vec<Value> = selected
        .iter()
        .skip(skip)
        .take(max)
        .map(|f| {
            json!({
                "FragmentNumber": f.number,
                "FragmentSizeInBytes": f.raw.len(),
                "ProducerTimestamp": f.producer_ms as f64 / 1000.0,
                "ServerTimestamp": f.server_ms as f64 / 1000.0,
                "FragmentLengthInMilliseconds": f.duration_ms,
            })
        })
        .collect();
    let mut out = json!({ "Fragments": fragments });
    if skip + max < selected.len() {
        out["NextToken"] = json!((skip + max).to_string());
    }
    Ok(out)
}

/// GetMediaForFragmentList: the listed fragments in the order asked, each a full chunk (its own
/// EBML header and Segment); a fragment not stored is reported in its place by an error chunk
/// of its own, ERROR_CODE `FRAGMENT_NOT_FOUND`, ERROR_ID 3000 (the service's answer captured in
/// aws-sdk-js #3217: HTTP 200, and the other fragments still come).
pub(crate) fn get_media_for_fragment_list(ctx: &Ctx, input: &Value) -> Response<Body> {
    let stream = match stream_of(ctx, input) {
        Ok(s) => s,
        Err(e) => return respond(Err(e)),
    };
    let Some(wanted) = input.get("Fragments").and_then(Value::as_array) else {
        return respond(Err(invalid("Fragments is required")));
    };
    if wanted.is_empty() || wanted.len() > 1000 {
        return respond(Err(invalid(
            "Fragments must list 1 to 1000 fragment numbers",
        )));
    }
    let numbers: Vec<&str> = wanted.iter().filter_map(Value::as_str).collect();
    let malformed: Vec<&str> = numbers
        .iter()
        .copied()
        .filter(|n| !well_formed_number(n))
        .collect();
    if numbers.len() != wanted.len() || !malformed.is_empty() {
        // The service's message for numbers that cannot be the stream's (producer-sdk-cpp
        // #262).
        return respond(Err(invalid(format!(
            "Fragment numbers are invalid : [{}]",
            malformed.join(", ")
        ))));
    }
    let media = ctx.media();
    let fragments: &[StoredFragment] = media.get(&stream).map_or(&[][..], |m| &m.fragments[..]);
    let mut out = Vec::new();
    for number in numbers {
        match fragments.iter().find(|f| f.number == number) {
            Some(f) => out.extend_from_slice(&chunk(f, None)),
            None => out.extend_from_slice(&error_chunk("FRAGMENT_NOT_FOUND", 3000, number)),
        }
    }
    media_response(http_body_util::Full::new(Bytes::from(out)).boxed())
}
