//! The simulator's Panorama node for Python: cameras with the timing of real ones (files,
//! `rtsp://`, `images:`, `pattern:` sources; jitter, drops, stalls; a virtual clock), whose
//! batches a Panorama-style app pulls with `video_in.get()` (the `panoramasdk` package).
//!
//! The node runs on its own thread and offers one batch at a time: it waits while the app
//! holds the batch (its processing time; on a system clock frames that arrive meanwhile are
//! superseded, as on the device) and goes on when the app asks for the next one, puts its
//! result, or stops.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use numpy::IntoPyArray;
use numpy::ndarray::Array3;
use pyo3::exceptions::{PyRuntimeError, PyTimeoutError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyList, PyTuple};
use simulator::node::{NodeClock, NodeReport};
use simulator::{
    CameraConfig, CameraModelOptions, MediaStream, Node as SimNode, NodeConfig, SourceSpec,
};
use telescope::{PixelFormat, Rate, VirtualClock};

/// What the node thread and the app's thread share.
#[derive(Default)]
struct Mailbox {
    /// A batch offered and not yet taken.
    offered: Option<Vec<MediaStream>>,
    /// Sequence number of the last batch offered.
    offered_seq: u64,
    /// Sequence number of the last batch the app took.
    taken_seq: u64,
    /// The app is done with every batch up to this one.
    finished_seq: u64,
    /// The node's end: its report, or why it failed.
    ended: Option<Result<NodeReport, String>>,
}

#[derive(Default)]
struct Shared {
    mailbox: Mutex<Mailbox>,
    changed: Condvar,
    stop: AtomicBool,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, Mailbox> {
        self.mailbox.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The app is done with the batch it took last.
    fn finish_batch(&self) {
        let mut m = self.lock();
        m.finished_seq = m.taken_seq;
        drop(m);
        self.changed.notify_all();
    }
}

/// The app side of the node: offers each batch and waits until the app is done with it.
struct Handover(Arc<Shared>);

impl simulator::App for Handover {
    fn process(&mut self, streams: &mut [MediaStream]) {
        let shared = &self.0;
        let mut m = shared.lock();
        m.offered_seq += 1;
        let seq = m.offered_seq;
        // The images move to the app (no copy); the node keeps a 1x1 stand-in, since what it
        // would output goes to the app's sinks through `put` instead.
        let batch = streams
            .iter_mut()
            .map(|s| {
                let stand_in = telescope::Frame::from_vec(vec![0; 3], PixelFormat::Bgr8, 1, 1);
                let image = match stand_in {
                    Ok(f) => std::mem::replace(&mut s.image, f),
                    Err(_) => s.image.clone(),
                };
                let mut moved = s.clone();
                moved.image = image;
                moved
            })
            .collect();
        m.offered = Some(batch);
        shared.changed.notify_all();
        while m.finished_seq < seq && !shared.stop.load(Ordering::SeqCst) {
            m = shared.changed.wait(m).unwrap_or_else(|p| p.into_inner());
        }
        // A batch the app never took is not the app's: it was superseded by the end.
        m.offered = None;
    }
}

/// Cameras feeding a pull-style app. `cameras` is a list of `(name, source)` pairs.
#[pyclass(module = "telescope._native")]
pub struct Node {
    shared: Arc<Shared>,
    thread: Mutex<Option<JoinHandle<()>>>,
}

fn parse_rate(value: Option<&str>, what: &str) -> PyResult<Option<Rate>> {
    value
        .map(|v| {
            v.parse::<Rate>()
                .map_err(|e| PyValueError::new_err(format!("{what} `{v}`: {e}")))
        })
        .transpose()
}

/// A node's run length: positive seconds, or until the cameras end.
fn node_duration(seconds: Option<f64>) -> PyResult<Option<Duration>> {
    match seconds {
        Some(d) if d.is_finite() && d > 0.0 => Ok(Some(Duration::from_secs_f64(d))),
        Some(d) => Err(PyValueError::new_err(format!(
            "duration {d} is not a positive number of seconds"
        ))),
        None => Ok(None),
    }
}

/// The cameras' configurations from `(name, source)` pairs, each source played `loops` times
/// (0: until stopped).
fn camera_configs(cameras: &[(String, String)], loops: u32) -> PyResult<Vec<CameraConfig>> {
    cameras
        .iter()
        .map(|(name, spec)| {
            let source: SourceSpec =
                spec.parse()
                    .map_err(|e: simulator::source::SourceSpecError| {
                        PyValueError::new_err(format!("camera {name}: {e}"))
                    })?;
            Ok(CameraConfig {
                name: name.clone(),
                source,
                passes: (loops > 0).then_some(loops),
                timing: None,
            })
        })
        .collect()
}

/// Runs the node on its own thread, handing batches over through `shared`; its outcome (the
/// report, its error or its panic) is left in `shared` when it ends.
fn spawn_node(node: SimNode, shared: Arc<Shared>) -> PyResult<JoinHandle<()>> {
    std::thread::Builder::new()
        .name("telescope-node".into())
        .spawn(move || {
            let mut app = Handover(shared.clone());
            let mut output = |_t: Duration, _streams: Vec<MediaStream>| Ok(());
            let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                node.run(&mut app, &mut output, &shared.stop)
            }));
            let ended = match result {
                Ok(Ok(report)) => Ok(report),
                Ok(Err(e)) => Err(format!("{e:#}")),
                Err(_) => Err("the node's thread panicked".to_owned()),
            };
            shared.lock().ended = Some(ended);
            shared.changed.notify_all();
        })
        .map_err(|e| PyRuntimeError::new_err(format!("cannot start the node: {e}")))
}

#[pymethods]
impl Node {
    #[new]
    #[pyo3(signature = (cameras, *, virtual_clock=false, seed=0, duration=None, loops=1,
        jitter_ms=None, normal_jitter=false, drop=0.0, drop_burst=1, stall_every=None,
        stall_ms=0, camera_fps=None))]
    #[allow(clippy::too_many_arguments)]
    fn new(
        cameras: Vec<(String, String)>,
        virtual_clock: bool,
        seed: u64,
        duration: Option<f64>,
        loops: u32,
        jitter_ms: Option<f64>,
        normal_jitter: bool,
        drop: f64,
        drop_burst: u32,
        stall_every: Option<f64>,
        stall_ms: u64,
        camera_fps: Option<String>,
    ) -> PyResult<Node> {
        telescope::init().map_err(|e| PyRuntimeError::new_err(e.to_string()))?;
        if cameras.is_empty() {
            return Err(PyValueError::new_err("a node needs at least one camera"));
        }
        let model = CameraModelOptions {
            jitter_ms,
            normal_jitter,
            drop,
            drop_burst,
            stall_every,
            stall_ms,
            camera_fps: parse_rate(camera_fps.as_deref(), "camera fps")?,
        };
        let config = NodeConfig {
            cameras: camera_configs(&cameras, loops)?,
            seed,
            duration: node_duration(duration)?,
            clock: if virtual_clock {
                NodeClock::Virtual(VirtualClock::new())
            } else {
                NodeClock::System
            },
            ..NodeConfig::default()
        };
        let mut node = SimNode::new(config).map_err(|e| PyValueError::new_err(format!("{e:#}")))?;
        // Each camera's model falls back on its source's declared rate, with its own seed.
        for (i, declared) in node.declared_rates().into_iter().enumerate() {
            let timing = model
                .timing(declared, seed.wrapping_add(i as u64))
                .map_err(|e| PyValueError::new_err(format!("camera {}: {e}", cameras[i].0)))?;
            node.set_timing(i, timing)
                .map_err(|e| PyValueError::new_err(e.to_string()))?;
        }
        let shared = Arc::new(Shared::default());
        let thread = spawn_node(node, shared.clone())?;
        Ok(Node {
            shared,
            thread: Mutex::new(Some(thread)),
        })
    }

    /// The next batch: a list of `(stream_id, image, capture_us, is_cached, frame_index)`,
    /// one per camera in order, or `None` when the cameras have ended. Finishes the batch taken
    /// before. Raises `TimeoutError` when `timeout` seconds pass without one.
    #[pyo3(signature = (timeout=None))]
    fn next<'py>(
        &self,
        py: Python<'py>,
        timeout: Option<f64>,
    ) -> PyResult<Option<Bound<'py, PyList>>> {
        let deadline = match timeout {
            Some(t) if t.is_finite() && t >= 0.0 => {
                Some(Instant::now() + Duration::from_secs_f64(t))
            }
            Some(t) => {
                return Err(PyValueError::new_err(format!(
                    "timeout {t} is not a number of seconds"
                )));
            }
            None => None,
        };
        let shared = self.shared.clone();
        let taken = py.detach(move || {
            let mut m = shared.lock();
            m.finished_seq = m.taken_seq;
            shared.changed.notify_all();
            loop {
                if let Some(batch) = m.offered.take() {
                    m.taken_seq = m.offered_seq;
                    return Ok(Some(batch));
                }
                if let Some(ended) = &m.ended {
                    return ended.as_ref().map(|_| None).map_err(Clone::clone);
                }
                match deadline {
                    None => m = shared.changed.wait(m).unwrap_or_else(|p| p.into_inner()),
                    Some(d) => {
                        let Some(left) = d.checked_duration_since(Instant::now()) else {
                            return Err(String::new());
                        };
                        m = shared
                            .changed
                            .wait_timeout(m, left)
                            .unwrap_or_else(|p| p.into_inner())
                            .0;
                    }
                }
            }
        });
        let batch = match taken {
            Ok(Some(batch)) => batch,
            Ok(None) => return Ok(None),
            Err(e) if e.is_empty() => {
                return Err(PyTimeoutError::new_err(format!(
                    "no frame within {} s",
                    timeout.unwrap_or_default()
                )));
            }
            Err(e) => return Err(PyRuntimeError::new_err(e)),
        };
        let list = PyList::empty(py);
        for s in batch {
            let image = bgr_array(py, s.image)?;
            let item = PyTuple::new(
                py,
                [
                    s.stream_id.into_pyobject(py)?.into_any(),
                    image,
                    (s.time_stamp.as_micros() as u64)
                        .into_pyobject(py)?
                        .into_any(),
                    pyo3::types::PyBool::new(py, s.is_cached)
                        .to_owned()
                        .into_any(),
                    s.frame_index.into_pyobject(py)?.into_any(),
                ],
            )?;
            list.append(item)?;
        }
        Ok(Some(list))
    }

    /// The app is done with the batch it took (its output was put).
    fn done(&self) {
        self.shared.finish_batch();
    }

    /// Stops the cameras (if still running) and returns the node's report: per camera
    /// `frames_in`, `lost`, `superseded`, `delivered`, `cached`, `unavailable`, `pending`, `laps`;
    /// `iterations`, `elapsed` (seconds), `interrupted`.
    fn stop<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        if let Some(t) = self.halt() {
            py.detach(move || t.join())
                .map_err(|_| PyRuntimeError::new_err("the node's thread panicked"))?;
        }
        let ended = self.shared.lock().ended.clone();
        let report = match ended {
            Some(Ok(r)) => r,
            Some(Err(e)) => return Err(PyRuntimeError::new_err(e)),
            None => return Err(PyRuntimeError::new_err("the node ended without a report")),
        };
        crate::pyvalue::to_dict(py, &report)
    }
}

impl Node {
    /// Tells the node's thread to stop (releasing a batch it waits on); its handle, the first
    /// time.
    fn halt(&self) -> Option<JoinHandle<()>> {
        self.shared.stop.store(true, Ordering::SeqCst);
        self.shared.finish_batch();
        self.thread.lock().unwrap_or_else(|p| p.into_inner()).take()
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        if let Some(t) = self.halt() {
            let _ = t.join();
        }
    }
}

/// A BGR frame as a writable, contiguous `uint8` HxWx3 array (the frame's buffer when its rows
/// are packed, else a packed copy).
fn bgr_array<'py>(py: Python<'py>, frame: telescope::Frame) -> PyResult<Bound<'py, PyAny>> {
    if frame.format() != PixelFormat::Bgr8 {
        return Err(PyRuntimeError::new_err(format!(
            "the node delivered {:?}, not BGR",
            frame.format()
        )));
    }
    let (w, h, stride) = (
        frame.width() as usize,
        frame.height() as usize,
        frame.stride(),
    );
    let pixels = if stride == w * 3 && frame.data().len() == w * h * 3 {
        // Rows packed: the frame's own buffer becomes the array's.
        frame.into_data()
    } else {
        let data = frame.data();
        let mut pixels = Vec::with_capacity(w * h * 3);
        for row in 0..h {
            let start = row * stride;
            let line = data
                .get(start..start + w * 3)
                .ok_or_else(|| PyRuntimeError::new_err("a frame shorter than its size"))?;
            pixels.extend_from_slice(line);
        }
        pixels
    };
    let array = Array3::from_shape_vec((h, w, 3), pixels)
        .map_err(|e| PyRuntimeError::new_err(e.to_string()))?;
    Ok(array.into_pyarray(py).into_any())
}
