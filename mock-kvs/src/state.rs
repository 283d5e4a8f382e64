//! The streams a mock-kvs knows, optionally persisted to a directory.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use telescope_kvs::clock::{SystemWallClock, WallClock};

use serde::{Deserialize, Serialize};

/// One stream, in the shape DescribeStream returns.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Stream {
    pub name: String,
    pub arn: String,
    pub device_name: Option<String>,
    pub media_type: Option<String>,
    pub kms_key_id: String,
    pub version: String,
    pub status: String,
    pub creation_time: f64,
    pub retention_hours: i64,
    pub tags: BTreeMap<String, String>,
}

impl Stream {
    /// The `StreamInfo` JSON object.
    pub fn info(&self) -> serde_json::Value {
        serde_json::json!({
            "DeviceName": self.device_name,
            "StreamName": self.name,
            "StreamARN": self.arn,
            "MediaType": self.media_type,
            "KmsKeyId": self.kms_key_id,
            "Version": self.version,
            "Status": self.status,
            "CreationTime": self.creation_time,
            "DataRetentionInHours": self.retention_hours,
        })
    }
}

/// All streams, keyed by name.
#[derive(Debug, Default, Serialize, Deserialize)]
pub struct Streams {
    pub streams: BTreeMap<String, Stream>,
    #[serde(skip)]
    store: Option<PathBuf>,
    counter: u64,
}

impl Streams {
    /// Load from `store` (if given and present), else empty.
    pub fn open(store: Option<&Path>) -> std::io::Result<Streams> {
        let mut s = match store {
            Some(dir) => {
                std::fs::create_dir_all(dir)?;
                match std::fs::read(dir.join("streams.json")) {
                    Ok(bytes) => serde_json::from_slice(&bytes).map_err(std::io::Error::other)?,
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => Streams::default(),
                    Err(e) => return Err(e),
                }
            }
            None => Streams::default(),
        };
        s.store = store.map(Path::to_path_buf);
        Ok(s)
    }

    /// Persist (atomically) when a store directory is set.
    pub fn save(&self) -> std::io::Result<()> {
        let Some(dir) = &self.store else {
            return Ok(());
        };
        let tmp = dir.join(".streams.json.tmp");
        std::fs::write(
            &tmp,
            serde_json::to_vec_pretty(self).map_err(std::io::Error::other)?,
        )?;
        std::fs::rename(tmp, dir.join("streams.json"))
    }

    /// A new stream with a fresh ARN and version.
    pub fn create(
        &mut self,
        name: &str,
        region: &str,
        media_type: Option<String>,
        retention_hours: i64,
        device_name: Option<String>,
        tags: BTreeMap<String, String>,
    ) -> Stream {
        self.counter += 1;
        let now = Duration::from_millis(SystemWallClock.unix_ms());
        let stream = Stream {
            name: name.to_owned(),
            arn: format!(
                "arn:aws:kinesisvideo:{region}:000000000000:stream/{name}/{}",
                now.as_millis()
            ),
            device_name,
            media_type,
            kms_key_id: format!("arn:aws:kms:{region}:000000000000:alias/aws/kinesisvideo"),
            version: format!("v{:06}", self.counter),
            status: "ACTIVE".into(),
            creation_time: now.as_secs_f64(),
            retention_hours,
            tags,
        };
        self.streams.insert(name.to_owned(), stream.clone());
        stream
    }

    /// Find by name or ARN.
    pub fn find(&self, name: Option<&str>, arn: Option<&str>) -> Option<&Stream> {
        match (name, arn) {
            (Some(n), _) => self.streams.get(n),
            (None, Some(a)) => self.streams.values().find(|s| s.arn == a),
            _ => None,
        }
    }

    /// Find by name or ARN, mutably.
    pub fn find_mut(&mut self, name: Option<&str>, arn: Option<&str>) -> Option<&mut Stream> {
        match (name, arn) {
            (Some(n), _) => self.streams.get_mut(n),
            (None, Some(a)) => self.streams.values_mut().find(|s| s.arn == a),
            _ => None,
        }
    }

    /// Bump a stream's version after a change.
    pub fn next_version(&mut self) -> String {
        self.counter += 1;
        format!("v{:06}", self.counter)
    }
}
