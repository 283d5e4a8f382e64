//! Archived-media playback: GetHLSStreamingSessionURL, GetDASHStreamingSessionURL, GetClip and
//! GetImages, and the session endpoints their URLs lead to (`/hls/v1/…`, `/dash/v1/…`), all
//! re-packaging the stored Matroska fragments without re-encoding them.
//!
//! Request and response shapes are botocore's `kinesis-video-archived-media` model
//! (service-2.json, API version 2017-09-30); the session endpoint names are the service's
//! (`getHLSMasterPlaylist.m3u8`, `getHLSMediaPlaylist.m3u8`, `getMP4InitFragment.mp4`,
//! `getMP4MediaFragment.mp4`, `getTSFragment.ts`, `getDASHManifest.mpd`).

use std::collections::HashMap;
use std::sync::Arc;

use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body_util::BodyExt;
use hyper::body::Incoming;
use serde_json::Value;

pub mod clip;
pub mod dash;
pub mod gst;
pub mod hls;
pub mod images;
pub mod matroska;
pub mod mp4;
pub mod request;
pub mod session;
pub mod ts;

pub use session::Session;

use crate::{error, respond, ApiError, Body, Ctx};
use session::Protocol;

/// The archived-media operations of a POST to `path`, `None` when it is not one of them.
/// `base` is the URL the client reached this server at (session URLs start with it).
pub(crate) async fn api(
    ctx: &Arc<Ctx>,
    path: &str,
    input: &Value,
    base: &str,
) -> Option<Response<Body>> {
    Some(match path {
        "/getHLSStreamingSessionURL" => respond(session::create(ctx, input, Protocol::Hls, base)),
        "/getDASHStreamingSessionURL" => respond(session::create(ctx, input, Protocol::Dash, base)),
        "/getClip" => clip::get_clip(ctx.clone(), input.clone()).await,
        "/getImages" => respond(images::get_images(ctx.clone(), input.clone()).await),
        _ => return None,
    })
}

/// Whether a request path is a session endpoint.
pub(crate) fn is_session_path(path: &str) -> bool {
    path.starts_with("/hls/v1/") || path.starts_with("/dash/v1/")
}

fn query(req: &Request<Incoming>) -> HashMap<String, String> {
    req.uri()
        .query()
        .unwrap_or("")
        .split('&')
        .filter_map(|kv| kv.split_once('='))
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect()
}

fn refused() -> ApiError {
    // "Status Code: 403, The caller is not authorized to perform an operation on the given
    // stream, or the token has expired" (NotAuthorizedException).
    error(
        StatusCode::FORBIDDEN,
        "NotAuthorizedException",
        "The session token is not valid or has expired",
    )
}

/// A 200 with `body` of `content_type`; session resources may be fetched from any page, as a
/// browser player on another origin fetches the service's.
fn ok(content_type: &str, body: Vec<u8>) -> Response<Body> {
    Response::builder()
        .status(StatusCode::OK)
        .header("content-type", content_type)
        .header("access-control-allow-origin", "*")
        .header("cache-control", "no-cache")
        .body(http_body_util::Full::new(Bytes::from(body)).boxed())
        .unwrap_or_else(|_| respond(Err(refused())))
}

/// A GET of a session endpoint.
pub(crate) async fn session_request(req: Request<Incoming>, ctx: Arc<Ctx>) -> Response<Body> {
    let q = query(&req);
    let path = req.uri().path().to_owned();
    let Some((prefix, name)) = path.rsplit_once('/') else {
        return respond(Err(refused()));
    };
    let given = q.get("SessionToken").map(String::as_str).unwrap_or("");
    let Some((token, session)) = session::find(&ctx, given) else {
        return respond(Err(refused()));
    };
    let token = token.as_str();
    let expected = match session.protocol {
        Protocol::Hls => "/hls/v1",
        Protocol::Dash => "/dash/v1",
    };
    if prefix != expected {
        return respond(Err(refused()));
    }
    // What the playlists and the manifest list now (fragment requests do not need it).
    let listed = || {
        let media = ctx.media();
        let stored = media
            .get(&session.stream)
            .map_or(&[][..], |m| &m.fragments[..]);
        session.window(stored)
    };
    match name {
        "getHLSMasterPlaylist.m3u8" if session.protocol == Protocol::Hls => ok(
            "application/vnd.apple.mpegurl",
            hls::master_playlist(&session, token, &listed()).into_bytes(),
        ),
        "getHLSMediaPlaylist.m3u8" if session.protocol == Protocol::Hls => ok(
            "application/vnd.apple.mpegurl",
            hls::media_playlist(&session, token, &listed()).into_bytes(),
        ),
        "getDASHManifest.mpd" if session.protocol == Protocol::Dash => ok(
            "application/dash+xml",
            dash::manifest(&session, token, &listed()).into_bytes(),
        ),
        "getMP4InitFragment.mp4" if !session.mpeg_ts => {
            let sequence = q.get("SequenceNumber").and_then(|n| n.parse().ok());
            match init_track(&ctx, &session, sequence.unwrap_or(0)) {
                Ok(track) => ok("video/mp4", mp4::init_segment(&track)),
                Err(e) => respond(Err(e)),
            }
        }
        "getMP4MediaFragment.mp4" | "getTSFragment.ts" => {
            let number = q.get("FragmentNumber").cloned().unwrap_or_default();
            let ts = name.ends_with(".ts");
            if ts != session.mpeg_ts {
                return respond(Err(not_in_session(&number)));
            }
            match fragment(&ctx, &session, &number).await {
                Ok(body) => ok(if ts { "video/mp2t" } else { "video/mp4" }, body),
                Err(e) => respond(Err(e)),
            }
        }
        _ => respond(Err(error(
            StatusCode::NOT_FOUND,
            "UnknownOperationException",
            format!("no session resource {name}"),
        ))),
    }
}

/// The track of init fragment `sequence`: that of the first fragment playing with it.
fn init_track(ctx: &Ctx, session: &Session, sequence: usize) -> Result<session::Track, ApiError> {
    let media = ctx.media();
    let all = media
        .get(&session.stream)
        .map_or(&[][..], |m| &m.fragments[..]);
    let candidates = session.candidates(all);
    let inits = session::inits(&candidates);
    match inits.iter().position(|n| *n == sequence) {
        Some(i) => matroska::playable_track(&candidates[i].header).map_err(session::media_error),
        None if sequence == 0 => Ok(session.track.clone()),
        None => Err(error(
            StatusCode::NOT_FOUND,
            "ResourceNotFoundException",
            format!("No init fragment {sequence} in this session"),
        )),
    }
}

fn not_in_session(number: &str) -> ApiError {
    error(
        StatusCode::NOT_FOUND,
        "ResourceNotFoundException",
        format!("Fragment {number} is not part of this session"),
    )
}

/// One media fragment of a session, as fMP4 or TS.
async fn fragment(ctx: &Ctx, session: &Session, number: &str) -> Result<Vec<u8>, ApiError> {
    let (stored, sequence, next_ms, origin_ms) = {
        let media = ctx.media();
        let all = media
            .get(&session.stream)
            .map_or(&[][..], |m| &m.fragments[..]);
        let candidates = session.candidates(all);
        let i = candidates
            .iter()
            .position(|f| f.number == number)
            .ok_or_else(|| not_in_session(number))?;
        let f = candidates[i];
        // The next fragment's start ends this one's last frame when they join up.
        let next_ms = candidates
            .get(i + 1)
            .map(|n| n.producer_ms)
            .filter(|n| *n <= f.producer_ms + f.extent_ms() + 1000)
            .map(|n| n as i64);
        let origin = candidates.first().map_or(0, |c| c.producer_ms as i64) - 10_000;
        ((*f).clone(), i as u32 + 1, next_ms, origin)
    };
    // Each fragment plays with its own header's track (its codec private data may differ
    // from the session's first).
    let track = matroska::playable_track(&stored.header).unwrap_or_else(|_| session.track.clone());
    if !session.mpeg_ts {
        let frames = matroska::frames(&stored, &track).map_err(session::media_error)?;
        return Ok(mp4::media_segment(sequence, &frames, next_ms));
    }
    let built = tokio::task::spawn_blocking(move || {
        let frames = matroska::frames(&stored, &track).map_err(session::media_error)?;
        ts::ts_segment(&track, &frames, origin_ms).map_err(|e| {
            error(
                StatusCode::INTERNAL_SERVER_ERROR,
                "InternalFailure",
                e.to_string(),
            )
        })
    })
    .await;
    built.unwrap_or_else(|_| {
        Err(error(
            StatusCode::INTERNAL_SERVER_ERROR,
            "InternalFailure",
            "TS worker failed",
        ))
    })
}
