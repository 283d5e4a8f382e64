//! Request members the playback APIs share: the stream (which must retain data), enums,
//! timestamps (restJson1 sends them as epoch seconds) and fragment selectors.

use http::StatusCode;
use serde_json::Value;

use crate::get_media::stream_of;
use crate::{error, invalid, ApiError, Ctx};

/// The stream a playback request names; one that keeps no data cannot be played back
/// (`NoDataRetentionException`: "requested for a stream that does not retain data (that is,
/// has a DataRetentionInHours of 0)").
pub fn playback_stream(ctx: &Ctx, input: &Value) -> Result<String, ApiError> {
    let name = stream_of(ctx, input)?;
    let retention = ctx
        .streams()
        .find(Some(&name), None)
        .map_or(0, |s| s.retention_hours);
    if retention == 0 {
        return Err(error(
            StatusCode::BAD_REQUEST,
            "NoDataRetentionException",
            "The stream does not retain data (DataRetentionInHours is 0)",
        ));
    }
    Ok(name)
}

/// An optional string member that must be one of `allowed`.
pub fn enum_field<'a>(
    input: &'a Value,
    name: &str,
    allowed: &[&str],
) -> Result<Option<&'a str>, ApiError> {
    match input.get(name) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) if allowed.contains(&s.as_str()) => Ok(Some(s)),
        Some(v) => Err(invalid(format!(
            "{name} {v} is not one of {}",
            allowed.join(", ")
        ))),
    }
}

/// An optional timestamp member, in epoch milliseconds. Not a number (or negative) fails
/// deserialization: `SerializationException`, as for other mistyped members.
pub fn timestamp_ms(value: Option<&Value>, name: &str) -> Result<Option<u64>, ApiError> {
    match value {
        None | Some(Value::Null) => Ok(None),
        Some(v) => v
            .as_f64()
            .filter(|s| s.is_finite() && *s >= 0.0 && *s < 1e13)
            .map(|s| Some((s * 1000.0).round() as u64))
            .ok_or_else(|| {
                error(
                    StatusCode::BAD_REQUEST,
                    "SerializationException",
                    format!("{name} must be a timestamp (epoch seconds)"),
                )
            }),
    }
}

/// A `*FragmentSelector`: which timestamps, and the range when given.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Selector {
    /// `PRODUCER_TIMESTAMP` (else `SERVER_TIMESTAMP`).
    pub producer: bool,
    pub start_ms: Option<u64>,
    pub end_ms: Option<u64>,
}

impl Selector {
    /// Parse the member `field` (absent: `None`).
    pub fn parse(value: Option<&Value>, field: &str) -> Result<Option<Selector>, ApiError> {
        let Some(sel) = value.filter(|v| !v.is_null()) else {
            return Ok(None);
        };
        if !sel.is_object() {
            return Err(invalid(format!("{field} must be an object")));
        }
        let kind = enum_field(
            sel,
            "FragmentSelectorType",
            &["PRODUCER_TIMESTAMP", "SERVER_TIMESTAMP"],
        )?;
        let range = sel.get("TimestampRange").filter(|v| !v.is_null());
        let (start_ms, end_ms) = match range {
            None => (None, None),
            Some(r) => {
                let start = timestamp_ms(r.get("StartTimestamp"), "StartTimestamp")?;
                let end = timestamp_ms(r.get("EndTimestamp"), "EndTimestamp")?;
                if start.is_none() {
                    return Err(invalid(format!(
                        "{field}.TimestampRange.StartTimestamp is required"
                    )));
                }
                (start, end)
            }
        };
        Ok(Some(Selector {
            // The selector type defaults to SERVER_TIMESTAMP in the service's reference
            // ("The default is SERVER_TIMESTAMP" for HLSFragmentSelectorType).
            producer: kind == Some("PRODUCER_TIMESTAMP"),
            start_ms,
            end_ms,
        }))
    }
}
