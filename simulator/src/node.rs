//! A Panorama node: cameras in, an application callback in the shape of a Panorama app's loop,
//! streams out.
//!
//! Each iteration the app receives one [`MediaStream`] per camera (the newest frame each camera
//! delivered, or the previous one again, flagged `is_cached`), annotates them with
//! `add_label`/`add_rect` or draws on their images, and hands them back; the node then passes
//! them to an output (Telescope sinks, the tiled HDMI picture). Camera timing comes from each
//! camera's [`TimingModel`], the app's own processing time from [`AppTime`]; on a virtual clock
//! the whole run is deterministic for a seed and runs as fast as the machine allows.

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use rand_distr::{Distribution, Normal};
use telescope::annotation::opencv::FrameDriver;
use telescope::annotation::{
    Annotation, Color, DrawError, Driver, MediaCanvas, Point, Rect, Scene,
};
use telescope::{Frame, PixelFormat, VirtualClock};

use crate::source::{Source, SourceError, SourceSpec};
use crate::timing::{Delivery, TimingConfig, TimingModel};

/// One camera of the node.
#[derive(Debug, Clone)]
pub struct CameraConfig {
    /// The name apps and sinks see (`{camera}` in sink specs).
    pub name: String,
    /// What it shows.
    pub source: SourceSpec,
    /// Passes over the source (the timeline continues from one to the next); `None` loops
    /// until the run ends.
    pub passes: Option<u32>,
    /// Delivery timing; `None` delivers every frame at its own capture time.
    pub timing: Option<TimingConfig>,
}

/// How long the app's callback takes per iteration (simulated; its real time adds on a
/// system clock).
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub enum AppTime {
    /// Instant.
    #[default]
    None,
    /// Always this long.
    Fixed(Duration),
    /// Uniform between two bounds, in milliseconds.
    Uniform {
        /// Lower bound.
        min_ms: f64,
        /// Upper bound.
        max_ms: f64,
    },
    /// Normal, clipped at zero, in milliseconds.
    Normal {
        /// Mean.
        mean_ms: f64,
        /// Standard deviation.
        sd_ms: f64,
    },
}

/// An app time that is not `MEAN` or `MEAN:SD` (non-negative milliseconds).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("app time `{0}`: give MEAN or MEAN:SD, non-negative milliseconds")]
pub struct AppTimeError(String);

impl std::str::FromStr for AppTime {
    type Err = AppTimeError;

    /// `MEAN` milliseconds every iteration, or `MEAN:SD` for a normal distribution.
    fn from_str(spec: &str) -> Result<Self, Self::Err> {
        let ms = |s: &str| -> Result<f64, AppTimeError> {
            s.trim()
                .parse::<f64>()
                .ok()
                .filter(|v| v.is_finite() && *v >= 0.0)
                .ok_or_else(|| AppTimeError(spec.to_owned()))
        };
        Ok(match spec.split_once(':') {
            Some((mean, sd)) => AppTime::Normal {
                mean_ms: ms(mean)?,
                sd_ms: ms(sd)?,
            },
            None => AppTime::Fixed(Duration::from_secs_f64(ms(spec)? / 1000.0)),
        })
    }
}

/// Which clock drives the node.
#[derive(Debug, Clone)]
pub enum NodeClock {
    /// Real time: frames are handed over when the camera would deliver them.
    System,
    /// Simulated time, advanced by the node; share it with the Telescopes it feeds.
    Virtual(VirtualClock),
}

/// The node's configuration.
#[derive(Debug, Clone)]
pub struct NodeConfig {
    /// Cameras, in order.
    pub cameras: Vec<CameraConfig>,
    /// The app's processing time.
    pub app_time: AppTime,
    /// Seed of the app-time randomness (camera timing has its own seeds).
    pub seed: u64,
    /// Stop after this much simulated (or real) time; `None` runs until every source ends.
    pub duration: Option<Duration>,
    /// A camera with no new frame for this long is flagged `is_unavailable`.
    pub unavailable_after: Duration,
    /// The clock.
    pub clock: NodeClock,
}

impl Default for NodeConfig {
    fn default() -> Self {
        NodeConfig {
            cameras: Vec::new(),
            app_time: AppTime::None,
            seed: 0,
            duration: None,
            unavailable_after: Duration::from_secs(2),
            clock: NodeClock::Virtual(VirtualClock::new()),
        }
    }
}

/// A camera frame as a Panorama app sees it.
#[derive(Debug, Clone)]
pub struct MediaStream {
    /// The image (BGR); the app may draw on it.
    pub image: Frame,
    /// The camera's name.
    pub stream_id: String,
    /// When the frame was captured, on the node's timeline.
    pub time_stamp: Duration,
    /// The camera had no new frame: this is the previous one again.
    pub is_cached: bool,
    /// The camera delivered nothing for longer than `unavailable_after`.
    pub is_unavailable: bool,
    /// When the frame reached the node (capture time plus delivery delay).
    pub arrived: Duration,
    /// Index of the frame in its camera's delivery order.
    pub frame_index: u64,
    annotations: Scene,
}

impl MediaStream {
    /// A fresh stream of `stream_id` with this image, captured and arrived at `time_stamp`
    /// (what the node hands an app; also for testing apps on their own).
    pub fn new(stream_id: impl Into<String>, image: Frame, time_stamp: Duration) -> Self {
        MediaStream {
            image,
            stream_id: stream_id.into(),
            time_stamp,
            is_cached: false,
            is_unavailable: false,
            arrived: time_stamp,
            frame_index: 0,
            annotations: Scene::default(),
        }
    }

    /// What the app added with `add_label`/`add_rect`.
    pub fn annotations(&self) -> &Scene {
        &self.annotations
    }

    /// The image with the app's labels and rectangles drawn on it, as the appliance shows it.
    pub fn into_rendered(mut self) -> Result<Frame, DrawError> {
        if !self.annotations.annotations.is_empty() {
            FrameDriver::new(&mut self.image).draw(&self.annotations, None)?;
        }
        Ok(self.image)
    }
}

impl MediaCanvas for MediaStream {
    fn add_label(&mut self, text: &str, x: f64, y: f64) {
        self.annotations.annotations.push(Annotation::Label {
            text: text.to_owned(),
            at: Point(x, y),
            color: Color::rgb(255, 255, 255),
            size: 0.035,
            anchor: Default::default(),
            background: Some(Color::rgb(0, 0, 0).with_alpha(0.6)),
        });
    }

    fn add_rect(&mut self, x1: f64, y1: f64, x2: f64, y2: f64) {
        // The appliance draws whatever it is given; an inverted or non-finite rectangle is
        // normalized here rather than failing the whole frame's drawing.
        if ![x1, y1, x2, y2].iter().all(|v| v.is_finite()) {
            return;
        }
        self.annotations.annotations.push(Annotation::Rect {
            rect: Rect(x1.min(x2), y1.min(y2), x1.max(x2), y1.max(y2)),
            color: Color::rgb(0, 255, 0),
            thickness: 2,
            fill: false,
        });
    }
}

/// The application: called once per iteration with every camera's stream.
pub trait App {
    /// Process (and annotate) the streams.
    fn process(&mut self, streams: &mut [MediaStream]);
}

impl<F: FnMut(&mut [MediaStream])> App for F {
    fn process(&mut self, streams: &mut [MediaStream]) {
        self(streams)
    }
}

/// What happened to one camera's frames (serialized without the intervals).
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize)]
pub struct CameraStats {
    /// Camera name.
    pub name: String,
    /// Frames read from the source.
    pub frames_in: u64,
    /// Frames the camera timing model lost on the way.
    pub lost: u64,
    /// Frames that arrived but were replaced by a newer one before the app looked (the app
    /// was slower than the camera).
    pub superseded: u64,
    /// Frames the app received fresh.
    pub delivered: u64,
    /// Iterations in which the app got this camera's previous frame again.
    pub cached: u64,
    /// Iterations in which the camera was flagged unavailable.
    pub unavailable: u64,
    /// Times between consecutive fresh frames, in microseconds.
    #[serde(skip)]
    pub intervals_us: Vec<u64>,
    /// Frames read but not yet due when the run ended (0 or 1).
    pub pending: u64,
    /// Times the source started over.
    pub laps: u32,
}

impl CameraStats {
    /// Frames read and not accounted for as lost, superseded, delivered or pending: 0 unless
    /// something vanished.
    pub fn unaccounted(&self) -> i64 {
        self.frames_in as i64 - (self.lost + self.superseded + self.delivered + self.pending) as i64
    }
}

/// The outcome of a run (serialized with `elapsed` in seconds).
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize)]
pub struct NodeReport {
    /// Per camera, in configuration order.
    pub cameras: Vec<CameraStats>,
    /// App iterations.
    pub iterations: u64,
    /// Node time at the end.
    #[serde(serialize_with = "seconds")]
    pub elapsed: Duration,
    /// The run was stopped from outside.
    pub interrupted: bool,
}

fn seconds<S: serde::Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_f64(d.as_secs_f64())
}

/// Why the node stopped with an error.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum NodeError {
    /// A camera source failed.
    #[error("camera {camera}: {error}")]
    Source {
        camera: String,
        // Said in the message, so not also a `source`: one-line error chains name it once.
        error: SourceError,
    },
    /// The output refused the streams.
    #[error("output: {0}")]
    Output(String),
    /// The configuration is unusable.
    #[error("node configuration: {0}")]
    Config(String),
}

struct Pending {
    frame: Frame,
    captured: std::time::Duration,
    arrives: Duration,
    index: u64,
}

struct Camera {
    name: String,
    source: Source,
    model: Option<TimingModel>,
    pending: Option<Pending>,
    current: Option<Pending>,
    last_fresh: Option<Duration>,
    delivered_index: u64,
    stats: CameraStats,
}

impl Camera {
    /// Reads the next frame that survives the timing model into `pending`.
    fn fetch(&mut self) -> Result<(), NodeError> {
        self.pending = None;
        loop {
            let frame = self
                .source
                .next_frame()
                .map_err(|error| NodeError::Source {
                    camera: self.name.clone(),
                    error,
                })?;
            let Some(frame) = frame else {
                self.stats.laps = self.source.laps();
                return Ok(());
            };
            self.stats.frames_in += 1;
            let own = frame.captured_at().unwrap_or_default();
            let (captured, arrives) = match self.model.as_mut().map(TimingModel::next_frame) {
                None => (own, own),
                Some(Delivery::Lost { .. }) => {
                    self.stats.lost += 1;
                    continue;
                }
                Some(Delivery::Delivered {
                    captured, arrives, ..
                }) => (captured, arrives),
            };
            let index = self.delivered_index;
            self.delivered_index += 1;
            self.pending = Some(Pending {
                frame,
                captured,
                arrives,
                index,
            });
            return Ok(());
        }
    }
}

/// Where the app's streams go each iteration: node time and the streams, handed over.
pub type Output<'a> = dyn FnMut(Duration, Vec<MediaStream>) -> Result<(), NodeError> + 'a;

/// A running node.
pub struct Node {
    config: NodeConfig,
    cameras: Vec<Camera>,
    rng: StdRng,
}

impl std::fmt::Debug for Node {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Node")
            .field("cameras", &self.cameras.len())
            .finish()
    }
}

impl Node {
    /// Opens every camera's source (a bad one fails here, before anything runs).
    pub fn new(config: NodeConfig) -> Result<Self, NodeError> {
        if config.cameras.is_empty() {
            return Err(NodeError::Config("no cameras".into()));
        }
        let mut cameras = Vec::with_capacity(config.cameras.len());
        for c in &config.cameras {
            let source = Source::open(&c.source, c.passes).map_err(|error| NodeError::Source {
                camera: c.name.clone(),
                error,
            })?;
            cameras.push(Camera {
                name: c.name.clone(),
                model: c.timing.clone().map(TimingModel::new),
                source,
                pending: None,
                current: None,
                last_fresh: None,
                delivered_index: 0,
                stats: CameraStats {
                    name: c.name.clone(),
                    ..CameraStats::default()
                },
            });
        }
        Ok(Node {
            rng: StdRng::seed_from_u64(config.seed),
            config,
            cameras,
        })
    }

    /// The rate each camera's source declares.
    pub fn declared_rates(&self) -> Vec<Option<telescope::Rate>> {
        self.cameras
            .iter()
            .map(|c| c.source.declared_rate())
            .collect()
    }

    /// Replaces camera `index`'s timing model (for models that depend on what the open source
    /// declares). Nothing has been read yet: `run` reads the first frames.
    pub fn set_timing(
        &mut self,
        index: usize,
        timing: Option<TimingConfig>,
    ) -> Result<(), NodeError> {
        let camera = self
            .cameras
            .get_mut(index)
            .ok_or_else(|| NodeError::Config(format!("no camera {index}")))?;
        camera.model = timing.map(TimingModel::new);
        Ok(())
    }

    fn app_time(&mut self) -> Duration {
        let ms = match self.config.app_time {
            AppTime::None => 0.0,
            AppTime::Fixed(d) => return d,
            AppTime::Uniform { min_ms, max_ms } => {
                let (lo, hi) = (min_ms.max(0.0), max_ms.max(min_ms).max(0.0));
                self.rng.random_range(lo..=hi)
            }
            AppTime::Normal { mean_ms, sd_ms } => Normal::new(mean_ms, sd_ms.max(0.0))
                .map(|n| n.sample(&mut self.rng))
                .unwrap_or(mean_ms),
        };
        Duration::from_secs_f64(ms.max(0.0) / 1000.0)
    }

    /// Runs until every source ended, `duration` passed, or `stop` is set. `output` receives
    /// the node time and the streams the app returned.
    pub fn run(
        mut self,
        app: &mut dyn App,
        output: &mut Output<'_>,
        stop: &AtomicBool,
    ) -> Result<NodeReport, NodeError> {
        for camera in &mut self.cameras {
            camera.fetch()?;
        }
        let wall = Instant::now();
        let mut app_ready = Duration::ZERO;
        let mut iterations = 0u64;
        let mut now = Duration::ZERO;
        let mut interrupted = false;
        loop {
            if stop.load(Ordering::SeqCst) {
                interrupted = true;
                break;
            }
            // The next iteration: when a frame arrives and the app is ready for it.
            let Some(t) = self.next_arrival().map(|a| a.max(app_ready)) else {
                break;
            };
            if self.config.duration.is_some_and(|d| t >= d) {
                break;
            }
            now = t;
            self.wait_until(wall, t);
            let mut streams = self.streams_at(t)?;
            let started = Instant::now();
            app.process(&mut streams);
            let real_app = started.elapsed();
            output(t, streams)?;
            iterations += 1;
            let simulated = self.app_time();
            app_ready = match self.config.clock {
                NodeClock::Virtual(_) => t + simulated,
                NodeClock::System => (t + simulated + real_app).max(wall.elapsed()),
            };
        }
        for c in &mut self.cameras {
            c.stats.laps = c.source.laps();
            c.stats.pending = u64::from(c.pending.is_some());
        }
        Ok(NodeReport {
            cameras: self.cameras.into_iter().map(|c| c.stats).collect(),
            iterations,
            elapsed: now,
            interrupted,
        })
    }

    /// When the next frame of any camera arrives (`None` once every source has ended).
    fn next_arrival(&self) -> Option<Duration> {
        self.cameras
            .iter()
            .filter_map(|c| c.pending.as_ref().map(|p| p.arrives))
            .min()
    }

    /// Brings the clock to node time `t`: advances a virtual one, waits for a real one (`wall`
    /// is node time zero).
    fn wait_until(&self, wall: Instant, t: Duration) {
        match &self.config.clock {
            NodeClock::Virtual(clock) => clock.advance_to(t),
            NodeClock::System => {
                let due = wall + t;
                let real = Instant::now();
                if due > real {
                    std::thread::sleep(due - real);
                }
            }
        }
    }

    /// What each camera has for the app at `t`: the newest frame that arrived.
    fn streams_at(&mut self, t: Duration) -> Result<Vec<MediaStream>, NodeError> {
        let unavailable_after = self.config.unavailable_after;
        let mut streams = Vec::with_capacity(self.cameras.len());
        for camera in &mut self.cameras {
            streams.extend(camera.stream_at(t, unavailable_after)?);
        }
        Ok(streams)
    }
}

impl Camera {
    /// The camera's stream at `t`: its newest arrived frame, fresh or cached (`None` before
    /// its first frame), counting what the app gets and what it misses.
    fn stream_at(
        &mut self,
        t: Duration,
        unavailable_after: Duration,
    ) -> Result<Option<MediaStream>, NodeError> {
        let mut fresh = false;
        while self.pending.as_ref().is_some_and(|p| p.arrives <= t) {
            if fresh {
                self.stats.superseded += 1;
            }
            self.current = self.pending.take();
            fresh = true;
            self.fetch()?;
        }
        let Some(current) = self.current.as_ref() else {
            return Ok(None);
        };
        if fresh {
            self.stats.delivered += 1;
            if let Some(prev) = self.last_fresh {
                let gap = current.arrives.saturating_sub(prev);
                self.stats.intervals_us.push(gap.as_micros() as u64);
            }
            self.last_fresh = Some(current.arrives);
        } else {
            self.stats.cached += 1;
        }
        let unavailable = self
            .last_fresh
            .is_some_and(|l| t.saturating_sub(l) > unavailable_after);
        if unavailable {
            self.stats.unavailable += 1;
        }
        Ok(Some(MediaStream {
            image: current.frame.clone().at(current.captured),
            stream_id: self.name.clone(),
            time_stamp: current.captured,
            is_cached: !fresh,
            is_unavailable: unavailable,
            arrived: current.arrives,
            frame_index: current.index,
            annotations: Scene::default(),
        }))
    }
}

/// The HDMI picture: the streams tiled in a grid (columns = ceil(sqrt(n))) on a
/// `width`x`height` BGR frame, each scaled to fit its tile (nearest neighbour, aspect kept).
pub fn compose(streams: &[Frame], width: u32, height: u32) -> Frame {
    let (w, h) = (width.max(1) as usize, height.max(1) as usize);
    let mut out = vec![0u8; w * h * 3];
    let n = streams.len();
    if n > 0 {
        let cols = (n as f64).sqrt().ceil() as usize;
        let rows = n.div_ceil(cols);
        let (tw, th) = (w / cols, h / rows);
        for (i, s) in streams.iter().enumerate() {
            if s.format() != PixelFormat::Bgr8 || tw == 0 || th == 0 {
                continue;
            }
            let (sw, sh) = (s.width() as usize, s.height() as usize);
            let scale = (tw as f64 / sw as f64).min(th as f64 / sh as f64);
            let (dw, dh) = (
                ((sw as f64 * scale) as usize).max(1),
                ((sh as f64 * scale) as usize).max(1),
            );
            let x0 = (i % cols) * tw + (tw - dw.min(tw)) / 2;
            let y0 = (i / cols) * th + (th - dh.min(th)) / 2;
            let xmap: Vec<usize> = (0..dw).map(|x| (x * sw / dw).min(sw - 1) * 3).collect();
            for y in 0..dh.min(th) {
                let sy = (y * sh / dh).min(sh - 1);
                let src = &s.data()[sy * s.stride()..];
                let dst = &mut out[((y0 + y) * w + x0) * 3..];
                for (x, &sx) in xmap.iter().enumerate().take(tw) {
                    dst[x * 3..x * 3 + 3].copy_from_slice(&src[sx..sx + 3]);
                }
            }
        }
    }
    Frame::from_vec(out, PixelFormat::Bgr8, w as u32, h as u32)
        .unwrap_or_else(|e| unreachable!("composite {w}x{h}: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::timing::Jitter;
    use telescope::Rate;

    fn pattern(rate: &str) -> SourceSpec {
        format!("pattern:smpte@32x24@{rate}").parse().unwrap()
    }

    fn camera(name: &str, timing: Option<TimingConfig>) -> CameraConfig {
        CameraConfig {
            name: name.into(),
            source: pattern("30"),
            passes: Some(1),
            timing,
        }
    }

    /// Per iteration: node time and (camera, cached, frame index) of each stream.
    type Seen = Vec<(Duration, Vec<(String, bool, u64)>)>;

    fn run(config: NodeConfig) -> (NodeReport, Seen) {
        let mut seen = Vec::new();
        let node = Node::new(config).unwrap();
        let report = node
            .run(
                &mut |streams: &mut [MediaStream]| {
                    for s in streams.iter_mut() {
                        s.add_rect(0.1, 0.1, 0.5, 0.5);
                    }
                },
                &mut |t, streams| {
                    seen.push((
                        t,
                        streams
                            .iter()
                            .map(|s| (s.stream_id.clone(), s.is_cached, s.frame_index))
                            .collect(),
                    ));
                    Ok(())
                },
                &AtomicBool::new(false),
            )
            .unwrap();
        (report, seen)
    }

    #[test]
    fn a_slow_app_sees_the_newest_frames_and_every_frame_is_accounted_for() {
        let timing = TimingConfig {
            jitter: Jitter::Uniform { max_ms: 10.0 },
            drop_probability: 0.05,
            seed: 3,
            ..TimingConfig::steady(Rate::new(30, 1).unwrap())
        };
        let config = NodeConfig {
            cameras: vec![camera("a", Some(timing.clone())), camera("b", None)],
            app_time: AppTime::Fixed(Duration::from_millis(50)),
            duration: Some(Duration::from_secs(10)),
            seed: 9,
            ..NodeConfig::default()
        };
        let (report, seen) = run(config.clone());
        // 20 iterations per second at most.
        assert!(report.iterations <= 201, "{}", report.iterations);
        for c in &report.cameras {
            assert!(c.superseded > 0, "{c:?}");
            assert_eq!(c.unaccounted(), 0, "{c:?}");
        }
        assert!(report.cameras[0].lost > 0);
        // Time never goes backwards and frame indices only grow.
        assert!(seen.windows(2).all(|w| w[0].0 <= w[1].0));
        // Deterministic: the same configuration gives the same run.
        let (again, seen_again) = run(config);
        assert_eq!(again, report);
        assert_eq!(seen_again, seen);
    }

    /// Delivery delays measured through the node match the configured jitter over thousands
    /// of frames.
    #[test]
    fn measured_jitter_matches_the_model() {
        for (jitter, mean, sd) in [
            (Jitter::Uniform { max_ms: 20.0 }, 10.0, 20.0 / 12f64.sqrt()),
            (
                Jitter::Normal {
                    mean_ms: 15.0,
                    sd_ms: 4.0,
                },
                15.0,
                4.0,
            ),
        ] {
            let timing = TimingConfig {
                jitter,
                seed: 11,
                ..TimingConfig::steady(Rate::new(30, 1).unwrap())
            };
            let node = Node::new(NodeConfig {
                cameras: vec![CameraConfig {
                    passes: None,
                    ..camera("a", Some(timing))
                }],
                duration: Some(Duration::from_secs(120)),
                ..NodeConfig::default()
            })
            .unwrap();
            let mut delays = Vec::new();
            let report = node
                .run(
                    &mut |_: &mut [MediaStream]| {},
                    &mut |_, streams| {
                        for s in streams.iter().filter(|s| !s.is_cached) {
                            delays.push((s.arrived - s.time_stamp).as_secs_f64() * 1000.0);
                        }
                        Ok(())
                    },
                    &AtomicBool::new(false),
                )
                .unwrap();
            let n = delays.len() as f64;
            assert!(n > 3000.0, "{n}");
            let m = delays.iter().sum::<f64>() / n;
            let v = delays.iter().map(|d| (d - m).powi(2)).sum::<f64>() / n;
            // Arrivals never overtake each other, which trims the upper tail slightly.
            assert!((m - mean).abs() < 0.6, "mean {m} vs {mean}");
            assert!((v.sqrt() - sd).abs() < 0.6, "sd {} vs {sd}", v.sqrt());
            assert_eq!(report.cameras[0].unaccounted(), 0);
        }
    }

    #[test]
    fn a_stalled_camera_is_cached_then_unavailable() {
        let timing = TimingConfig {
            stall_every: Some(Duration::from_secs(1)),
            stall_for: Duration::from_secs(3),
            ..TimingConfig::steady(Rate::new(30, 1).unwrap())
        };
        let config = NodeConfig {
            cameras: vec![camera("stalls", Some(timing)), camera("steady", None)],
            duration: Some(Duration::from_secs(5)),
            ..NodeConfig::default()
        };
        let (report, _) = run(config);
        let stalls = &report.cameras[0];
        assert!(stalls.cached > 30, "{stalls:?}");
        assert!(stalls.unavailable > 0, "{stalls:?}");
        assert_eq!(report.cameras[1].cached, 0);
        // The largest gap between fresh frames is the stall.
        let max = stalls.intervals_us.iter().max().copied().unwrap_or(0);
        assert!(max >= 3_000_000, "{max}");
        // Serialized as Python and reports read it: seconds, counts, no intervals.
        let json = serde_json::to_value(&report).unwrap();
        assert_eq!(json["elapsed"].as_f64(), Some(report.elapsed.as_secs_f64()));
        assert_eq!(json["cameras"][0]["cached"], stalls.cached);
        assert_eq!(json["cameras"][0]["name"], "stalls");
        assert!(json["cameras"][0].get("intervals_us").is_none());
    }

    #[test]
    fn streams_render_their_labels_and_compose_into_tiles() {
        let mut s = MediaStream::new(
            "a",
            Frame::from_vec(vec![0; 40 * 30 * 3], PixelFormat::Bgr8, 40, 30).unwrap(),
            Duration::ZERO,
        );
        s.add_rect(0.5, 0.5, 0.0, 0.0);
        s.add_rect(f64::NAN, 0.0, 1.0, 1.0);
        s.add_label("person", 0.1, 0.1);
        assert_eq!(s.annotations().annotations.len(), 2);
        let r = s.into_rendered().unwrap();
        assert!(r.data().iter().any(|&b| b != 0));
        let white = Frame::from_vec(vec![255; 4 * 4 * 3], PixelFormat::Bgr8, 4, 4).unwrap();
        let hdmi = compose(&[white.clone(), r, white.clone()], 80, 60);
        // 2x2 grid: the top-left tile is white, the bottom-right one empty.
        assert_eq!(&hdmi.data()[(10 * 80 + 10) * 3..][..3], &[255, 255, 255]);
        assert_eq!(&hdmi.data()[(50 * 80 + 70) * 3..][..3], &[0, 0, 0]);
    }
}
