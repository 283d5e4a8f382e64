//! The web viewer at the server's root: a page listing the streams and playing any of them
//! through the HLS session API (live, or from a time), with fragment timestamps, a thumbnail
//! strip from GetImages and a clip download from GetClip. `ROOT/?stream=NAME` opens a stream's
//! player directly.
//!
//! The player is hls.js 1.7.4 (`dist/hls.light.min.js` of the npm package `hls.js@1.7.4`,
//! Apache-2.0, its LICENSE beside it in `assets/`), built into the binary: nothing is fetched
//! from elsewhere at run time.

use bytes::Bytes;
use http::{Response, StatusCode};
use http_body_util::BodyExt;

use crate::Body;

const PAGE: &str = include_str!("../assets/viewer.html");
const HLS_JS: &[u8] = include_bytes!("../assets/hls.light.min.js");
const HLS_JS_LICENSE: &str = include_str!("../assets/hls.js-LICENSE");

/// The viewer's resource at `path` for a GET, if it is one.
pub(crate) fn resource(path: &str) -> Option<Response<Body>> {
    let (content_type, body): (&str, Bytes) = match path {
        "/" | "/index.html" => (
            "text/html; charset=utf-8",
            Bytes::from_static(PAGE.as_bytes()),
        ),
        "/assets/hls.light.min.js" => ("text/javascript", Bytes::from_static(HLS_JS)),
        "/assets/hls.js-LICENSE" => (
            "text/plain; charset=utf-8",
            Bytes::from_static(HLS_JS_LICENSE.as_bytes()),
        ),
        _ => return None,
    };
    Response::builder()
        .status(StatusCode::OK)
        .header("content-type", content_type)
        .body(http_body_util::Full::new(body).boxed())
        .ok()
}

/// The viewer URL of a stream on a server at `base` (e.g. `http://127.0.0.1:4566`).
pub fn stream_url(base: &str, stream: &str) -> String {
    let name: String = stream
        .bytes()
        .map(|b| match b {
            b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' | b'_' | b'.' | b'-' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect();
    format!("{}/?stream={name}", base.trim_end_matches('/'))
}
