//! The PutMedia request on the wire: the data endpoint, the connection (TCP, or TLS with the
//! system's roots), the SigV4-signed headers and the streamed body.

use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::SystemTime;

use bytes::Bytes;
use tokio::sync::mpsc;

use super::PutMediaConfig;

/// A streamed HTTP body: chunks from a channel, ending when the sender is dropped.
#[derive(Debug)]
pub struct ChannelBody(pub mpsc::Receiver<Bytes>);

impl http_body::Body for ChannelBody {
    type Data = Bytes;
    type Error = std::convert::Infallible;

    fn poll_frame(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<http_body::Frame<Bytes>, Self::Error>>> {
        self.0
            .poll_recv(cx)
            .map(|c| c.map(|b| Ok(http_body::Frame::data(b))))
    }
}

/// A parsed data endpoint.
pub(super) struct Target {
    tls: bool,
    host: String,
    port: u16,
    pub(super) authority: String,
}

pub(super) trait Io: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send {}
impl<T: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send> Io for T {}

impl Target {
    pub(super) fn parse(endpoint: &str) -> Result<Target, String> {
        let uri: http::Uri = endpoint
            .parse()
            .map_err(|_| format!("`{endpoint}` is not a URL"))?;
        let tls = match uri.scheme_str() {
            Some("https") => true,
            Some("http") => false,
            _ => {
                return Err(format!(
                    "`{endpoint}`: the data endpoint must be http:// or https://"
                ))
            }
        };
        let host = uri
            .host()
            .ok_or_else(|| format!("`{endpoint}` has no host"))?
            .trim_matches(['[', ']'])
            .to_owned();
        let port = uri.port_u16().unwrap_or(if tls { 443 } else { 80 });
        let authority = uri
            .authority()
            .map(|a| a.as_str().to_owned())
            .unwrap_or_else(|| host.clone());
        Ok(Target {
            tls,
            host,
            port,
            authority,
        })
    }

    pub(super) async fn connect(&self) -> std::io::Result<Box<dyn Io>> {
        let tcp = tokio::net::TcpStream::connect((self.host.as_str(), self.port)).await?;
        tcp.set_nodelay(true)?;
        if !self.tls {
            return Ok(Box::new(tcp));
        }
        let mut roots = rustls::RootCertStore::empty();
        for cert in rustls_native_certs::load_native_certs().certs {
            let _ = roots.add(cert);
        }
        let config = rustls::ClientConfig::builder_with_provider(Arc::new(
            rustls::crypto::aws_lc_rs::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .map_err(std::io::Error::other)?
        .with_root_certificates(roots)
        .with_no_client_auth();
        let name = rustls::pki_types::ServerName::try_from(self.host.clone())
            .map_err(std::io::Error::other)?;
        let tls = tokio_rustls::TlsConnector::from(Arc::new(config))
            .connect(name, tcp)
            .await?;
        Ok(Box::new(tls))
    }
}

/// The signed PutMedia request (the body is signed as an empty payload, as KVS expects for a
/// streamed body).
pub(super) fn sign_request(
    config: &PutMediaConfig,
    target: &Target,
    creds: &aws_credential_types::Credentials,
    first_timecode_ms: u64,
    at: SystemTime,
    body: ChannelBody,
) -> Result<http::Request<ChannelBody>, String> {
    let headers = signed_headers(
        &config.region,
        &config.stream_name,
        &target.authority,
        creds,
        first_timecode_ms,
        at,
    )?;
    let mut builder = http::Request::builder().method("POST").uri("/putMedia");
    for (name, value) in &headers {
        builder = builder.header(name.as_str(), value.as_str());
    }
    builder = builder
        .header("user-agent", "telescope-putmedia")
        .header("accept", "*/*");
    builder
        .body(body)
        .map_err(|e| format!("cannot build PutMedia request: {e}"))
}

/// Every header of a PutMedia request to `authority`, SigV4-signed at `at` (including
/// `authorization`, `x-amz-date` and, with temporary credentials, `x-amz-security-token`).
pub fn signed_headers(
    region: &str,
    stream_name: &str,
    authority: &str,
    creds: &aws_credential_types::Credentials,
    first_timecode_ms: u64,
    at: SystemTime,
) -> Result<Vec<(String, String)>, String> {
    use aws_sigv4::http_request::{sign, SignableBody, SignableRequest, SigningSettings};
    let start = format!(
        "{}.{:03}",
        first_timecode_ms / 1000,
        first_timecode_ms % 1000
    );
    let headers = [
        ("host", authority),
        ("x-amzn-stream-name", stream_name),
        ("x-amzn-fragment-timecode-type", "ABSOLUTE"),
        ("x-amzn-producer-start-timestamp", start.as_str()),
    ];
    let identity = creds.clone().into();
    let params = aws_sigv4::sign::v4::SigningParams::builder()
        .identity(&identity)
        .region(region)
        .name("kinesisvideo")
        .time(at)
        .settings(SigningSettings::default())
        .build()
        .map_err(|e| format!("cannot sign PutMedia: {e}"))?
        .into();
    let signable = SignableRequest::new(
        "POST",
        "/putMedia",
        headers.iter().copied(),
        SignableBody::Bytes(&[]),
    )
    .map_err(|e| format!("cannot sign PutMedia: {e}"))?;
    let (instructions, _) = sign(signable, &params)
        .map_err(|e| format!("cannot sign PutMedia: {e}"))?
        .into_parts();
    let mut out: Vec<(String, String)> = headers
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect();
    out.extend(
        instructions
            .headers()
            .map(|(k, v)| (k.to_owned(), v.to_owned())),
    );
    Ok(out)
}
