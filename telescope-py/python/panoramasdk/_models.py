"""Model serving without SageMaker Neo: an ONNX file run with ONNX Runtime, or a Python
callable ``fn(inputs: dict) -> tuple[ndarray, ...]`` standing in for a model. Each call is
timed per model."""

from __future__ import annotations

import importlib
import os
import threading
import time
from typing import Callable, Dict, List, Optional, Tuple

import numpy as np

from panoramasdk._graph import GraphError, Model


class ModelError(Exception):
    """A model cannot be loaded or called."""


class Served:
    """One model node, served."""

    def __init__(self, model: Model, run: Callable[[dict], tuple], how: str):
        self.model = model
        self.how = how
        self._run = run
        self.times: List[float] = []
        self._lock = threading.Lock()

    def shape_inputs(self, inputs) -> Dict[str, np.ndarray]:
        """Checks ``inputs`` (a dict, an ndarray or a media) against the descriptor."""
        declared = self.model.inputs
        if not isinstance(inputs, dict):
            image = getattr(inputs, "image", inputs)
            if len(declared) != 1:
                raise ValueError(
                    f"model `{self.model.node}` takes {len(declared)} inputs "
                    f"({', '.join(n for n, _ in declared)}): pass a dict"
                )
            inputs = {declared[0][0]: image}
        out = {}
        names = {n for n, _ in declared}
        for k in inputs:
            if declared and k not in names:
                raise ValueError(
                    f"model `{self.model.node}` has no input `{k}` (descriptor inputs: "
                    f"{', '.join(sorted(names))})"
                )
        for name, shape in declared:
            if name not in inputs:
                raise ValueError(f"model `{self.model.node}`: input `{name}` is missing")
            a = np.asarray(inputs[name])
            if list(a.shape) != shape:
                if a.size != int(np.prod(shape)):
                    raise ValueError(
                        f"model `{self.model.node}`: input `{name}` has shape {list(a.shape)}, "
                        f"the descriptor says {shape}"
                    )
                a = a.reshape(shape)
            out[name] = a
        if not declared:
            out = {k: np.asarray(v) for k, v in inputs.items()}
        return out

    def __call__(self, inputs) -> Tuple[np.ndarray, ...]:
        feed = self.shape_inputs(inputs)
        start = time.perf_counter()
        result = self._run(feed)
        took = time.perf_counter() - start
        with self._lock:
            self.times.append(took)
        if isinstance(result, np.ndarray):
            result = (result,)
        try:
            return tuple(np.asarray(r) for r in result)
        except TypeError:
            raise ModelError(
                f"model `{self.model.node}` ({self.how}) returned {type(result).__name__}, "
                "not a tuple of arrays"
            ) from None


def _onnx(model: Model, path: str) -> Served:
    try:
        import onnxruntime as ort
    except ImportError:
        raise ModelError(
            f"model node `{model.node}`: serving {path} needs onnxruntime (pip install onnxruntime)"
        ) from None
    try:
        session = ort.InferenceSession(path, providers=["CPUExecutionProvider"])
    except Exception as e:  # onnxruntime raises its own exception types
        raise ModelError(f"model node `{model.node}`: cannot load {path}: {e}") from None
    names = [o.name for o in session.get_outputs()]
    types = {i.name: i.type for i in session.get_inputs()}

    def run(feed: dict) -> tuple:
        cast = {}
        for k, v in feed.items():
            t = types.get(k, "")
            if "float16" in t:
                v = v.astype(np.float16)
            elif "float" in t and v.dtype != np.float32:
                v = v.astype(np.float32)
            elif "uint8" in t and v.dtype != np.uint8:
                v = v.astype(np.uint8)
            cast[k] = v
        return tuple(session.run(names, cast))

    return Served(model, run, f"ONNX {path}")


def _callable(model: Model, spec: str) -> Served:
    module, _, attr = spec.partition(":")
    if not module or not attr:
        raise ModelError(f"model node `{model.node}`: `{spec}` is not module:function")
    try:
        fn = getattr(importlib.import_module(module), attr)
    except ImportError as e:
        raise ModelError(f"model node `{model.node}`: cannot import {module}: {e}") from None
    except AttributeError:
        raise ModelError(f"model node `{model.node}`: {module} has no `{attr}`") from None
    if not callable(fn):
        raise ModelError(f"model node `{model.node}`: {spec} is not callable")
    return Served(model, fn, f"callable {spec}")


def serve(models: Dict[str, Model], given: Dict[str, object]) -> Dict[str, Served]:
    """Serves every model node: ``given`` maps node names to an ``.onnx`` path, a
    ``module:function`` string, or a callable."""
    for name in given:
        if name not in models:
            raise GraphError(
                f"a model is given for `{name}`, which is not a model node of the graph "
                f"(model nodes: {', '.join(models) or 'none'})"
            )
    served = {}
    for name, m in models.items():
        spec = given.get(name)
        if spec is None:
            raise ModelError(
                f"model node `{name}` has no model: give an ONNX file (--model {name}=FILE.onnx) "
                f"or a Python callable (--model {name}=module:function)"
            )
        if callable(spec):
            served[name] = Served(m, spec, f"callable {getattr(spec, '__name__', 'fn')}")
        elif isinstance(spec, str) and spec.endswith(".onnx"):
            if not os.path.isfile(spec):
                raise ModelError(f"model node `{name}`: ONNX file not found: {spec}")
            served[name] = _onnx(m, spec)
        elif isinstance(spec, str):
            served[name] = _callable(m, spec)
        else:
            raise ModelError(f"model node `{name}`: {spec!r} is not a file, module:function or callable")
    return served


def percentiles(times: List[float]) -> Dict[str, object]:
    """p50/p99/max of durations in seconds, in ms, and their histogram (``histogram_ms``:
    ``[upper bound ms, count]`` in the log buckets replay's report uses)."""
    if not times:
        return {"p50_ms": None, "p99_ms": None, "max_ms": None, "histogram_ms": []}
    a = np.sort(np.asarray(times)) * 1000.0
    return {"p50_ms": float(np.percentile(a, 50)), "p99_ms": float(np.percentile(a, 99)),
            "max_ms": float(a[-1]), "histogram_ms": log_histogram_ms(times)}


def log_histogram_ms(times: List[float]) -> List[List[float]]:
    """Durations (seconds) counted in logarithmic microsecond buckets, four per power of two
    (the buckets of replay's put-latency histogram), bounds in ms."""
    buckets: Dict[int, int] = {}
    for t in times:
        v = max(int(round(t * 1e6)), 0)
        if v < 4:
            bound = v
        else:
            k = v.bit_length() - 3
            bound = -(-v // (1 << k)) << k
        buckets[bound] = buckets.get(bound, 0) + 1
    return [[b / 1000.0, n] for b, n in sorted(buckets.items())]
