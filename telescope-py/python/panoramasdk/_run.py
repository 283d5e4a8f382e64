"""``python -m panoramasdk run APP_DIR``: an unmodified Panorama application on the simulator.

Exit codes: 0 the app ran until its cameras ended (or ``--duration``); 2 a bad application or
manifest, a model that cannot be served, an app that raised, never called ``get()``, or
returned before its cameras ended (with the frame it stopped at and its last logged error).
"""

from __future__ import annotations

import argparse
import ctypes
import json
import logging
import os
import resource
import runpy
import sys
import threading
import time
import traceback
from typing import Dict, List, Optional

import numpy as np

import panoramasdk
from panoramasdk import EndOfStream, TimeoutException, media, port
from panoramasdk import _entry, _graph, _models, _network, _paths
from panoramasdk._graph import GraphError
from panoramasdk._models import ModelError, percentiles

#: After the end, calls to get() tolerated (an app swallowing EndOfStream) before ending it.
_GETS_AFTER_END = 3


class _LastError(logging.Handler):
    """Remembers the last record logged with an exception (what a bare ``except:`` logged)."""

    def __init__(self):
        super().__init__(logging.ERROR)
        self.last: Optional[str] = None

    def emit(self, record):
        if record.exc_info and record.exc_info[1] is not None:
            e = record.exc_info[1]
            if isinstance(e, EndOfStream):  # the end, logged by a bare except: not an error
                return
            self.last = f"{type(e).__name__}: {e}"
        elif self.last is None:
            self.last = record.getMessage()


def _rss_mib() -> float:
    try:
        with open("/proc/self/statm") as f:
            pages = int(f.read().split()[1])
        return pages * os.sysconf("SC_PAGE_SIZE") / (1024.0 * 1024.0)
    except (OSError, ValueError, IndexError):
        return 0.0


def _cpu_seconds() -> float:
    u = resource.getrusage(resource.RUSAGE_SELF)
    return u.ru_utime + u.ru_stime


class _Sampler:
    """The run over time, as replay samples it: once per interval the process's CPU (percent
    of one core over the interval), resident memory and the app's batches per second."""

    def __init__(self, rt: "Runtime", interval: float):
        self.rt = rt
        self.interval = interval
        self.samples: List[dict] = []
        self._stop = threading.Event()
        self._t0 = time.perf_counter()
        self._last = (self._t0, _cpu_seconds(), 0)
        self._thread = threading.Thread(target=self._loop, name="panorama-sampler", daemon=True)
        self._thread.start()

    def _loop(self) -> None:
        while not self._stop.wait(self.interval):
            self.sample()

    def sample(self) -> None:
        now, cpu, batches = time.perf_counter(), _cpu_seconds(), self.rt.batches
        t, c, b = self._last
        dt = max(now - t, 1e-9)
        self._last = (now, cpu, batches)
        self.samples.append({"t": now - self._t0, "cpu_percent": (cpu - c) / dt * 100.0,
                             "rss_mib": _rss_mib(), "batches_per_s": (batches - b) / dt})

    def finish(self) -> List[dict]:
        self._stop.set()
        self._thread.join(5.0)  # it wakes at once; a sample under way is finished first
        if time.perf_counter() - self._last[0] > self.interval / 10:
            self.sample()  # the tail of the run since the last sample
        return self.samples


def _keep_frames_in_the_heap() -> None:
    """Every camera frame is a fresh buffer of several MB (6 MB at 1080p) that the app's
    numpy array frees again. glibc serves blocks that large with mmap and unmaps them when
    freed (or trims them off the heap), so each frame cost a new mapping and a page fault per
    4 KiB page: a quarter of the CPU of a 4-camera 1080p run. Served from the heap and kept
    there (up to 32 MB a block, 128 MB free before trimming), freed frames are reused.
    No-op where the C library has no mallopt (not glibc)."""
    try:
        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError):
        return
    m_trim_threshold, m_mmap_threshold = -1, -3
    mallopt(m_mmap_threshold, 32 << 20)
    mallopt(m_trim_threshold, 128 << 20)


def _watch_logging(last: _LastError) -> None:
    """Shows ``last`` every record any logger hands to its handlers, without adding a handler
    to the root logger (an app's ``logging.basicConfig(filename=...)`` does nothing when the
    root logger has one)."""
    handlers = logging.Logger.callHandlers

    def call_handlers(self, record):
        if record.levelno >= last.level:
            last.handle(record)
        return handlers(self, record)

    logging.Logger.callHandlers = call_handlers


class Runtime:
    """What the SDK classes call into while an application runs."""

    def __init__(self, app: _graph.App, node, cameras: List[str], uris: Dict[str, str],
                 served, hdmi, sinks, virtual: bool):
        self.app = app
        self.node = node
        self.camera_names = cameras
        self.uris = uris
        self.served = served
        self.hdmi = hdmi
        self.sinks = sinks
        self.virtual = virtual
        self.inputs = {}
        for name, cams in app.cameras.items():
            if cams:
                self.inputs[name] = port(name, "media")
        for name, value in app.params.items():
            self.inputs[name] = port(name, "param", value)
        self.outputs = {name: port(name, "output") for name in app.outputs}
        self.ended = False
        #: Why the cameras stopped, when they failed (a source that cannot be read).
        self.camera_error: Optional[str] = None
        #: The app's last logged error (set by run()).
        self.last: Optional[_LastError] = None
        self.gets = 0
        self.gets_after_end = 0
        self.batches = 0
        self.puts = 0
        self.first_get = threading.Event()
        self.started = time.perf_counter()
        #: CPU the process had used when the run started (imports, model loading).
        self.cpu_at_start = _cpu_seconds()
        self.loop_times: List[float] = []
        self._last_get: Optional[float] = None
        self.hdmi_frames = 0
        self.sink_frames: Dict[str, int] = {}
        self.sampler: Optional[_Sampler] = None
        self._camera_ports = {p: set(c) for p, c in app.cameras.items()}
        self._lock = threading.Lock()
        #: Cameras paused until a capture time (us): onSignal cameras given --resume.
        self.resume_us: Dict[str, int] = {}
        #: Per paused camera, the fresh frames and cached repeats kept from the app.
        self.withheld: Dict[str, List[int]] = {}

    # -- input -------------------------------------------------------------------------------
    def get(self, port_name: str, timeout: Optional[float]):
        self.first_get.set()
        with self._lock:
            self.gets += 1
            if self.ended:
                self.gets_after_end += 1
                if self.gets_after_end >= _GETS_AFTER_END:
                    self._end_swallowed()
                raise EndOfStream()
            now = time.perf_counter()
            if self._last_get is not None:
                self.loop_times.append(now - self._last_get)
            self._last_get = now
        deadline = None if timeout is None else time.monotonic() + timeout
        wanted = self._camera_ports.get(port_name, set())
        while True:
            left = None if deadline is None else max(deadline - time.monotonic(), 0.0)
            try:
                batch = self.node.next(left)
            except TimeoutError:
                raise TimeoutException(f"no frame within {timeout} s") from None
            except RuntimeError as e:  # a camera failed: the end, and the run's failure
                self.camera_error = str(e)
                self.ended = True
                raise
            if batch is None:
                self.ended = True
                raise EndOfStream()
            out = []
            for stream_id, image, capture_us, is_cached, index in batch:
                if stream_id not in wanted:
                    continue
                if capture_us < self.resume_us.get(stream_id, 0):
                    # Paused (launch onSignal, not resumed yet): the app does not see it.
                    self.withheld[stream_id][1 if is_cached else 0] += 1
                    continue
                out.append(media(image, stream_id, self.uris.get(stream_id, ""),
                                 (capture_us // 1_000_000, capture_us % 1_000_000),
                                 bool(is_cached), index))
            if out or not wanted:
                self.batches += 1
                return out
            self.node.done()  # every camera of the port is paused: as if nothing came

    def _end_swallowed(self) -> None:
        """The app catches the end (a bare ``except:`` in a loop that calls get() again, as
        apps written for a camera that never ends do): the run ends here, a success when
        every frame went through and the app logged no error."""
        what = "the app kept calling get() after its cameras ended (it catches the end signal)"
        if self.camera_error is not None:
            _finish_now(self, f"the cameras failed: {self.camera_error}")
        last = self.last.last if self.last is not None else None
        if last is not None:
            _finish_now(self, f"{what}; its last logged error: {last}")
        _finish_now(self, f"{what}; ended it there", outcome="ok")

    # -- output ------------------------------------------------------------------------------
    def put(self, port_name: str, streams: List[media]):
        from telescope import annotation

        self.puts += 1
        if self.hdmi is None and not self.sinks:
            self.node.done()  # nothing watches: nothing to draw
            return
        rendered = []
        for m in streams:
            frame = m.image
            items = [annotation.Rect(rect=r, color="#00ff00", thickness=2) for r in m._rects]
            items += [annotation.Label(text=t, at=(x, y), color="#ffffff", size=0.035,
                                       background="#000000") for t, x, y in m._labels]
            if items:
                # Drawn on a copy: annotations are metadata, the app's image stays as it is.
                frame = frame.copy()
                annotation.render(annotation.Scene(items), frame)
            rendered.append((m, frame))
        for m, frame in rendered:
            t = self.sinks.get(m.stream_id)
            if t is not None:
                t.put(frame, timestamp=_seconds(m.time_stamp), block=self.virtual)
                self.sink_frames[m.stream_id] = self.sink_frames.get(m.stream_id, 0) + 1
        if self.hdmi is not None:
            tiled = tile([f for _, f in rendered])
            self.hdmi.put(tiled, timestamp=max(_seconds(m.time_stamp) for m in streams),
                          block=self.virtual)
            self.hdmi_frames += 1
        self.node.done()

    # -- models ------------------------------------------------------------------------------
    def call(self, name: str, inputs, timeout):
        served = self.served.get(name)
        if served is None:
            raise KeyError(f"no model node `{name}` in the application (model nodes: "
                           f"{', '.join(self.served) or 'none'})")
        return served(inputs)


def _seconds(ts) -> float:
    return ts[0] + ts[1] / 1e6


def tile(frames: List[np.ndarray]) -> np.ndarray:
    """The HDMI picture: frames in a grid (columns = ceil(sqrt(n))) the size of the first,
    each scaled to fit its tile (nearest neighbour)."""
    if len(frames) == 1:
        return frames[0]
    h, w = frames[0].shape[:2]
    cols = int(np.ceil(np.sqrt(len(frames))))
    rows = int(np.ceil(len(frames) / cols))
    th, tw = h // rows, w // cols
    out = np.zeros((h, w, 3), np.uint8)
    for i, f in enumerate(frames):
        r, c = divmod(i, cols)
        out[r * th:(r + 1) * th, c * tw:(c + 1) * tw] = _nearest(f, th, tw)
    return out


def _nearest(f: np.ndarray, th: int, tw: int) -> np.ndarray:
    """``f`` (HxWx3 uint8) scaled to ``th`` x ``tw``, nearest neighbour. Whole rows are
    taken first, then the columns' bytes: indexing pixel by pixel (``f[ys][:, xs]``) made
    tiling four 1080p frames cost 200 ms."""
    fh, fw = f.shape[:2]
    ys = (np.arange(th) * fh // th).clip(0, fh - 1)
    xs = (np.arange(tw) * fw // tw).clip(0, fw - 1)
    rows = np.take(np.ascontiguousarray(f).reshape(fh, fw * 3), ys, axis=0)
    columns = (xs[:, None] * 3 + np.arange(3)[None, :]).ravel()
    return np.take(rows, columns, axis=1).reshape(th, tw, 3)


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m panoramasdk run", allow_abbrev=False,
        description="Run an unmodified Panorama application (graphs/, packages/) on the "
                    "simulator: cameras replay footage, models are served locally.",
    )
    p.add_argument("app_dir", help="the application directory (graphs/APP/graph.json, packages/)")
    p.add_argument("--override", action="append", default=[], metavar="FILE",
                   help="an override manifest (nodeGraphOverrides), e.g. for more cameras")
    p.add_argument("--camera", action="append", default=[], metavar="NODE=SOURCE",
                   help="a camera node's source: a file, rtsp://, images:DIR[@RATE], "
                        "pattern:NAME[@WxH][@RATE]; SOURCE alone serves every camera")
    p.add_argument("--cameras", type=int, metavar="N",
                   help="N cameras in place of the graph's one camera node (NODE_1..NODE_N), "
                        "sources reused in turn")
    p.add_argument("--resume", action="append", default=[], metavar="NODE@SECONDS",
                   help="keep a camera launched onSignal paused (its frames kept from the app) "
                        "until SECONDS of node time, when the appliance would get "
                        "SignalApplicationInstanceNodeInstances RESUME; without it onSignal "
                        "cameras start with the run")
    p.add_argument("--model", action="append", default=[], metavar="NODE=MODEL",
                   help="serve a model node: FILE.onnx (ONNX Runtime) or module:function")
    p.add_argument("--hdmi", metavar="SINK", help="stream the HDMI output (tiled cameras with "
                   "annotations) to a Telescope sink, e.g. file:hdmi.mkv")
    p.add_argument("--sink", action="append", default=[], metavar="SINK",
                   help="stream each camera's output to a sink; {camera} names the camera")
    p.add_argument("--report", metavar="DIR",
                   help="write report.json there (telescope run-app also writes report.html; "
                        "`telescope report DIR` renders it from report.json)")
    p.add_argument("--sample-ms", type=int, default=1000, metavar="MS",
                   help="sampling interval for CPU, memory and batches per second over time")
    p.add_argument("--run-dir", default="panorama-run", metavar="DIR",
                   help="where /opt/aws/panorama/logs and /storage are kept (default ./panorama-run)")
    p.add_argument("--virtual-clock", action="store_true",
                   help="simulated time: as fast as the app goes, reproducible for a seed")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--duration", type=float, metavar="SECONDS")
    p.add_argument("--loops", type=int, default=1, help="passes over each source (0: forever)")
    p.add_argument("--jitter-ms", type=float)
    p.add_argument("--jitter-dist", choices=["uniform", "normal"], default="uniform")
    p.add_argument("--drop", type=float, default=0.0)
    p.add_argument("--drop-burst", type=int, default=1)
    p.add_argument("--stall-every", type=float, metavar="SECONDS")
    p.add_argument("--stall-ms", type=int, default=0)
    p.add_argument("--camera-fps", metavar="RATE")
    p.add_argument("--budget-cpu", type=float, metavar="PCT",
                   help="budget: CPU of the whole run, percent of one core per camera")
    p.add_argument("--budget-rss", type=float, metavar="MIB", help="budget: peak resident memory")
    p.add_argument("--budget-loop-p99-ms", type=float, metavar="MS",
                   help="budget: the app's loop time per batch, 99th percentile")
    p.add_argument("--get-timeout", type=float, default=30.0, metavar="SECONDS",
                   help="an app that has not called get() by then is ended (default 30)")
    p.add_argument("--region", default=os.environ.get("AWS_REGION", "us-east-1"))
    return p


class RunError(Exception):
    """A run that cannot start or went wrong: one line, exit code 2."""


def _sources(args, cameras: List[str], app: _graph.App) -> Dict[str, str]:
    named, anonymous = {}, []
    for c in args.camera:
        node_, eq, src = c.partition("=")
        if eq and node_ and "://" not in node_ and ":" not in node_:
            named[node_] = src
        else:
            anonymous.append(c)
    bases = {c.rsplit("_", 1)[0] for c in cameras} if args.cameras else set()
    for n in named:
        if n not in cameras and n not in bases:
            raise RunError(f"--camera {n}=...: no camera node `{n}` (cameras: {', '.join(cameras)})")
    out = {}
    for i, cam in enumerate(cameras):
        base = cam.rsplit("_", 1)[0] if args.cameras else cam
        src = named.get(cam) or named.get(base) or app.camera_urls.get(base)
        if src is None and anonymous:
            src = anonymous[i % len(anonymous)]
        if src is None and named and args.cameras:
            vals = list(named.values())
            src = vals[i % len(vals)]
        if not src:
            raise RunError(f"camera node `{cam}` has no source: give --camera {cam}=FILE "
                           "(or rtsp://, images:DIR, pattern:NAME)")
        out[cam] = src
    return out


def _resume(args, cameras: List[str], app: _graph.App) -> Dict[str, float]:
    """``--resume NODE@SECONDS``: onSignal cameras kept paused until then (node time)."""
    out = {}
    for r in args.resume:
        cam, at, when = r.rpartition("@")[0], r.rpartition("@")[1], r.rpartition("@")[2]
        try:
            seconds = float(when)
        except ValueError:
            seconds = -1.0
        if not at or not cam or not seconds >= 0 or seconds == float("inf"):
            raise RunError(f"--resume {r}: expected NODE@SECONDS (seconds of node time, >= 0)")
        if cam not in cameras:
            raise RunError(f"--resume {r}: no camera node `{cam}` (cameras: {', '.join(cameras)})")
        base = cam.rsplit("_", 1)[0] if args.cameras else cam
        if cam not in app.on_signal and base not in app.on_signal:
            raise RunError(f"--resume {r}: camera `{cam}` is not launched onSignal (only "
                           "those wait for a signal)")
        out[cam] = seconds
    for cam in cameras:
        base = cam.rsplit("_", 1)[0] if args.cameras else cam
        if cam in out:
            app.notes.append(f"camera `{cam}` (launch onSignal) stays paused until "
                             f"{out[cam]:g} s of node time (--resume), its frames kept from "
                             "the app")
        elif cam in app.on_signal or base in app.on_signal:
            app.notes.append(
                f"camera `{cam}` has launch onSignal: on the appliance it sends nothing until "
                "SignalApplicationInstanceNodeInstances resumes it; the simulator has no "
                "signal API and starts it with the run, as if resumed at once (--resume "
                f"{cam}@SECONDS keeps it paused until then)")
    return out


def _cameras(args, app: _graph.App) -> List[str]:
    cams = app.all_cameras()
    if not cams:
        raise RunError(f"the graph {app.graph_path} connects no camera to the code node")
    if args.cameras:
        if len(cams) != 1:
            raise RunError(f"--cameras needs a graph with one camera node, not {len(cams)}")
        if args.cameras < 1:
            raise RunError("--cameras must be at least 1")
        base = cams[0]
        names = [f"{base}_{i + 1}" for i in range(args.cameras)]
        for p, c in app.cameras.items():
            if base in c:
                app.cameras[p] = names
        return names
    return cams


def _telescope_sink(spec: str, camera: str):
    import telescope

    return telescope.Telescope(sinks=[spec.replace("{camera}", camera)])


_active: Optional[Runtime] = None
_result: Dict[str, object] = {}


def _report(rt: Runtime, node_report: Optional[dict], outcome: str, message: str,
            args) -> dict:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    cpu = usage.ru_utime + usage.ru_stime
    cams = []
    for c in (node_report or {}).get("cameras", []):
        c = dict(c)
        c["sink_frames"] = rt.sink_frames.get(c["name"], 0)
        c["source"] = rt.uris.get(c["name"], "")
        if c["name"] in rt.withheld:  # an onSignal camera: what it sent while paused
            fresh, cached = rt.withheld[c["name"]]
            c["delivered"] -= fresh
            c["cached"] -= cached
            c["paused_frames"] = fresh
        cams.append(c)
    models = {name: {"calls": len(s.times), "how": s.how, **percentiles(s.times)}
              for name, s in rt.served.items()}
    loop = percentiles(rt.loop_times)
    return {
        "schema_version": 1,
        "command": "run-app",
        "app": rt.app.root,
        "outcome": outcome,
        "message": message,
        "cameras": cams,
        "models": models,
        "loop_ms": loop,
        "batches": rt.batches,
        "puts": rt.puts,
        "hdmi_frames": rt.hdmi_frames,
        "cpu_seconds": cpu,
        "run_cpu_seconds": cpu - rt.cpu_at_start,
        "wall_seconds": time.perf_counter() - rt.started,
        "timeline": rt.sampler.finish() if rt.sampler is not None else [],
        "notes": rt.app.notes,
        "peak_rss_mib": usage.ru_maxrss / 1024.0,
        "cpu_ms_per_batch": ((cpu - rt.cpu_at_start) * 1000.0 / rt.batches) if rt.batches else None,
        "iterations": (node_report or {}).get("iterations"),
        "elapsed_s": (node_report or {}).get("elapsed"),
        "virtual_clock": bool(args.virtual_clock),
        "seed": args.seed,
    }


def _close(rt: Runtime, outcome: str, message: str, args) -> int:
    try:
        node_report = rt.node.stop()
    except RuntimeError as e:
        node_report = None
        if outcome == "ok":
            outcome, message = "error", f"the cameras failed: {e}"
    for t in [rt.hdmi, *rt.sinks.values()]:
        if t is None:
            continue
        try:
            t.stop()
        except Exception as e:  # a sink that failed: the run failed
            if outcome == "ok":
                outcome, message = "error", f"a sink failed: {e}"
    report = _report(rt, node_report, outcome, message, args)
    report["verdicts"] = _verdicts(rt, report, args)
    if args.report:
        os.makedirs(args.report, exist_ok=True)
        with open(os.path.join(args.report, "report.json"), "w") as f:
            json.dump(report, f, indent=2)
        if not os.environ.get("TELESCOPE_RUN_APP"):  # (telescope run-app renders it itself)
            print(f"run-app: report {os.path.join(args.report, 'report.json')} (the page: "
                  f"telescope report {args.report})", flush=True)
    cams = ", ".join(f"{c['name']}: {c['delivered']} delivered, {c['superseded']} superseded, "
                     f"{c['cached']} cached" for c in report["cameras"])
    summary = f"run-app: {report['batches']} batches, {report['puts']} put" + (
        f"; {cams}" if cams else "")
    if report["models"]:
        summary += "; " + ", ".join(
            f"{n}: {m['calls']} calls p50 {m['p50_ms'] or 0:.2f} ms"
            for n, m in report["models"].items())
    print(summary, file=sys.stderr if outcome != "ok" else sys.stdout, flush=True)
    if outcome != "ok":
        print(f"run-app: {message}", file=sys.stderr, flush=True)
        return 2
    if message:
        print(f"run-app: {message}", flush=True)
    for v in report["verdicts"]:
        print(f"budget {v['budget']}: {v['measured']:.2f} {v['unit']} measured, limit "
              f"{v['limit']:g} -> {'pass' if v['pass'] else 'FAIL'}", flush=True)
    if not all(v["pass"] for v in report["verdicts"]):
        print("run-app: a budget was broken", file=sys.stderr, flush=True)
        return 1
    return 0


def _verdicts(rt: Runtime, report: dict, args) -> List[dict]:
    """The run judged against the budgets given (exit code 1 when one is broken, as replay)."""
    out = []

    def judge(name, measured, limit, unit):
        if limit is not None and measured is not None:
            out.append({"budget": name, "measured": float(measured), "limit": float(limit),
                        "unit": unit, "pass": float(measured) <= float(limit)})

    wall = max(report["wall_seconds"], 1e-9)
    cameras = max(len(rt.camera_names), 1)
    judge("cpu", report["run_cpu_seconds"] / wall / cameras * 100.0, args.budget_cpu,
          "% of a core per camera")
    judge("rss", report["peak_rss_mib"], args.budget_rss, "MiB")
    judge("loop p99", report["loop_ms"]["p99_ms"], args.budget_loop_p99_ms, "ms")
    return out


def _join_app_threads(ours) -> None:
    while True:
        alive = [t for t in threading.enumerate()
                 if t not in ours and not t.daemon and t.is_alive()
                 and t is not threading.current_thread()]
        if not alive:
            return
        for t in alive:
            t.join()


def _finish_now(rt: Runtime, message: str, outcome: str = "error") -> None:
    """Ends the process from wherever the app is (its own threads may keep it alive)."""
    code = _close(rt, outcome, message, _result["args"])
    _entry.record(code)
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


def run(argv: Optional[List[str]] = None, entry=None) -> int:
    """The runner; ``entry`` (script, module, arguments) is the program an entry script
    started with ``python3`` (see ``_entry``), else the descriptor's entry is run."""
    argv = list(sys.argv[1:] if argv is None else argv)
    args = parser().parse_args(argv)
    try:
        code = _run(args, argv, entry)
    except (GraphError, ModelError, RunError, ValueError) as e:
        print(f"run-app: {e}", file=sys.stderr)
        code = 2
    except Exception as e:  # a sink or camera that cannot start: still one line
        print(f"run-app: {type(e).__name__}: {e}", file=sys.stderr)
        code = 2
    _entry.record(code)
    return code


def _mapping(app: _graph.App, args) -> Dict[str, str]:
    run_dir = os.path.abspath(args.run_dir)
    return {
        "/opt/aws/panorama/logs": os.path.join(run_dir, "logs"),
        "/opt/aws/panorama/storage": os.path.join(run_dir, "storage"),
        "/panorama": app.code_dir,
    }


def _run_script(args, argv: List[str], app: _graph.App) -> int:
    """A shell entry point: the script runs with the appliance's paths mapped, its
    ``python3 APP.py`` being the runtime (see ``_entry``)."""
    mapping = _mapping(app, args)
    for real in mapping.values():
        os.makedirs(real, exist_ok=True)
    script = _paths.translate_with(app.entry[1], mapping)
    code, shell_code = _entry.run_shell(app.entry[0], script, app.entry[2:], mapping,
                                        os.path.abspath(args.run_dir), argv)
    if code is None:
        raise RunError(f"the entry script `{' '.join(app.entry)}` exited with {shell_code} "
                       "without starting the app (it must run python3 /panorama/APP.py)")
    return code


def _run(args, argv: List[str], entry=None) -> int:
    import telescope
    from telescope import _native

    external = [c.partition("=")[0] for c in args.camera if "=" in c]
    app = _graph.load(args.app_dir, args.override, external)
    how = _entry.kind(app.entry[0])
    if how is None:
        raise RunError(f"entry `{' '.join(app.entry)}`: `{app.entry[0]}` is neither a Python "
                       f"interpreter (python3, python3.8...) nor a shell ({', '.join(_entry.SHELLS)})")
    cameras = _cameras(args, app)
    uris = _sources(args, cameras, app)
    given = {}
    for m in args.model:
        n, eq, spec = m.partition("=")
        if not eq:
            raise RunError(f"--model {m}: expected NODE=FILE.onnx or NODE=module:function")
        given[n] = spec
    sys.path.insert(0, app.code_dir)  # a callable model may live beside the app's code
    served = _models.serve(app.models, given)
    for spec in args.sink:
        if len(cameras) > 1 and "{camera}" not in spec:
            raise RunError(f"--sink {spec}: several cameras need {{camera}} in the sink")
    resume = _resume(args, cameras, app)
    if how == "shell" and entry is None:
        return _run_script(args, argv, app)
    for note in app.notes:
        print(f"run-app: note: {note}", flush=True)
    forwards = _network.forward(app.routes)
    for note in forwards.notes:
        print(f"run-app: note: {note}", flush=True)
        app.notes.append(note)
    _paths.install(_mapping(app, args))
    os.environ.setdefault("AWS_REGION", args.region)
    os.environ.setdefault("AppGraph_Uid", "applicationInstance-telescope-simulator")
    os.environ.update(app.environment)
    _keep_frames_in_the_heap()
    node = _native.Node(
        [(c, uris[c]) for c in cameras],
        virtual_clock=args.virtual_clock, seed=args.seed, duration=args.duration,
        loops=args.loops, jitter_ms=args.jitter_ms,
        normal_jitter=args.jitter_dist == "normal", drop=args.drop, drop_burst=args.drop_burst,
        stall_every=args.stall_every, stall_ms=args.stall_ms, camera_fps=args.camera_fps)
    hdmi = telescope.Telescope(sinks=[args.hdmi]) if args.hdmi else None
    sinks = {}
    for spec in args.sink:
        for c in cameras:
            sinks[c] = _telescope_sink(spec, c)
    for t in [hdmi, *sinks.values()]:
        if t is not None:
            t.start()
    rt = Runtime(app, node, cameras, uris, served, hdmi, sinks, args.virtual_clock)
    for cam, at in resume.items():
        rt.resume_us[cam] = int(at * 1e6)
        rt.withheld[cam] = [0, 0]
    rt.sampler = _Sampler(rt, max(args.sample_ms, 10) / 1000.0)
    _result["args"] = args
    panoramasdk._runtime = rt
    last = _LastError()
    _watch_logging(last)
    rt.last = last

    def watchdog():
        if not rt.first_get.wait(args.get_timeout):
            _finish_now(rt, f"the app did not call video_in.get() within {args.get_timeout:g} s "
                            "(see --get-timeout)")

    threading.Thread(target=watchdog, name="panorama-watchdog", daemon=True).start()
    script, module, script_args = entry or (app.entry[1], None, app.entry[2:])
    if script is not None:
        script = _paths.translate(script)
        here = os.path.dirname(os.path.abspath(script))
        if here not in sys.path:
            sys.path.insert(0, here)  # as python puts a script's directory first
    sys.argv = [script or module, *script_args]
    outcome, message = "ok", ""
    ours = set(threading.enumerate())
    try:
        if module is not None:
            runpy.run_module(module, run_name="__main__", alter_sys=True)
        else:
            runpy.run_path(script, run_name="__main__")
    except EndOfStream:
        pass
    except SystemExit as e:
        if e.code not in (None, 0) and not rt.ended:
            outcome, message = "error", f"the app exited with {e.code}" + (
                f" (last logged error: {last.last})" if last.last else "")
    except BaseException as e:  # the app's own failure: shown with its traceback
        if rt.camera_error is None:  # (a camera's failure that reached the app is not)
            traceback.print_exc()
        where = "at import" if rt.gets == 0 else f"at batch {rt.batches}"
        outcome, message = "error", f"the app raised {where}: {type(e).__name__}: {e}"
    if outcome == "ok" and not rt.ended:
        # The main script may start its loop in threads and return: the process lives on
        # while they do (as Python waits for non-daemon threads at exit).
        _join_app_threads(ours)
    if rt.camera_error is not None:
        outcome, message = "error", f"the cameras failed: {rt.camera_error}"
    elif outcome == "ok" and not rt.ended:
        message = f"the app returned at batch {rt.batches} before its cameras ended"
        if last.last:
            message += f" (last logged error: {last.last})"
        outcome = "error"
    return _close(rt, outcome, message, args)


def main(argv: Optional[List[str]] = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0] == "_entry":
        return _entry.main(argv[1:])
    if not argv or argv[0] != "run":
        print("usage: python -m panoramasdk run APP_DIR [options] (see run --help)",
              file=sys.stderr)
        return 2
    return run(argv[1:])
