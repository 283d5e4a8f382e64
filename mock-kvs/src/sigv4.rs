//! SigV4 verification as KVS does it: recompute the signature from the request and the
//! configured secret with `aws-sigv4`, and compare.

use std::time::{Duration, SystemTime};

use aws_credential_types::Credentials;
use aws_sigv4::http_request::{sign, SignableBody, SignableRequest, SigningSettings};
use aws_sigv4::sign::v4;

/// The parts of an `Authorization: AWS4-HMAC-SHA256 ...` header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Authorization {
    pub access_key_id: String,
    pub date: String,
    pub region: String,
    pub service: String,
    pub signed_headers: Vec<String>,
    pub signature: String,
}

/// Why a request is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AuthError {
    #[error("request is not signed (no Authorization header)")]
    Missing,
    #[error("malformed Authorization header: {0}")]
    Malformed(&'static str),
    #[error("unknown access key")]
    UnknownKey,
    #[error("credential scope is for service `{0}`, expected `{1}`")]
    WrongService(String, &'static str),
    #[error("the request time is missing or more than 15 minutes off")]
    Skewed,
    #[error("the security token is expired")]
    Expired,
    #[error("the request signature does not match")]
    Mismatch,
}

/// Parse an Authorization header value.
pub fn parse(value: &str) -> Result<Authorization, AuthError> {
    let rest = value
        .strip_prefix("AWS4-HMAC-SHA256")
        .ok_or(AuthError::Malformed("not AWS4-HMAC-SHA256"))?;
    let (mut credential, mut signed, mut signature) = (None, None, None);
    for part in rest.split(',') {
        let part = part.trim();
        if let Some(v) = part.strip_prefix("Credential=") {
            credential = Some(v);
        } else if let Some(v) = part.strip_prefix("SignedHeaders=") {
            signed = Some(v);
        } else if let Some(v) = part.strip_prefix("Signature=") {
            signature = Some(v);
        }
    }
    let credential = credential.ok_or(AuthError::Malformed("no Credential"))?;
    let scope: Vec<&str> = credential.split('/').collect();
    let [key, date, region, service, "aws4_request"] = scope.as_slice() else {
        return Err(AuthError::Malformed("bad credential scope"));
    };
    Ok(Authorization {
        access_key_id: (*key).to_owned(),
        date: (*date).to_owned(),
        region: (*region).to_owned(),
        service: (*service).to_owned(),
        signed_headers: signed
            .ok_or(AuthError::Malformed("no SignedHeaders"))?
            .split(';')
            .map(str::to_owned)
            .collect(),
        signature: signature
            .ok_or(AuthError::Malformed("no Signature"))?
            .to_owned(),
    })
}

/// `20261130T071500Z` to a time.
pub fn parse_amz_date(s: &str) -> Option<SystemTime> {
    let fmt = time::macros::format_description!("[year][month][day]T[hour][minute][second]Z");
    time::PrimitiveDateTime::parse(s, &fmt)
        .ok()
        .map(|t| t.assume_utc().into())
}

/// What a request looks like to the verifier.
pub struct Signed<'a> {
    pub method: &'a str,
    /// Path and query, as sent.
    pub uri: &'a str,
    pub headers: &'a http::HeaderMap,
    /// The body's bytes, or `None` for a streamed body (signed as unsigned or empty payload).
    pub body: Option<&'a [u8]>,
}

/// Verify a request against the one key pair the mock accepts.
pub fn verify(
    req: &Signed<'_>,
    access_key_id: &str,
    secret: &str,
    service: &'static str,
    now: SystemTime,
    not_after: Option<SystemTime>,
) -> Result<(), AuthError> {
    let header = req
        .headers
        .get(http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .ok_or(AuthError::Missing)?;
    let auth = parse(header)?;
    if auth.access_key_id != access_key_id {
        return Err(AuthError::UnknownKey);
    }
    if auth.service != service {
        return Err(AuthError::WrongService(auth.service, service));
    }
    let amz_date = req
        .headers
        .get("x-amz-date")
        .and_then(|v| v.to_str().ok())
        .ok_or(AuthError::Skewed)?;
    let signed_at = parse_amz_date(amz_date).ok_or(AuthError::Skewed)?;
    let skew = now
        .duration_since(signed_at)
        .or_else(|e| Ok::<_, ()>(e.duration()))
        .unwrap_or_default();
    if skew > Duration::from_secs(15 * 60) {
        return Err(AuthError::Skewed);
    }
    if not_after.is_some_and(|t| now > t) {
        return Err(AuthError::Expired);
    }
    let token = req
        .headers
        .get("x-amz-security-token")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let identity = Credentials::new(access_key_id, secret, token, None, "mock-kvs").into();
    let mut headers = Vec::new();
    for name in &auth.signed_headers {
        let value = req
            .headers
            .get(name.as_str())
            .and_then(|v| v.to_str().ok())
            .ok_or(AuthError::Malformed("a signed header is missing"))?;
        headers.push((name.as_str(), value));
    }
    let bodies: Vec<SignableBody<'_>> = match req.body {
        Some(b) => vec![SignableBody::Bytes(b)],
        None => vec![SignableBody::UnsignedPayload, SignableBody::Bytes(&[])],
    };
    for body in bodies {
        let mut settings = SigningSettings::default();
        // Only the headers the client signed take part; the signer adds none of its own.
        settings.excluded_headers = None;
        let params = v4::SigningParams::builder()
            .identity(&identity)
            .region(&auth.region)
            .name(service)
            .time(signed_at)
            .settings(settings)
            .build()
            .map_err(|_| AuthError::Malformed("cannot build signing parameters"))?
            .into();
        let signable = SignableRequest::new(req.method, req.uri, headers.iter().copied(), body)
            .map_err(|_| AuthError::Malformed("the request cannot be canonicalised"))?;
        let signature = sign(signable, &params)
            .map_err(|_| AuthError::Mismatch)?
            .signature()
            .to_owned();
        if constant_time_eq(signature.as_bytes(), auth.signature.as_bytes()) {
            return Ok(());
        }
    }
    Err(AuthError::Mismatch)
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn authorization_headers_parse_and_bad_ones_are_refused() {
        let a = parse("AWS4-HMAC-SHA256 Credential=AKID/20261130/us-west-2/kinesisvideo/aws4_request, SignedHeaders=host;x-amz-date, Signature=abc123").unwrap();
        assert_eq!(a.access_key_id, "AKID");
        assert_eq!(a.region, "us-west-2");
        assert_eq!(a.signed_headers, vec!["host", "x-amz-date"]);
        assert!(parse("Basic dXNlcjpwYXNz").is_err());
        assert!(parse(
            "AWS4-HMAC-SHA256 Credential=AKID/20261130/us-west-2, SignedHeaders=host, Signature=a"
        )
        .is_err());
        assert_eq!(
            parse_amz_date("20261130T071500Z"),
            Some(SystemTime::UNIX_EPOCH + Duration::from_secs(1_796_022_900))
        );
    }
}
