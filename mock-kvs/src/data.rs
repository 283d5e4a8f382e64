//! The data plane: PutMedia (streamed MKV in, newline-separated JSON acks out), GetMedia and
//! ListFragments, with faults on demand.

use std::str::FromStr;
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body_util::BodyExt;
use hyper::body::Incoming;
use serde_json::{json, Value};
use telescope_kvs::{mkv, AckEvent, ChannelBody, FragmentAck};
use tokio::sync::mpsc;

use super::mkv::{MkvEvent, MkvParser};
use super::{authorize, error, invalid, not_found, respond, ApiError, Body, Ctx, Reply};

/// A fault PutMedia can be told to inject.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Fault {
    /// Drop every PutMedia connection when its N-th fragment arrives, without acknowledging
    /// that fragment (the producer must resend it).
    ResetAfterFragments(u32),
    /// Cut every PutMedia connection once it has received more than N body bytes (mid-fragment).
    ResetAfterBytes(u64),
    /// Answer the first N PutMedia requests with 503 (throttled service).
    Refuse(u32),
    /// Hold every PERSISTED ack back this many milliseconds.
    DelayAcks(u64),
    /// Send RECEIVED but never PERSISTED.
    WithholdPersisted,
    /// Answer the N-th fragment of every connection with an ERROR ack of this id (and do not
    /// store it): `error-ack:ID:N`.
    ErrorAck { error_id: u64, nth: u32 },
    /// Cut every PutMedia connection this many milliseconds after it started, as KVS does when
    /// the credentials that signed it expire.
    ExpireConnections(u64),
}

impl Fault {
    /// The fragment count of a `reset-after` fault.
    pub fn reset_after(&self) -> Option<u32> {
        match self {
            Fault::ResetAfterFragments(n) => Some(*n),
            _ => None,
        }
    }

    /// The request count of a `refuse` fault.
    pub fn refuse(&self) -> Option<u32> {
        match self {
            Fault::Refuse(n) => Some(*n),
            _ => None,
        }
    }

    /// The delay of a `delay-acks` fault.
    pub fn ack_delay(&self) -> Option<std::time::Duration> {
        match self {
            Fault::DelayAcks(ms) => Some(std::time::Duration::from_millis(*ms)),
            _ => None,
        }
    }

    /// The (error id, fragment) of an `error-ack` fault.
    pub fn error_ack(&self) -> Option<(u64, u32)> {
        match self {
            Fault::ErrorAck { error_id, nth } => Some((*error_id, *nth)),
            _ => None,
        }
    }

    /// The byte count of a `reset-after-bytes` fault.
    pub fn reset_after_bytes(&self) -> Option<u64> {
        match self {
            Fault::ResetAfterBytes(n) => Some(*n),
            _ => None,
        }
    }

    /// The lifetime of connections under an `expire-connections` fault.
    pub fn connection_lifetime(&self) -> Option<std::time::Duration> {
        match self {
            Fault::ExpireConnections(ms) => Some(std::time::Duration::from_millis(*ms)),
            _ => None,
        }
    }
}

impl FromStr for Fault {
    type Err = String;

    /// `reset-after:N`, `reset-after-bytes:N`, `refuse:N`, `delay-acks:MS`, `withhold-persisted`, `error-ack:ID:N`,
    /// `expire-connections:MS`.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let (name, arg) = s.split_once(':').unwrap_or((s, ""));
        let count = || arg.parse::<u32>().ok().filter(|n| *n > 0);
        let fault = match name {
            "reset-after" => count().map(Fault::ResetAfterFragments),
            "reset-after-bytes" => arg.parse::<u64>().ok().filter(|n| *n > 0).map(Fault::ResetAfterBytes),
            "refuse" => count().map(Fault::Refuse),
            "delay-acks" => arg.parse::<u64>().ok().map(Fault::DelayAcks),
            "withhold-persisted" if arg.is_empty() => Some(Fault::WithholdPersisted),
            "error-ack" => arg.split_once(':').and_then(|(id, n)| {
                let nth = n.parse().ok().filter(|n| *n > 0)?;
                Some(Fault::ErrorAck {
                    error_id: id.parse().ok()?,
                    nth,
                })
            }),
            "expire-connections" => arg
                .parse::<u64>()
                .ok()
                .filter(|ms| *ms > 0)
                .map(Fault::ExpireConnections),
            _ => {
                return Err(format!(
                    "unknown fault `{s}` (known: reset-after:N, reset-after-bytes:N, refuse:N, delay-acks:MS, \
                     withhold-persisted, error-ack:ID:N, expire-connections:MS)"
                ))
            }
        };
        fault.ok_or_else(|| format!("`{s}`: bad arguments for {name}"))
    }
}

/// What a stream holds.
#[derive(Debug, Default, Clone)]
pub struct Media {
    /// The latest stream header (EBML, Segment, Info, Tracks).
    pub header: Arc<Vec<u8>>,
    /// Stored fragments in arrival order (a resent fragment is stored again, as KVS does).
    pub fragments: Vec<StoredFragment>,
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

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_millis() as u64
}

/// PutMedia: check the request, answer 200 at once, then ingest while acking.
pub(super) async fn put_media(req: Request<Incoming>, ctx: Arc<Ctx>) -> Response<Body> {
    let (parts, body) = req.into_parts();
    if let Err(e) = authorize(&ctx, &parts, None) {
        return respond(Err(e));
    }
    let header = |name: &str| {
        parts
            .headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
    };
    let Some(stream) = header("x-amzn-stream-name") else {
        return respond(Err(invalid("x-amzn-stream-name is required")));
    };
    if ctx.streams().find(Some(&stream), None).is_none() {
        return respond(Err(not_found(&stream)));
    }
    let refused = ctx
        .put_requests
        .fetch_add(1, std::sync::atomic::Ordering::SeqCst)
        + 1;
    if ctx
        .faults()
        .iter()
        .filter_map(Fault::refuse)
        .any(|n| refused <= u64::from(n))
    {
        return respond(Err(error(
            StatusCode::SERVICE_UNAVAILABLE,
            "ClientLimitExceededException",
            "fault: refused",
        )));
    }
    let relative = match header("x-amzn-fragment-timecode-type").as_deref() {
        Some("ABSOLUTE") | None => false,
        Some("RELATIVE") => true,
        Some(other) => {
            return respond(Err(invalid(format!(
                "x-amzn-fragment-timecode-type `{other}`"
            ))))
        }
    };
    let start_ms = header("x-amzn-producer-start-timestamp")
        .and_then(|s| s.parse::<f64>().ok())
        .map_or(0, |secs| (secs * 1000.0).round() as u64);
    let (tx, rx) = mpsc::channel::<Bytes>(64);
    let lifetime = ctx.faults().iter().find_map(Fault::connection_lifetime);
    tokio::spawn(async move {
        let work = ingest(ctx, stream, relative, start_ms, body, tx);
        match lifetime {
            // Everything the connection does stops at its end of life, acks included.
            Some(life) => {
                if tokio::time::timeout(life, work).await.is_err() {
                    tracing::info!("fault: connection expired");
                }
            }
            None => work.await,
        }
    });
    Response::builder()
        .status(StatusCode::OK)
        .header("content-type", "application/json")
        .body(ChannelBody(rx).boxed())
        .unwrap_or_else(|_| {
            respond(Err(error(
                StatusCode::INTERNAL_SERVER_ERROR,
                "ClientLimitExceededException",
                "response",
            )))
        })
}

async fn send(
    tx: &mpsc::Sender<Bytes>,
    event: AckEvent,
    timecode: Option<u64>,
    number: Option<String>,
) -> bool {
    let ack = FragmentAck {
        event,
        fragment_timecode: timecode,
        fragment_number: number,
    };
    tx.send(Bytes::from(ack.to_json() + "\n")).await.is_ok()
}

async fn ingest(
    ctx: Arc<Ctx>,
    stream: String,
    relative: bool,
    start_ms: u64,
    mut body: Incoming,
    tx: mpsc::Sender<Bytes>,
) {
    let faults = ctx.faults();
    let reset_after = faults.iter().find_map(Fault::reset_after);
    let ack_delay = faults.iter().find_map(Fault::ack_delay);
    let error_ack = faults.iter().find_map(Fault::error_ack);
    let withhold = faults.contains(&Fault::WithholdPersisted);
    let reset_bytes = faults.iter().find_map(Fault::reset_after_bytes);
    let mut bytes_in = 0u64;
    let mut parser = MkvParser::new();
    let mut received = 0u32;
    let mut last_timecode = None;
    loop {
        let (events, done) = match body.frame().await {
            Some(Ok(frame)) => match frame.data_ref() {
                Some(data) => {
                    bytes_in += data.len() as u64;
                    if reset_bytes.is_some_and(|n| bytes_in > n) {
                        tracing::info!(stream = %stream, bytes_in, "fault: resetting the connection mid-body");
                        return;
                    }
                    (parser.push(data), false)
                }
                None => continue,
            },
            Some(Err(_)) => return,
            None => (parser.finish(), true),
        };
        for event in events {
            match event {
                Ok(MkvEvent::Header(h)) => {
                    ctx.media().entry(stream.clone()).or_default().header = Arc::new(h)
                }
                Ok(MkvEvent::Cluster(c)) => {
                    let timecode = if relative {
                        start_ms + c.timecode
                    } else {
                        c.timecode
                    };
                    if !c.starts_with_key {
                        let error = AckEvent::Error {
                            error_id: 4006,
                            code: Some("INVALID_MKV_DATA".into()),
                        };
                        send(&tx, error, Some(timecode), None).await;
                        return;
                    }
                    if last_timecode.is_some_and(|l| timecode < l) {
                        let error = AckEvent::Error {
                            error_id: 4004,
                            code: Some("FRAGMENT_TIMECODE_LESSER_THAN_PREVIOUS".into()),
                        };
                        send(&tx, error, Some(timecode), None).await;
                        return;
                    }
                    last_timecode = Some(timecode);
                    received += 1;
                    if reset_after == Some(received) {
                        tracing::info!(stream = %stream, timecode, "fault: dropping the connection before acking");
                        return;
                    }
                    if let Some((error_id, _)) = error_ack.filter(|(_, nth)| *nth == received) {
                        let error = AckEvent::Error {
                            error_id,
                            code: Some("INJECTED_FAULT".into()),
                        };
                        if !send(&tx, error, Some(timecode), None).await {
                            return;
                        }
                        continue;
                    }
                    if !send(&tx, AckEvent::Buffering, Some(timecode), None).await {
                        return;
                    }
                    let number = {
                        let mut media = ctx.media();
                        let m = media.entry(stream.clone()).or_default();
                        let number = format!("91343852333{:020}", m.fragments.len() + 1);
                        m.fragments.push(StoredFragment {
                            number: number.clone(),
                            producer_ms: timecode,
                            server_ms: now_ms(),
                            frames: c.frames,
                            duration_ms: c.last_offset,
                            // Without media kept (soaks), only what the fragment was.
                            raw: if ctx.config.keep_media {
                                c.raw
                            } else {
                                Vec::new()
                            },
                            header: m.header.clone(),
                        });
                        number
                    };
                    ctx.stored.send_modify(|n| *n += 1);
                    send(
                        &tx,
                        AckEvent::Received,
                        Some(timecode),
                        Some(number.clone()),
                    )
                    .await;
                    if let Some(delay) = ack_delay {
                        tokio::time::sleep(delay).await;
                    }
                    if withhold {
                        continue;
                    }
                    if !send(&tx, AckEvent::Persisted, Some(timecode), Some(number)).await {
                        return;
                    }
                }
                Err(e) => {
                    tracing::info!(stream = %stream, error = %e, "PutMedia body is not valid MKV");
                    let error = AckEvent::Error {
                        error_id: 4006,
                        code: Some("INVALID_MKV_DATA".into()),
                    };
                    send(&tx, error, last_timecode, None).await;
                    return;
                }
            }
        }
        if done {
            return;
        }
    }
}

fn stream_of(ctx: &Ctx, input: &Value) -> Result<String, super::ApiError> {
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

/// A time in milliseconds as KVS's tags write it: seconds with three decimals.
fn seconds(ms: u64) -> String {
    format!("{}.{:03}", ms / 1000, ms % 1000)
}

/// One GetMedia chunk, as KVS sends it: the fragment as a stand-alone MKV segment (the stream
/// header, then tags naming the fragment, its cluster, and tags saying how far behind the
/// newest fragment it is and how to continue after it).
fn chunk(f: &StoredFragment, newest_server_ms: u64) -> Vec<u8> {
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
    out.extend_from_slice(&mkv::tags(&[
        (
            "AWS_KINESISVIDEO_MILLIS_BEHIND_NOW",
            &newest_server_ms.saturating_sub(f.server_ms).to_string(),
        ),
        ("AWS_KINESISVIDEO_CONTINUATION_TOKEN", &f.number),
    ]));
    out
}

/// GetMedia: chunks from the start selector on, then every new fragment as it is stored (live),
/// until the client goes away, the stream is deleted, or no fragment came for
/// `get_media_idle`.
pub(super) fn get_media(ctx: Arc<Ctx>, input: &Value) -> Response<Body> {
    let stream = match stream_of(&ctx, input) {
        Ok(s) => s,
        Err(e) => return respond(Err(e)),
    };
    let selector = input
        .get("StartSelector")
        .cloned()
        .unwrap_or(json!({"StartSelectorType": "EARLIEST"}));
    let kind = selector
        .get("StartSelectorType")
        .and_then(Value::as_str)
        .unwrap_or("");
    let after = |field: &str| -> Result<usize, ApiError> {
        let number = selector.get(field).and_then(Value::as_str).unwrap_or("");
        let media = ctx.media();
        let fragments = media.get(&stream).map_or(&[][..], |m| &m.fragments[..]);
        fragments
            .iter()
            .position(|f| f.number == number)
            .map(|i| i + 1)
            .ok_or_else(|| invalid(format!("no fragment `{number}` ({field})")))
    };
    let stored = ctx.media().get(&stream).map_or(0, |m| m.fragments.len());
    let from = match kind {
        "EARLIEST" => 0,
        // The newest fragment, then what follows.
        "NOW" => stored.saturating_sub(1),
        "FRAGMENT_NUMBER" => match after("AfterFragmentNumber") {
            Ok(i) => i,
            Err(e) => return respond(Err(e)),
        },
        "CONTINUATION_TOKEN" => match after("ContinuationToken") {
            Ok(i) => i,
            Err(e) => return respond(Err(e)),
        },
        "PRODUCER_TIMESTAMP" | "SERVER_TIMESTAMP" => {
            let Some(at) = selector.get("StartTimestamp").and_then(Value::as_f64) else {
                return respond(Err(invalid("StartTimestamp is required")));
            };
            let at_ms = (at * 1000.0) as u64;
            let media = ctx.media();
            media.get(&stream).map_or(0, |m| {
                m.fragments
                    .iter()
                    .position(|f| {
                        if kind == "PRODUCER_TIMESTAMP" {
                            f.producer_ms >= at_ms
                        } else {
                            f.server_ms >= at_ms
                        }
                    })
                    .unwrap_or(m.fragments.len())
            })
        }
        other => {
            return respond(Err(invalid(format!(
                "StartSelectorType `{other}` is not supported"
            ))))
        }
    };
    let (tx, rx) = mpsc::channel::<Bytes>(8);
    let mut changes = ctx.stored.subscribe();
    tokio::spawn(async move {
        let mut next = from;
        loop {
            changes.borrow_and_update();
            let chunks: Vec<Bytes> = {
                if ctx.streams().find(Some(&stream), None).is_none() {
                    return;
                }
                let media = ctx.media();
                let fragments = media.get(&stream).map_or(&[][..], |m| &m.fragments[..]);
                let newest = fragments.last().map_or(0, |f| f.server_ms);
                let out = fragments
                    .iter()
                    .skip(next)
                    .map(|f| Bytes::from(chunk(f, newest)))
                    .collect();
                next = next.max(fragments.len());
                out
            };
            for c in chunks {
                if tx.send(c).await.is_err() {
                    return;
                }
            }
            match tokio::time::timeout(ctx.config.get_media_idle, changes.changed()).await {
                Ok(Ok(())) => {}
                // Idle for too long, or the server is going away.
                _ => return,
            }
        }
    });
    Response::builder()
        .status(StatusCode::OK)
        .header("content-type", "video/webm")
        .body(ChannelBody(rx).boxed())
        .unwrap_or_else(|_| respond(Err(invalid("response"))))
}

/// ListFragments: the stored fragments (within `FragmentSelector`'s timestamp range when
/// given), `MaxResults` at a time (default and at most 1000), with a `NextToken` while more
/// remain.
pub(super) fn list_fragments(ctx: &Ctx, input: &Value) -> Reply {
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

/// GetMediaForFragmentList: the listed fragments in the order asked, each a stand-alone MKV
/// segment with the archived-media tags; a fragment not stored is reported in its place by
/// exception tags, as KVS does, and the others still come.
pub(super) fn get_media_for_fragment_list(ctx: &Ctx, input: &Value) -> Response<Body> {
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
    let media = ctx.media();
    let fragments = media.get(&stream).map_or(&[][..], |m| &m.fragments[..]);
    let mut out = Vec::new();
    for number in wanted {
        let number = number.as_str().unwrap_or_default();
        match fragments.iter().find(|f| f.number == number) {
            Some(f) => {
                out.extend_from_slice(&f.header);
                out.extend_from_slice(&mkv::tags(&[
                    ("AWS_KINESISVIDEO_FRAGMENT_NUMBER", &f.number),
                    (
                        "AWS_KINESISVIDEO_SERVER_SIDE_TIMESTAMP",
                        &seconds(f.server_ms),
                    ),
                    (
                        "AWS_KINESISVIDEO_PRODUCER_SIDE_TIMESTAMP",
                        &seconds(f.producer_ms),
                    ),
                ]));
                out.extend_from_slice(&f.raw);
            }
            None => out.extend_from_slice(&mkv::tags(&[
                ("AWS_KINESISVIDEO_FRAGMENT_NUMBER", number),
                ("AWS_KINESISVIDEO_EXCEPTION_ERROR_CODE", "4000"),
                (
                    "AWS_KINESISVIDEO_EXCEPTION_MESSAGE",
                    "Requested fragment is not found",
                ),
            ])),
        }
    }
    Response::builder()
        .status(StatusCode::OK)
        .header("content-type", "video/webm")
        .body(http_body_util::Full::new(Bytes::from(out)).boxed())
        .unwrap_or_else(|_| respond(Err(invalid("response"))))
}
