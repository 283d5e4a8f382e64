//! `telescope._native`: the Rust core behind the `telescope` Python package.

use numpy::{PyArrayDyn, PyArrayMethods, PyUntypedArrayMethods};
use pyo3::create_exception;
use pyo3::exceptions::{PyException, PyValueError};
use pyo3::prelude::*;
use pyo3::types::PyDict;

use telescope::annotation::opencv::PixelDriver;
use telescope::annotation::{Driver, Overlay, Scene as CoreScene};
use telescope::credentials::CredentialSource;
use telescope::kvs::KvsConfig;
use telescope::sink::{KvsSink, KvsSinkConfig};
use telescope::{
    BasicAuth, EncoderConfig, EncoderKind, EncoderProfile, Frame, FramePool, PixelFormat, Rate,
    RtspServerConfig, SinkConfig, TelescopeConfig,
};

create_exception!(
    _native,
    TelescopeError,
    PyException,
    "Base of Telescope's errors."
);
create_exception!(
    _native,
    ConfigError,
    TelescopeError,
    "A bad configuration or sink."
);
create_exception!(_native, StreamError, TelescopeError, "Streaming failed.");

fn config_err(e: impl std::fmt::Display) -> PyErr {
    ConfigError::new_err(e.to_string())
}

/// A numpy frame: shape, and the bytes with the row stride when rows are packed.
struct View<'a> {
    data: &'a [u8],
    format: PixelFormat,
    width: u32,
    height: u32,
    stride: usize,
}

/// Checks dtype and shape; returns the array as u8 or a ValueError naming what is wrong.
fn as_u8_array<'py>(frame: &Bound<'py, PyAny>) -> PyResult<Bound<'py, PyArrayDyn<u8>>> {
    let array = frame.cast::<PyArrayDyn<u8>>().map_err(|_| {
        let what = frame
            .getattr("dtype")
            .map(|d| format!("dtype {d}"))
            .unwrap_or_else(|_| "a non-array".to_owned());
        PyValueError::new_err(format!(
            "frame must be a numpy uint8 array (HxWx3 BGR or HxW gray), got {what}"
        ))
    })?;
    let shape = array.shape();
    let ok = match shape.len() {
        2 => true,
        3 => shape[2] == 3,
        _ => false,
    };
    if !ok || shape[0] == 0 || shape[1] == 0 {
        return Err(PyValueError::new_err(format!(
            "frame must be HxWx3 (BGR) or HxW (gray) with H, W > 0, got shape {shape:?}"
        )));
    }
    Ok(array.clone())
}

/// The frame's pixels without a copy when each row is packed (any row stride, e.g. a crop
/// of a larger image); `None` when pixels within a row are not adjacent.
fn view<'a>(array: &'a Bound<'_, PyArrayDyn<u8>>) -> PyResult<Option<View<'a>>> {
    let shape = array.shape();
    let strides = array.strides();
    let channels = if shape.len() == 3 { 3 } else { 1 };
    let (h, w) = (shape[0], shape[1]);
    let packed_row = strides[1] == channels as isize && (channels == 1 || strides[2] == 1);
    if !packed_row || strides[0] < (w * channels) as isize {
        return Ok(None);
    }
    let stride = strides[0] as usize;
    let len = stride * (h - 1) + w * channels;
    // SAFETY: the array is alive for 'a, holds h rows `stride` bytes apart each with
    // w*channels packed bytes (checked above), so `len` bytes from its data pointer are its
    // pixels. Python code could write to it concurrently only by holding the GIL, which the
    // caller keeps until the bytes are copied.
    let data = unsafe { std::slice::from_raw_parts(array.data() as *const u8, len) };
    Ok(Some(View {
        data,
        format: if channels == 3 {
            PixelFormat::Bgr8
        } else {
            PixelFormat::Gray8
        },
        width: u32::try_from(w).map_err(|_| PyValueError::new_err("frame too wide"))?,
        height: u32::try_from(h).map_err(|_| PyValueError::new_err("frame too tall"))?,
        stride,
    }))
}

/// The array's own memory as a frame, without a copy, when its rows are packed and it spans
/// whole rows (`None` otherwise: the caller copies).
fn borrow_frame(array: &Bound<'_, PyArrayDyn<u8>>) -> PyResult<Option<Frame>> {
    let Some(v) = view(array)? else {
        return Ok(None);
    };
    if v.data.len() < v.stride * v.height as usize {
        return Ok(None);
    }
    let owner: Box<dyn Send> = Box::new(array.clone().unbind());
    // SAFETY: `owner` holds a reference to the array, so its memory stays allocated while the
    // frame lives; the caller of put(copy=False) promises not to write to it meanwhile.
    let frame = unsafe {
        Frame::from_borrowed(
            v.data.as_ptr(),
            v.data.len(),
            owner,
            v.format,
            v.width,
            v.height,
            v.stride,
        )
    };
    frame
        .map(Some)
        .map_err(|e| PyValueError::new_err(e.to_string()))
}

/// Copies any u8 frame into a `Frame` from the Telescope's buffer pool: one copy, no
/// allocation once the stream runs (packed rows copied as one block or row by row).
fn to_frame(array: &Bound<'_, PyArrayDyn<u8>>, pool: &FramePool) -> PyResult<Frame> {
    let bad = |e: telescope::FrameError| PyValueError::new_err(e.to_string());
    if let Some(v) = view(array)? {
        let h = v.height as usize;
        let row = v.width as usize * if v.format == PixelFormat::Bgr8 { 3 } else { 1 };
        return pool
            .build(v.format, v.width, v.height, |out| {
                if v.stride == row {
                    out.extend_from_slice(&v.data[..row * h]);
                } else {
                    // A crop of a larger image: its last row may end before a full stride.
                    for y in 0..h {
                        out.extend_from_slice(&v.data[y * v.stride..y * v.stride + row]);
                    }
                }
            })
            .map_err(bad);
    }
    // Strided pixels (e.g. a[:, ::2]): gather through numpy's view.
    let readonly = array
        .try_readonly()
        .map_err(|e| PyValueError::new_err(e.to_string()))?;
    let a = readonly.as_array();
    let shape = a.shape().to_vec();
    let format = if shape.len() == 3 {
        PixelFormat::Bgr8
    } else {
        PixelFormat::Gray8
    };
    let (w, h) = (
        u32::try_from(shape[1]).map_err(|_| PyValueError::new_err("frame too wide"))?,
        u32::try_from(shape[0]).map_err(|_| PyValueError::new_err("frame too tall"))?,
    );
    pool.build(format, w, h, |out| out.extend(a.iter().copied()))
        .map_err(bad)
}

/// An RTSP server in this process; `mount(path)` gives a sink.
#[pyclass(module = "telescope._native")]
struct RtspServer {
    inner: telescope::RtspServer,
}

#[pymethods]
impl RtspServer {
    #[new]
    #[pyo3(signature = (port=8554, address="0.0.0.0".to_owned(), user=None, password=None))]
    fn new(
        port: u16,
        address: String,
        user: Option<String>,
        password: Option<String>,
    ) -> PyResult<Self> {
        let auth = match (user, password) {
            (Some(u), Some(p)) => Some(BasicAuth::new(&u, &p)),
            (None, None) => None,
            _ => return Err(config_err("give both user and password, or neither")),
        };
        let inner = telescope::RtspServer::start(RtspServerConfig {
            address,
            port,
            auth,
        })
        .map_err(config_err)?;
        Ok(RtspServer { inner })
    }

    /// The port it listens on (useful with port=0).
    #[getter]
    fn port(&self) -> u16 {
        self.inner.port()
    }

    /// A sink serving `rtsp://HOST:PORT/path`.
    fn mount(&self, path: &str) -> PyResult<RtspMount> {
        Ok(RtspMount {
            inner: self.inner.mount(path).map_err(config_err)?,
        })
    }

    /// `rtsp://...` for `path`.
    fn url(&self, path: &str) -> String {
        self.inner.url(path)
    }
}

/// One RTSP path; pass it in `sinks`.
#[pyclass(module = "telescope._native")]
struct RtspMount {
    inner: telescope::RtspMount,
}

#[pymethods]
impl RtspMount {
    /// The URL viewers open.
    #[getter]
    fn url(&self) -> String {
        self.inner.url().to_owned()
    }
}

/// A Kinesis Video Streams sink (native PutMedia).
#[pyclass(module = "telescope._native")]
struct KvsStream {
    inner: KvsSink,
}

#[pymethods]
impl KvsStream {
    /// `credentials`: "default" (the AWS provider chain), "environment", or a dict with
    /// access_key_id, secret_access_key and optional session_token.
    #[new]
    #[pyo3(signature = (stream_name, region, endpoint=None, credentials=None, create=false))]
    fn new(
        stream_name: &str,
        region: &str,
        endpoint: Option<String>,
        credentials: Option<&Bound<'_, PyAny>>,
        create: bool,
    ) -> PyResult<Self> {
        let credentials = match credentials {
            None => CredentialSource::DefaultChain,
            Some(c) => {
                if let Ok(s) = c.extract::<String>() {
                    match s.as_str() {
                        "default" => CredentialSource::DefaultChain,
                        "environment" => CredentialSource::Environment,
                        other => {
                            return Err(config_err(format!(
                                "credentials `{other}`: use \"default\", \"environment\" or a dict of keys"
                            )));
                        }
                    }
                } else {
                    let d = c.cast::<PyDict>().map_err(|_| {
                        config_err("credentials must be a string or a dict of keys")
                    })?;
                    let get = |k: &str| -> PyResult<Option<String>> {
                        d.get_item(k)?.map(|v| v.extract::<String>()).transpose()
                    };
                    CredentialSource::Static {
                        access_key_id: get("access_key_id")?
                            .ok_or_else(|| config_err("credentials: access_key_id missing"))?,
                        secret_access_key: get("secret_access_key")?
                            .ok_or_else(|| config_err("credentials: secret_access_key missing"))?,
                        session_token: get("session_token")?,
                    }
                }
            }
        };
        let mut config = KvsSinkConfig::new(
            stream_name,
            KvsConfig {
                region: region.to_owned(),
                endpoint,
                credentials,
            },
        );
        if create {
            config.create = Some(Default::default());
        }
        Ok(KvsStream {
            inner: KvsSink::connect(config).map_err(|e| match &e {
                // The library names the concept; Python names its parameter.
                telescope::TelescopeError::Kvs(telescope::kvs::KvsError::StreamNotFound {
                    ..
                }) if !create => config_err(format!("{e} (create=True creates missing streams)")),
                _ => config_err(e),
            })?,
        })
    }

    /// Delivery counters.
    fn stats<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        pyvalue::to_dict(py, &self.inner.stats())
    }
}

/// A scene of annotations (JSON as documented in the README).
#[pyclass(module = "telescope._native", skip_from_py_object)]
#[derive(Clone)]
struct Scene {
    inner: CoreScene,
}

#[pymethods]
impl Scene {
    /// Parses and validates JSON; ValueError with line and column when it is not a scene.
    #[staticmethod]
    fn from_json(text: &str) -> PyResult<Scene> {
        Ok(Scene {
            inner: CoreScene::from_json(text).map_err(|e| PyValueError::new_err(e.to_string()))?,
        })
    }

    fn to_json(&self) -> String {
        self.inner.to_json()
    }

    fn __len__(&self) -> usize {
        self.inner.annotations.len()
    }
}

/// Draws `scene` on a numpy uint8 frame in place (HxWx3 BGR or HxW gray, rows packed);
/// returns the number of annotations drawn.
#[pyfunction]
fn render(py: Python<'_>, scene: &Scene, frame: &Bound<'_, PyAny>) -> PyResult<usize> {
    let array = as_u8_array(frame)?;
    let v = view(&array)?.ok_or_else(|| {
        PyValueError::new_err(
            "render draws in place: pixels within a row must be adjacent (use np.ascontiguousarray)",
        )
    })?;
    let (len, format, w, h, stride) = (v.data.len(), v.format, v.width, v.height, v.stride);
    let mut rw = array
        .try_readwrite()
        .map_err(|e| PyValueError::new_err(format!("frame is not writable: {e}")))?;
    let ptr = rw.as_array_mut().as_mut_ptr();
    // SAFETY: the same `len` bytes `view` checked, borrowed mutably through `rw` for as long
    // as the slice lives.
    let bytes = unsafe { std::slice::from_raw_parts_mut(ptr, len) };
    let inner = &scene.inner;
    let report = py
        .detach(move || {
            PixelDriver::new(bytes, format, w, h, stride).draw(inner, Some(telescope_time()))
        })
        .map_err(|e| PyValueError::new_err(e.to_string()))?;
    Ok(report.drawn)
}

fn telescope_time() -> time::OffsetDateTime {
    time::OffsetDateTime::now_utc()
}

/// Streams numpy frames to sinks; see the package docstring.
#[pyclass(module = "telescope._native", subclass)]
struct Telescope {
    inner: telescope::Telescope,
    overlay: Overlay,
}

fn parse_sink(obj: &Bound<'_, PyAny>) -> PyResult<SinkConfig> {
    if let Ok(m) = obj.cast::<RtspMount>() {
        return Ok(SinkConfig::rtsp(m.borrow().inner.clone()));
    }
    if let Ok(k) = obj.cast::<KvsStream>() {
        return Ok(SinkConfig::Kvs(k.borrow().inner.clone()));
    }
    let spec: String = obj.extract().map_err(|_| {
        config_err(
            "a sink is a string such as \"file:out.mkv\", an RtspServer mount or a KvsStream",
        )
    })?;
    spec.parse::<SinkConfig>().map_err(config_err)
}

#[pymethods]
impl Telescope {
    #[new]
    #[pyo3(signature = (sinks, fps=None, width=None, height=None, encoder=None, queue=8, profile=None, bitrate_kbps=None))]
    // The Python constructor's keyword arguments, one parameter each.
    #[allow(clippy::too_many_arguments)]
    fn new(
        sinks: Vec<Bound<'_, PyAny>>,
        fps: Option<f64>,
        width: Option<u32>,
        height: Option<u32>,
        encoder: Option<String>,
        queue: usize,
        profile: Option<String>,
        bitrate_kbps: Option<u32>,
    ) -> PyResult<Self> {
        let overlay = Overlay::new();
        let mut b = TelescopeConfig::builder()
            .name("python")
            .queue_capacity(queue.max(1))
            .overlay(overlay.clone());
        if let Some(fps) = fps {
            let rate = Rate::snap(fps, 0.005)
                .or_else(|| Rate::new((fps * 1000.0).round() as u32, 1000))
                .filter(|_| fps.is_finite() && fps > 0.0)
                .ok_or_else(|| config_err(format!("fps {fps} is not a frame rate")))?;
            b = b.fps(rate);
        }
        match (width, height) {
            (Some(w), Some(h)) => b = b.size(w, h),
            (None, None) => {}
            _ => return Err(config_err("give both width and height, or neither")),
        }
        let profile = match profile {
            Some(p) => EncoderProfile::parse(&p).map_err(config_err)?,
            None => EncoderProfile::default(),
        };
        let mut encoder_config = EncoderConfig::for_profile(profile);
        if let Some(e) = encoder {
            encoder_config.kind = e.parse::<EncoderKind>().map_err(config_err)?;
        }
        encoder_config.bitrate_kbps = bitrate_kbps;
        b = b.encoder(encoder_config);
        if sinks.is_empty() {
            return Err(config_err("at least one sink is needed"));
        }
        for s in &sinks {
            b = b.sink(parse_sink(s)?);
        }
        let inner = telescope::Telescope::new(b.build()).map_err(config_err)?;
        Ok(Telescope { inner, overlay })
    }

    fn start(&self, py: Python<'_>) -> PyResult<()> {
        py.detach(|| self.inner.start()).map_err(|e| match e {
            telescope::TelescopeError::Config(_) => config_err(e),
            e => StreamError::new_err(e.to_string()),
        })
    }

    /// Queues a frame; never blocks unless `block` is true. False when it was not accepted
    /// (see stats()). `timestamp`: the capture time in seconds on the stream's own timeline
    /// (e.g. frame index / fps for recorded footage); by default the time of the call.
    /// `block=True` waits for room instead of dropping: for offline sources only.
    /// `copy=False` streams the array's own memory without copying it (rows must be packed,
    /// as in any C-contiguous array or crop of one): the array must not be modified afterwards
    /// (hand over a fresh array per frame, as camera reads give). Telescope holds a reference
    /// until the encoder is done with it.
    #[pyo3(signature = (frame, timestamp=None, block=false, copy=true))]
    fn put(
        &self,
        py: Python<'_>,
        frame: &Bound<'_, PyAny>,
        timestamp: Option<f64>,
        block: bool,
        copy: bool,
    ) -> PyResult<bool> {
        if let Some(error) = self.inner.failure() {
            return Err(StreamError::new_err(error));
        }
        let array = as_u8_array(frame)?;
        let borrowed = if copy { None } else { borrow_frame(&array)? };
        let mut owned = match borrowed {
            Some(f) => f,
            None => to_frame(&array, self.inner.pool())?,
        };
        if let Some(t) = timestamp {
            let at = std::time::Duration::try_from_secs_f64(t).map_err(|_| {
                PyValueError::new_err(format!(
                    "timestamp {t} is not a time in seconds (finite, not negative)"
                ))
            })?;
            owned = owned.at(at);
        }
        let outcome = if block {
            py.detach(|| self.inner.put_blocking(owned))
        } else {
            py.detach(|| self.inner.put(owned))
        };
        Ok(outcome.is_queued())
    }

    /// Draw this scene on every frame from now on (None clears it).
    fn set_scene(&self, scene: Option<&Scene>) -> PyResult<()> {
        match scene {
            Some(s) => self
                .overlay
                .set(s.inner.clone())
                .map_err(|e| PyValueError::new_err(e.to_string())),
            None => {
                self.overlay.clear();
                Ok(())
            }
        }
    }

    /// Finishes the stream (files finalised); returns the final stats.
    fn stop<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        let report = py
            .detach(|| self.inner.stop())
            .map_err(|e| StreamError::new_err(e.to_string()))?;
        stats_dict(py, &report.stats)
    }

    /// Counters; `buffers_allocated` counts the frame buffers ever allocated (it stays small:
    /// buffers are recycled once the encoder is done with them).
    fn stats<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        let d = stats_dict(py, &self.inner.stats())?;
        d.set_item("buffers_allocated", self.inner.pool().stats().allocated)?;
        Ok(d)
    }

    fn __enter__(slf: PyRef<'_, Self>, py: Python<'_>) -> PyResult<Py<Self>> {
        slf.start(py)?;
        Ok(slf.into())
    }

    #[pyo3(signature = (*_args))]
    fn __exit__(&self, py: Python<'_>, _args: &Bound<'_, pyo3::types::PyTuple>) -> PyResult<bool> {
        self.stop(py)?;
        Ok(false)
    }
}

/// A Telescope's counters as `telescope::Stats` serializes them (as report.json has them).
fn stats_dict<'py>(py: Python<'py>, s: &telescope::Stats) -> PyResult<Bound<'py, PyDict>> {
    pyvalue::to_dict(py, s)
}

mod node;
mod pyvalue;

#[pymodule]
fn _native(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<Telescope>()?;
    m.add_class::<RtspServer>()?;
    m.add_class::<RtspMount>()?;
    m.add_class::<KvsStream>()?;
    m.add_class::<Scene>()?;
    m.add_class::<node::Node>()?;
    m.add_function(wrap_pyfunction!(render, m)?)?;
    m.add("TelescopeError", m.py().get_type::<TelescopeError>())?;
    m.add("ConfigError", m.py().get_type::<ConfigError>())?;
    m.add("StreamError", m.py().get_type::<StreamError>())?;
    Ok(())
}
