//! `report.json`: what a replay did, per camera, in a stable documented schema (README,
//! "Reports"). `schema_version` changes when a field changes meaning or disappears.

use std::collections::BTreeMap;
use std::path::Path;

use anyhow::{Context, Result};
use serde::{Deserialize, Serialize};

/// The current schema.
pub const SCHEMA_VERSION: u32 = 1;

/// Percentiles of a sample, in the unit of the field's name.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct Percentiles {
    pub count: u64,
    pub p50: f64,
    pub p90: f64,
    pub p99: f64,
    pub max: f64,
}

impl Percentiles {
    /// Nearest-rank percentiles of `values`, scaled by `scale` (e.g. 1e-3 for us -> ms).
    pub fn of(values: &[u64], scale: f64) -> Percentiles {
        if values.is_empty() {
            return Percentiles::default();
        }
        let mut v = values.to_vec();
        v.sort_unstable();
        let rank = |q: f64| {
            let i = ((q * v.len() as f64).ceil() as usize).clamp(1, v.len()) - 1;
            v[i] as f64 * scale
        };
        Percentiles {
            count: v.len() as u64,
            p50: rank(0.50),
            p90: rank(0.90),
            p99: rank(0.99),
            max: *v.last().unwrap_or(&0) as f64 * scale,
        }
    }
}

/// One KVS sink's delivery.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct KvsReport {
    pub stream: String,
    pub fragments: u64,
    pub sent: u64,
    pub received: u64,
    pub persisted: u64,
    pub resent: u64,
    pub evicted: u64,
    pub rejected: u64,
    pub connections: u64,
    pub errors: u64,
    pub bytes_sent: u64,
    pub ack_latency_ms_max: u64,
}

/// One camera: from the source to the sinks.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct CameraReport {
    pub name: String,
    pub source: String,
    /// Frames read from the source.
    pub frames_in: u64,
    /// Frames the camera model lost before the app.
    pub camera_lost: u64,
    /// Frames replaced by a newer one before the app looked (slow app).
    pub superseded: u64,
    /// Frames read but not yet due when a --duration ended the run (0 or 1).
    pub pending: u64,
    /// Frames the app received fresh and handed to Telescope.
    pub frames_put: u64,
    /// Frames Telescope pushed into its pipeline.
    pub frames_pushed: u64,
    /// Frames the encoder's constant-rate input emitted.
    pub frames_out: u64,
    pub frames_duplicated: u64,
    pub frames_rate_dropped: u64,
    /// Telescope's drops by reason (every reason, zero included).
    pub dropped: BTreeMap<String, u64>,
    /// Iterations in which the app got this camera's previous frame again.
    pub cached_iterations: u64,
    pub unavailable_iterations: u64,
    /// Fresh frames per second of node time.
    pub input_fps: f64,
    /// Time between fresh frames.
    pub input_interval_ms: Percentiles,
    /// Output frames per second of node time.
    pub output_fps: f64,
    /// Time `put` took, as the app's loop sees it.
    pub put_latency_us: Percentiles,
    pub rate: Option<String>,
    pub width: Option<u32>,
    pub height: Option<u32>,
    pub warmup_frames: Option<usize>,
    pub encoder: Option<String>,
    pub restarts: u64,
    pub last_error: Option<String>,
    pub kvs: Vec<KvsReport>,
    pub rtsp_clients: u64,
}

impl CameraReport {
    /// Frames that vanished: read but neither lost, superseded, pending, encoded nor dropped
    /// with a reason. 0 when everything is accounted for.
    pub fn unaccounted(&self) -> i64 {
        let dropped: u64 = self.dropped.values().sum();
        (self.frames_in as i64
            - (self.camera_lost + self.superseded + self.pending + self.frames_put) as i64)
            .abs()
            + (self.frames_put as i64 - (self.frames_pushed + dropped) as i64).abs()
    }
}

/// The whole run.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Report {
    pub schema_version: u32,
    pub command: String,
    pub seed: u64,
    pub virtual_clock: bool,
    /// Node time the run covered.
    pub duration_seconds: f64,
    pub wall_seconds: f64,
    pub iterations: u64,
    pub interrupted: bool,
    pub cameras: Vec<CameraReport>,
}

impl Report {
    /// Writes `DIR/report.json` (creating DIR).
    pub fn write(&self, dir: &Path) -> Result<()> {
        std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
        let path = dir.join("report.json");
        let tmp = dir.join(".report.json.tmp");
        std::fs::write(&tmp, serde_json::to_vec_pretty(self)?)
            .with_context(|| format!("cannot write {}", tmp.display()))?;
        std::fs::rename(&tmp, &path).with_context(|| format!("cannot write {}", path.display()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_use_nearest_rank() {
        let v: Vec<u64> = (1..=100).collect();
        let p = Percentiles::of(&v, 1.0);
        assert_eq!(
            (p.count, p.p50, p.p90, p.p99, p.max),
            (100, 50.0, 90.0, 99.0, 100.0)
        );
        assert_eq!(Percentiles::of(&[], 1.0), Percentiles::default());
        assert_eq!(Percentiles::of(&[7000], 1e-3).p50, 7.0);
    }
}
