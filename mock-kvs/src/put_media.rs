//! PutMedia: streamed MKV in, newline-separated JSON acks out, with faults on demand.
//!
//! What the service accepts and refuses follows its documentation and what its maintainers and
//! users have shown on the wire (the sources are named where each rule is applied):
//! - a fragment that does not start with a key frame is accepted and stored (and counted in
//!   the stats as a warning);
//! - a fragment's earliest frame must come strictly after the previous fragment's latest frame
//!   on the same connection, else ERROR 4004 FRAGMENT_TIMECODE_LESSER_THAN_PREVIOUS;
//! - every ERROR ack carries `ErrorCode` and `FragmentNumber`, and the connection is closed
//!   after it.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body_util::BodyExt;
use hyper::body::Incoming;
use telescope_kvs::{AckEvent, ChannelBody, FragmentAck};
use tokio::sync::mpsc;
use tokio::time::Instant;

use crate::fault::Fault;
use crate::limits::Reservation;
use crate::media::{now_ms, Stats, StoredFragment};
use crate::mkv::{Cluster, MkvError, MkvEvent, MkvParser};
use crate::{authorize, error, invalid, not_found, respond, ApiError, Body, Ctx};

/// Latest producer start timestamp accepted, seconds (the end of year 9999): a larger one
/// cannot be a time, and adding timecodes to it must not overflow.
const MAX_START_SECONDS: f64 = 253_402_300_799.0;

/// PutMedia: check the request, answer 200 at once, then ingest while acking.
pub(crate) async fn put_media(req: Request<Incoming>, ctx: Arc<Ctx>) -> Response<Body> {
    let (parts, body) = req.into_parts();
    let (stream, timecodes) = match accept(&ctx, &parts) {
        Ok(accepted) => accepted,
        Err(refusal) => return respond(Err(refusal)),
    };
    let reservation = Reservation::new(ctx.budget.clone());
    let (tx, rx) = mpsc::channel::<Bytes>(64);
    let lifetime = ctx.faults().iter().find_map(Fault::connection_lifetime);
    tokio::spawn(async move {
        let producer = Producer::register(&ctx, &stream);
        let work = ingest(&ctx, &stream, timecodes, body, tx, reservation);
        match lifetime {
            // Everything the connection does stops at its end of life, acks included.
            Some(life) => {
                if tokio::time::timeout(life, work).await.is_err() {
                    tracing::info!("fault: connection expired");
                }
            }
            None => work.await,
        }
        drop(producer);
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

/// The checks made before answering: signature, stream, injected refusals and the timecode
/// headers. The stream's name and how its timecodes count, or the error response.
fn accept(ctx: &Ctx, parts: &http::request::Parts) -> Result<(String, Timecodes), ApiError> {
    authorize(ctx, parts, None)?;
    let header = |name: &str| {
        parts
            .headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
    };
    let stream =
        header("x-amzn-stream-name").ok_or_else(|| invalid("x-amzn-stream-name is required"))?;
    if ctx.streams().find(Some(&stream), None).is_none() {
        return Err(not_found(&stream));
    }
    let refused = ctx
        .put_requests
        .fetch_add(1, std::sync::atomic::Ordering::SeqCst)
        + 1;
    let faults = ctx.faults();
    if faults
        .iter()
        .filter_map(Fault::refuse)
        .any(|n| refused <= u64::from(n))
    {
        return Err(error(
            StatusCode::SERVICE_UNAVAILABLE,
            "ClientLimitExceededException",
            "fault: refused",
        ));
    }
    let relative = match header("x-amzn-fragment-timecode-type").as_deref() {
        Some("ABSOLUTE") | None => false,
        Some("RELATIVE") => true,
        Some(other) => return Err(invalid(format!("x-amzn-fragment-timecode-type `{other}`"))),
    };
    let start_ms = match header("x-amzn-producer-start-timestamp") {
        None => 0,
        Some(s) => match s.trim().parse::<f64>() {
            Ok(secs) if secs.is_finite() && (0.0..=MAX_START_SECONDS).contains(&secs) => {
                (secs * 1000.0).round() as u64
            }
            _ => {
                return Err(invalid(format!(
                    "x-amzn-producer-start-timestamp `{s}` is not a time in seconds"
                )))
            }
        },
    };
    Ok((stream, Timecodes { relative, start_ms }))
}

/// A PutMedia connection counted on its stream while it lasts (live GetMedia readers wait for
/// more while one is there).
struct Producer {
    ctx: Arc<Ctx>,
    stream: String,
}

impl Producer {
    fn register(ctx: &Arc<Ctx>, stream: &str) -> Producer {
        ctx.media().entry(stream.to_owned()).or_default().producers += 1;
        Producer {
            ctx: ctx.clone(),
            stream: stream.to_owned(),
        }
    }
}

impl Drop for Producer {
    fn drop(&mut self) {
        if let Some(m) = self.ctx.media().get_mut(&self.stream) {
            m.producers = m.producers.saturating_sub(1);
        }
        self.ctx.stored.send_modify(|n| *n += 1);
    }
}

/// How the request said its cluster timecodes count.
#[derive(Debug, Clone, Copy)]
struct Timecodes {
    relative: bool,
    start_ms: u64,
}

async fn send(tx: &mpsc::Sender<Bytes>, ack: FragmentAck) -> bool {
    tx.send(Bytes::from(ack.to_json() + "\n")).await.is_ok()
}

/// Send an ERROR ack; the caller then ends the connection: "all Error ACKs will terminate the
/// connection from the Backend" (amazon-kinesis-video-streams-pic `src/client/src/Stream.c`,
/// `streamFragmentErrorAck`; MushMal in producer-sdk-cpp #572: "Any backend error means the
/// backend will terminate the connection").
async fn send_error(
    ctx: &Ctx,
    tx: &mpsc::Sender<Bytes>,
    error_id: u64,
    code: &str,
    timecode: Option<u64>,
    number: String,
) {
    Stats::bump(&ctx.stats.error_acks);
    let ack = FragmentAck {
        event: AckEvent::Error {
            error_id,
            code: Some(code.to_owned()),
        },
        fragment_timecode: timecode,
        fragment_number: Some(number),
    };
    send(tx, ack).await;
}

/// The faults that act on an ingesting connection.
#[derive(Debug, Clone, Copy)]
struct IngestFaults {
    /// Drop the connection at this fragment, before acking it.
    reset_after: Option<u32>,
    /// Drop the connection once this many body bytes arrived.
    reset_bytes: Option<u64>,
    /// Wait this long between RECEIVED and PERSISTED.
    ack_delay: Option<Duration>,
    /// Answer this fragment with this ERROR ack.
    error_ack: Option<(u64, u32)>,
    /// Never say PERSISTED.
    withhold: bool,
}

impl IngestFaults {
    fn from(faults: &[Fault]) -> Self {
        IngestFaults {
            reset_after: faults.iter().find_map(Fault::reset_after),
            reset_bytes: faults.iter().find_map(Fault::reset_after_bytes),
            ack_delay: faults.iter().find_map(Fault::ack_delay),
            error_ack: faults.iter().find_map(Fault::error_ack),
            withhold: faults.contains(&Fault::WithholdPersisted),
        }
    }
}

/// Whether the connection goes on after a step.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Flow {
    Continue,
    Close,
}

/// One PutMedia connection's body being parsed, checked, stored and acknowledged.
struct Ingest<'a> {
    ctx: &'a Ctx,
    stream: &'a str,
    timecodes: Timecodes,
    tx: mpsc::Sender<Bytes>,
    reservation: Reservation,
    faults: IngestFaults,
    parser: MkvParser,
    bytes_in: u64,
    /// Fragments received on this connection.
    received: u32,
    /// The latest frame of the previous fragment on this connection, in timecode units.
    previous_latest: Option<i128>,
}

async fn ingest(
    ctx: &Ctx,
    stream: &str,
    timecodes: Timecodes,
    body: Incoming,
    tx: mpsc::Sender<Bytes>,
    reservation: Reservation,
) {
    let ingest = Ingest {
        ctx,
        stream,
        timecodes,
        tx,
        reservation,
        faults: IngestFaults::from(&ctx.faults()),
        parser: MkvParser::new(),
        bytes_in: 0,
        received: 0,
        previous_latest: None,
    };
    ingest.run(body).await;
}

impl Ingest<'_> {
    async fn run(mut self, mut body: Incoming) {
        let idle: Duration = self.ctx.config.put_media_idle;
        let mut deadline = Instant::now() + idle;
        loop {
            let Ok(frame) = tokio::time::timeout_at(deadline, body.frame()).await else {
                // "If no data is received within the 30 seconds, Kinesis Video Streams closes
                // the request" (DOCS-ARCHIVE `API_dataplane_PutMedia.md`); here bytes that
                // complete nothing (a fragment sent a byte a second) do not count as data.
                tracing::info!(
                    stream = self.stream,
                    bytes_in = self.bytes_in,
                    "PutMedia idle: closing the connection"
                );
                Stats::bump(&self.ctx.stats.timed_out);
                return;
            };
            let (events, done) = match frame {
                Some(Ok(frame)) => match frame.data_ref() {
                    Some(data) => match self.read(data).await {
                        Some(events) => (events, false),
                        None => return,
                    },
                    None => continue,
                },
                Some(Err(_)) => return,
                None => (self.parser.finish(), true),
            };
            for event in events {
                deadline = Instant::now() + idle;
                if self.event(event).await == Flow::Close {
                    return;
                }
            }
            if done {
                return;
            }
        }
    }

    /// Parse body bytes; `None` when the connection must end (a fault, the memory budget).
    async fn read(&mut self, data: &Bytes) -> Option<Vec<Result<MkvEvent, MkvError>>> {
        self.bytes_in += data.len() as u64;
        if self.faults.reset_bytes.is_some_and(|n| self.bytes_in > n) {
            tracing::info!(
                stream = self.stream,
                bytes_in = self.bytes_in,
                "fault: resetting the connection mid-body"
            );
            return None;
        }
        let events = self.parser.push(data);
        if !self.reservation.resize(self.parser.buffered() as u64) {
            tracing::warn!(
                stream = self.stream,
                "mock-kvs buffer budget spent: closing a PutMedia connection"
            );
            Stats::bump(&self.ctx.stats.over_budget);
            send_error(
                self.ctx,
                &self.tx,
                5000,
                "INTERNAL_ERROR",
                None,
                String::new(),
            )
            .await;
            return None;
        }
        Some(events)
    }

    async fn event(&mut self, event: Result<MkvEvent, MkvError>) -> Flow {
        match event {
            Ok(MkvEvent::Header(h)) => {
                self.ctx
                    .media()
                    .entry(self.stream.to_owned())
                    .or_default()
                    .header = Arc::new(h);
                Flow::Continue
            }
            Ok(MkvEvent::Cluster(c)) => self.cluster(c).await,
            Err(e) => {
                tracing::info!(stream = self.stream, error = %e, "PutMedia body is not valid MKV");
                let (id, code) = e.ack_error();
                // Before a fragment can be identified the service sends an empty number
                // (amazon-kinesis-video-streams-producer-sdk-java PR #277:
                // `"FragmentNumber":"","ErrorId":4006`).
                let number = match e {
                    MkvError::FragmentTooLarge => next_number(self.ctx, self.stream),
                    _ => String::new(),
                };
                send_error(self.ctx, &self.tx, id, code, None, number).await;
                Flow::Close
            }
        }
    }

    async fn cluster(&mut self, c: Cluster) -> Flow {
        let timecode = if self.timecodes.relative {
            self.timecodes.start_ms.saturating_add(c.timecode)
        } else {
            c.timecode
        };
        let number = next_number(self.ctx, self.stream);
        // "The earliest frame timestamp in a fragment must be after the latest frame
        // timestamp in the previous fragment" (DOCS-ARCHIVE `API_dataplane_PutMedia.md`);
        // strictly after: a cluster timecode equal to the previous block's got 4004
        // (producer-sdk-cpp #709; MushMal in #594: "the PTS of the key frame of the
        // fragment should be greater than the PTS of the last frame of the previous
        // fragment"). Per connection: a new PutMedia may start again at 0 (producer-c #143).
        if self
            .previous_latest
            .is_some_and(|latest| c.earliest_frame() <= latest)
        {
            let code = "FRAGMENT_TIMECODE_LESSER_THAN_PREVIOUS";
            send_error(self.ctx, &self.tx, 4004, code, Some(timecode), number).await;
            return Flow::Close;
        }
        self.previous_latest = Some(c.latest_frame());
        self.received += 1;
        if self.faults.reset_after == Some(self.received) {
            tracing::info!(
                stream = self.stream,
                timecode,
                "fault: dropping the connection before acking"
            );
            return Flow::Close;
        }
        let injected = self
            .faults
            .error_ack
            .filter(|(_, nth)| *nth == self.received);
        if let Some((error_id, _)) = injected {
            let code = "INJECTED_FAULT";
            send_error(self.ctx, &self.tx, error_id, code, Some(timecode), number).await;
            return Flow::Close;
        }
        self.acknowledge(c, timecode, number).await
    }

    /// BUFFERING, store, RECEIVED, PERSISTED.
    async fn acknowledge(&mut self, c: Cluster, timecode: u64, number: String) -> Flow {
        // BUFFERING already carries the fragment number (producer-sdk-cpp #684).
        let ack = |event| FragmentAck {
            event,
            fragment_timecode: Some(timecode),
            fragment_number: Some(number.clone()),
        };
        if !send(&self.tx, ack(AckEvent::Buffering)).await {
            return Flow::Close;
        }
        if !c.starts_with_key {
            // Accepted as the service does: no PutMedia constraint or ErrorId refuses it
            // (DOCS-ARCHIVE `API_dataplane_PutMedia.md`), users report such fragments
            // acknowledged and persisted (producer-sdk-cpp #441), and "PutMedia persists
            // the data sent to it, it doesn't modify any of the video frames" (sirknightj,
            // producer-sdk-java #194). Dropping leading non-key frames is the producer
            // SDKs' policy (PIC #76), not the service's.
            Stats::bump(&self.ctx.stats.fragments_not_key_start);
            tracing::warn!(
                stream = self.stream,
                timecode,
                "fragment does not start with a key frame"
            );
        }
        self.store(c, timecode, number.clone());
        send(&self.tx, ack(AckEvent::Received)).await;
        if let Some(delay) = self.faults.ack_delay {
            tokio::time::sleep(delay).await;
        }
        if self.faults.withhold || send(&self.tx, ack(AckEvent::Persisted)).await {
            Flow::Continue
        } else {
            Flow::Close
        }
    }

    fn store(&self, c: Cluster, timecode: u64, number: String) {
        {
            let mut media = self.ctx.media();
            let m = media.entry(self.stream.to_owned()).or_default();
            m.fragments.push(StoredFragment {
                number,
                producer_ms: timecode,
                server_ms: now_ms(),
                frames: c.frames,
                duration_ms: c.last_offset,
                // Without media kept (soaks), only what the fragment was.
                raw: if self.ctx.config.keep_media {
                    c.raw
                } else {
                    Vec::new()
                },
                header: m.header.clone(),
            });
        }
        Stats::bump(&self.ctx.stats.fragments);
        self.ctx.stored.send_modify(|n| *n += 1);
    }
}

fn next_number(ctx: &Ctx, stream: &str) -> String {
    ctx.media()
        .entry(stream.to_owned())
        .or_default()
        .next_number()
}
