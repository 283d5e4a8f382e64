//! Turning `--sink` arguments into sinks: files directly, `rtsp://` URLs as mounts on
//! in-process RTSP servers (one server per host:port).

use std::collections::HashMap;

use anyhow::{bail, Context, Result};
use telescope::{BasicAuth, RtspServer, RtspServerConfig, SinkConfig};

/// An `rtsp://HOST[:PORT]/PATH` sink specification.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RtspSpec {
    pub host: String,
    pub port: u16,
    pub path: String,
}

/// Parse `rtsp://HOST[:PORT]/PATH` (IPv6 hosts in brackets); the default port is 8554.
pub fn parse_rtsp(spec: &str) -> Result<RtspSpec> {
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

/// Sinks built from the command line, with the servers they need kept alive.
pub struct Sinks {
    pub configs: Vec<SinkConfig>,
    pub servers: Vec<RtspServer>,
}

/// Build every `--sink`; `{camera}` in a spec expands to `camera`.
pub fn build(specs: &[String], auth: Option<BasicAuth>, camera: &str) -> Result<Sinks> {
    let mut servers: HashMap<(String, u16), RtspServer> = HashMap::new();
    let mut configs = Vec::new();
    for raw in specs {
        let spec = raw.replace("{camera}", camera);
        if spec.starts_with("rtsp://") {
            let rtsp = parse_rtsp(&spec)?;
            let key = (rtsp.host.clone(), rtsp.port);
            let server = match servers.get(&key) {
                Some(s) => s.clone(),
                None => {
                    let config = RtspServerConfig {
                        address: rtsp.host.clone(),
                        port: rtsp.port,
                        auth: auth.clone(),
                    };
                    let server = RtspServer::start(config)
                        .with_context(|| format!("cannot serve {spec}"))?;
                    servers.insert(key, server.clone());
                    server
                }
            };
            let mount = server
                .mount(&rtsp.path)
                .with_context(|| format!("cannot serve {spec}"))?;
            configs.push(SinkConfig::rtsp(mount));
        } else {
            configs.push(
                spec.parse::<SinkConfig>()
                    .with_context(|| format!("bad --sink `{raw}`"))?,
            );
        }
    }
    Ok(Sinks {
        configs,
        servers: servers.into_values().collect(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rtsp_urls_parse_with_defaults_and_reject_credentials() {
        let s = parse_rtsp("rtsp://0.0.0.0/cam").unwrap();
        assert_eq!(
            s,
            RtspSpec {
                host: "0.0.0.0".into(),
                port: 8554,
                path: "/cam".into()
            }
        );
        let s = parse_rtsp("rtsp://[::1]:9000/a/b/").unwrap();
        assert_eq!(
            (s.host.as_str(), s.port, s.path.as_str()),
            ("::1", 9000, "/a/b")
        );
        assert!(parse_rtsp("rtsp://u:p@host/cam").is_err());
        assert!(parse_rtsp("rtsp://host:http/cam").is_err());
        assert!(parse_rtsp("rtsp:///cam").is_err());
    }
}
