//! Turning `--sink` arguments into sinks: files directly, `rtsp://` URLs as mounts on
//! in-process RTSP servers (one server per host:port).

use std::collections::HashMap;

use anyhow::{bail, Context, Result};
use telescope::credentials::CredentialSource;
use telescope::kvs::{CreateStreamOptions, KvsConfig};
use telescope::sink::{KvsSink, KvsSinkConfig};
use telescope::{BasicAuth, RtspServer, RtspServerConfig, SinkConfig};

/// A `kvs://STREAM[?endpoint=URL&region=R]` sink specification.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KvsSpec {
    pub stream: String,
    pub endpoint: Option<String>,
    pub region: Option<String>,
}

impl std::str::FromStr for KvsSpec {
    type Err = anyhow::Error;

    fn from_str(spec: &str) -> Result<Self> {
        parse_kvs(spec)
    }
}

/// Parse `kvs://STREAM[?endpoint=URL&region=R]`.
fn parse_kvs(spec: &str) -> Result<KvsSpec> {
    let rest = spec
        .strip_prefix("kvs://")
        .with_context(|| format!("`{spec}` is not a kvs:// sink"))?;
    let (stream, query) = rest.split_once('?').unwrap_or((rest, ""));
    let stream = stream.trim_end_matches('/');
    if stream.is_empty() {
        bail!("`{spec}` names no stream (kvs://STREAM)");
    }
    let mut parsed = KvsSpec {
        stream: stream.to_owned(),
        endpoint: None,
        region: None,
    };
    for pair in query.split('&').filter(|p| !p.is_empty()) {
        match pair.split_once('=') {
            Some(("endpoint", v)) if !v.is_empty() => parsed.endpoint = Some(v.to_owned()),
            Some(("region", v)) => parsed.region = Some(v.to_owned()),
            _ => bail!("`{spec}`: unknown parameter `{pair}` (use endpoint=URL, region=R)"),
        }
    }
    Ok(parsed)
}

/// An `rtsp://HOST[:PORT]/PATH` sink specification.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RtspSpec {
    pub host: String,
    pub port: u16,
    pub path: String,
}

impl std::str::FromStr for RtspSpec {
    type Err = anyhow::Error;

    fn from_str(spec: &str) -> Result<Self> {
        parse_rtsp(spec)
    }
}

/// Parse `rtsp://HOST[:PORT]/PATH` (IPv6 hosts in brackets); the default port is 8554.
fn parse_rtsp(spec: &str) -> Result<RtspSpec> {
    let rest = spec
        .strip_prefix("rtsp://")
        .with_context(|| format!("`{spec}` is not an rtsp:// URL"))?;
    let (authority, path) = rest.split_once('/').unwrap_or((rest, ""));
    if authority.contains('@') {
        bail!("`{spec}`: put credentials in --rtsp-user/--rtsp-pass, not in the URL");
    }
    let (host, port) = if let Some(v6) = authority.strip_prefix('[') {
        let (h, p) = v6
            .split_once(']')
            .with_context(|| format!("`{spec}`: unclosed [ in the host"))?;
        (h.to_owned(), p.strip_prefix(':'))
    } else {
        match authority.split_once(':') {
            Some((h, p)) => (h.to_owned(), Some(p)),
            None => (authority.to_owned(), None),
        }
    };
    if host.is_empty() {
        bail!("`{spec}` names no host (use 0.0.0.0 to serve on every interface)");
    }
    let port = match port {
        Some(p) => p
            .parse::<u16>()
            .with_context(|| format!("`{spec}`: `{p}` is not a port"))?,
        None => RtspServerConfig::default().port,
    };
    Ok(RtspSpec {
        host,
        port,
        path: format!("/{}", path.trim_matches('/')),
    })
}

/// Builds sinks from the command line. Cameras share RTSP servers: one per host:port, one
/// mount per camera.
#[derive(Default)]
pub struct Sinks {
    auth: Option<BasicAuth>,
    options: KvsOptions,
    by_address: HashMap<(String, u16), RtspServer>,
}

/// One camera's sinks, and the KVS sinks and RTSP servers among them (for their counters).
pub struct CameraSinks {
    pub configs: Vec<SinkConfig>,
    pub kvs: Vec<KvsSink>,
    pub rtsp: Vec<RtspServer>,
}

/// Options for `kvs://` sinks.
#[derive(Debug, Clone, Default)]
pub struct KvsOptions {
    /// Create missing streams.
    pub create: bool,
    /// Credentials instead of the AWS default chain.
    pub credentials: Option<CredentialSource>,
}

impl Sinks {
    /// No sinks yet; RTSP servers started later require `auth` when given.
    pub fn new(auth: Option<BasicAuth>, options: KvsOptions) -> Self {
        Sinks {
            auth,
            options,
            ..Sinks::default()
        }
    }

    /// Build every `--sink` for one camera; `{camera}` in a spec expands to its name.
    pub fn build(&mut self, specs: &[String], camera: &str) -> Result<CameraSinks> {
        let mut built = CameraSinks {
            configs: Vec::new(),
            kvs: Vec::new(),
            rtsp: Vec::new(),
        };
        for raw in specs {
            let spec = raw.replace("{camera}", camera);
            if spec.starts_with("rtsp://") {
                let (mount, server) = self.rtsp(&spec)?;
                built.configs.push(mount);
                built.rtsp.push(server);
            } else if spec.starts_with("kvs://") {
                let sink = self.kvs(&spec)?;
                built.kvs.push(sink.clone());
                built.configs.push(SinkConfig::Kvs(sink));
            } else {
                built.configs.push(
                    spec.parse::<SinkConfig>()
                        .with_context(|| format!("bad --sink `{raw}`"))?,
                );
            }
        }
        Ok(built)
    }

    /// A mount on the server for the URL's host and port, started the first time.
    fn rtsp(&mut self, spec: &str) -> Result<(SinkConfig, RtspServer)> {
        let rtsp: RtspSpec = spec.parse()?;
        let key = (rtsp.host.clone(), rtsp.port);
        let server = match self.by_address.get(&key) {
            Some(s) => s.clone(),
            None => {
                let config = RtspServerConfig {
                    address: rtsp.host.clone(),
                    port: rtsp.port,
                    auth: self.auth.clone(),
                };
                let server =
                    RtspServer::start(config).with_context(|| format!("cannot serve {spec}"))?;
                self.by_address.insert(key, server.clone());
                server
            }
        };
        let mount = server
            .mount(&rtsp.path)
            .with_context(|| format!("cannot serve {spec}"))?;
        Ok((SinkConfig::rtsp(mount), server))
    }

    /// A connected KVS sink: its stream checked (or created with --create-stream).
    fn kvs(&self, spec: &str) -> Result<KvsSink> {
        let k: KvsSpec = spec.parse()?;
        let region = k
            .region
            .or_else(|| std::env::var("AWS_REGION").ok())
            .or_else(|| std::env::var("AWS_DEFAULT_REGION").ok())
            .with_context(|| format!("`{spec}`: no region (add ?region=R or set AWS_REGION)"))?;
        let credentials = self
            .options
            .credentials
            .clone()
            .unwrap_or(CredentialSource::DefaultChain);
        let kvs = KvsConfig {
            region,
            endpoint: k.endpoint,
            credentials,
        };
        let mut config = KvsSinkConfig::new(&k.stream, kvs);
        if self.options.create {
            config.create = Some(CreateStreamOptions::default());
        }
        let missing = |e: &telescope::TelescopeError| {
            matches!(
                e,
                telescope::TelescopeError::Kvs(telescope::kvs::KvsError::StreamNotFound { .. })
            )
        };
        KvsSink::connect(config).map_err(|e| {
            // The library names the concept; the command line names its flag.
            let hint = if missing(&e) && !self.options.create {
                " (--create-stream creates missing streams)"
            } else {
                ""
            };
            anyhow::Error::new(e).context(format!("cannot stream to {spec}{hint}"))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rtsp(s: &str) -> Result<RtspSpec> {
        s.parse()
    }

    fn kvs(s: &str) -> Result<KvsSpec> {
        s.parse()
    }

    #[test]
    fn rtsp_urls_parse_with_defaults_and_reject_credentials() {
        let s = rtsp("rtsp://0.0.0.0/cam").unwrap();
        assert_eq!(
            s,
            RtspSpec {
                host: "0.0.0.0".into(),
                port: 8554,
                path: "/cam".into()
            }
        );
        let s = rtsp("rtsp://[::1]:9000/a/b/").unwrap();
        assert_eq!(
            (s.host.as_str(), s.port, s.path.as_str()),
            ("::1", 9000, "/a/b")
        );
        assert!(rtsp("rtsp://u:p@host/cam").is_err());
        assert!(rtsp("rtsp://host:http/cam").is_err());
        assert!(rtsp("rtsp:///cam").is_err());
    }

    #[test]
    fn kvs_sinks_parse_with_optional_endpoint_and_region() {
        let k = kvs("kvs://lobby?endpoint=http://127.0.0.1:4566&region=eu-west-1").unwrap();
        assert_eq!(
            k,
            KvsSpec {
                stream: "lobby".into(),
                endpoint: Some("http://127.0.0.1:4566".into()),
                region: Some("eu-west-1".into())
            }
        );
        assert_eq!(kvs("kvs://lobby").unwrap().endpoint, None);
        assert!(kvs("kvs://").is_err());
        assert!(kvs("kvs://a?bogus=1").is_err());
        assert!(
            kvs("kvs://a?endpoint=").is_err(),
            "an empty endpoint is not AWS by default"
        );
    }
}
