//! The KVS Producer SDK's `kvssink` element, used where it is installed.
//!
//! Configured by typed properties, never by a launch string (which would carry the keys into
//! logs and process listings). Where the plugin is absent, the error points to the native sink.

use std::path::PathBuf;

use super::make;
use crate::credentials::CredentialsFile;
use crate::error::TelescopeError;

/// How kvssink gets its credentials.
#[derive(Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum KvssinkCredentials {
    /// A credentials file (see [`CredentialsFile`]), re-read by kvssink as it is rewritten.
    File(PathBuf),
    /// Keys set as element properties.
    Keys {
        access_key_id: String,
        secret_access_key: String,
        session_token: Option<String>,
    },
}

impl std::fmt::Debug for KvssinkCredentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            KvssinkCredentials::File(p) => f.debug_tuple("File").field(p).finish(),
            KvssinkCredentials::Keys { access_key_id, .. } => f
                .debug_struct("Keys")
                .field(
                    "access_key_id",
                    &crate::credentials::redact_key_id(access_key_id),
                )
                .finish_non_exhaustive(),
        }
    }
}

/// A stream written through kvssink.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KvssinkConfig {
    /// The KVS stream name.
    pub stream_name: String,
    /// AWS region.
    pub region: String,
    /// Credentials.
    pub credentials: KvssinkCredentials,
}

/// Whether the `kvssink` element is installed.
pub fn kvssink_available() -> bool {
    crate::init().is_ok() && gst::ElementFactory::find("kvssink").is_some()
}

const ABSENT: &str =
    "kvssink (the KVS Producer SDK plugin) is not installed; use the native KVS sink \
(kvs://STREAM), which needs no plugin, or build the Producer SDK and set GST_PLUGIN_PATH";

impl KvssinkConfig {
    pub(crate) fn preflight(&self) -> Result<(), TelescopeError> {
        if !kvssink_available() {
            return Err(TelescopeError::MissingElement {
                element: "kvssink",
                hint: ABSENT,
            });
        }
        if let KvssinkCredentials::File(path) = &self.credentials {
            CredentialsFile::new(path)
                .read()
                .map_err(|e| TelescopeError::Config(e.to_string()))?;
        }
        Ok(())
    }

    pub(crate) fn build(
        &self,
        pipeline: &gst::Pipeline,
        index: usize,
    ) -> Result<gst::Element, TelescopeError> {
        let sink = make("kvssink", ABSENT)?;
        let set = |name: &str, value: &str| crate::encoder::set_from_str(&sink, name, value);
        set("stream-name", &self.stream_name)?;
        set("aws-region", &self.region)?;
        match &self.credentials {
            KvssinkCredentials::File(path) => set("credential-path", &path.to_string_lossy())?,
            KvssinkCredentials::Keys {
                access_key_id,
                secret_access_key,
                session_token,
            } => {
                set("access-key", access_key_id)?;
                set("secret-key", secret_access_key)?;
                if let Some(token) = session_token {
                    set("session-token", token)?;
                }
            }
        }
        let (queue, _) = super::h264_branch(pipeline, index, &super::h264_caps("avc"), &sink)?;
        tracing::info!(stream = %self.stream_name, region = %self.region, "kvssink");
        Ok(queue)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_absent_plugin_points_to_the_native_sink_and_keys_stay_hidden() {
        let config = KvssinkConfig {
            stream_name: "lobby".into(),
            region: "us-west-2".into(),
            credentials: KvssinkCredentials::Keys {
                access_key_id: "AKIAABCDEFGHIJKL".into(),
                secret_access_key: "very-secret".into(),
                session_token: None,
            },
        };
        assert!(!format!("{config:?}").contains("very-secret"));
        if kvssink_available() {
            let pipeline = gst::Pipeline::new();
            assert!(config.build(&pipeline, 0).is_ok());
        } else {
            let err = config.preflight().unwrap_err().to_string();
            assert!(err.contains("native KVS sink"), "{err}");
        }
    }
}
