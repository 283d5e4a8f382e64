"""``panoramasdk`` for the Telescope simulator: run unmodified AWS Panorama applications.

The classes are those of the appliance's application SDK (``node``, ``port``, ``media``),
backed by Telescope's simulated Panorama node: cameras replay footage with the timing of real
ones, models are served locally (ONNX Runtime, or a Python callable), and what the app puts
on its HDMI output is streamed to Telescope sinks. Start an application with

    python -m panoramasdk run APP_DIR --camera camera_node=footage.mp4 --model model_node=m.onnx

(or ``telescope run-app``, the same thing); see ``python -m panoramasdk run --help``.
"""

from __future__ import annotations

import threading
from typing import List, Optional

import numpy as np

__all__ = ["node", "port", "media", "TimeoutException", "EndOfStream"]


class TimeoutException(TimeoutError):
    """``get(timeout=...)`` saw no frame in time (the SDK's name; a ``TimeoutError``)."""


class EndOfStream(BaseException):
    """The cameras have ended. Not an ``Exception``: ``except Exception`` does not swallow it."""


_runtime = None  # set by panoramasdk._run before the application is imported


def _rt():
    if _runtime is None:
        raise RuntimeError(
            "panoramasdk runs applications under the simulator: "
            "python -m panoramasdk run APP_DIR (or telescope run-app APP_DIR)"
        )
    return _runtime


def _unit(v, what: str) -> float:
    """A normalized coordinate in [0, 1]; anything else is a ``ValueError``, as the appliance's
    SDK raises (NumPy scalars are numbers too)."""
    try:
        f = float(v)
    except (TypeError, ValueError):
        raise ValueError(f"{what} {v!r} is not a number") from None
    if not 0.0 <= f <= 1.0:  # NaN included
        raise ValueError(f"{what} {f} is outside [0, 1] (coordinates are normalized)")
    return f


class media:
    """One camera frame: ``image`` (BGR uint8 HxWx3, writable), ``stream_id`` (the camera
    node), ``stream_uri``, ``time_stamp`` ((seconds, microseconds) of capture), ``is_cached``
    (the camera had no new frame for this batch). ``add_label``/``add_rect`` are metadata drawn
    on the outputs, not into ``image``."""

    __slots__ = ("_image", "stream_id", "stream_uri", "time_stamp", "is_cached", "_labels",
                 "_rects", "frame_index")

    def __init__(self, image, stream_id="", stream_uri="", time_stamp=(0, 0), is_cached=False,
                 frame_index=0):
        self._image = None
        self.image = image
        self.stream_id = stream_id
        self.stream_uri = stream_uri
        self.time_stamp = time_stamp
        self.is_cached = is_cached
        self.frame_index = frame_index
        self._labels: List[tuple] = []
        self._rects: List[tuple] = []

    @property
    def image(self) -> np.ndarray:
        return self._image

    @image.setter
    def image(self, value) -> None:
        a = np.asarray(value)
        if a.dtype != np.uint8 or a.ndim != 3 or a.shape[2] != 3:
            raise ValueError(f"media.image must be uint8 HxWx3 BGR, not {a.dtype} {a.shape}")
        self._image = np.ascontiguousarray(a)

    def add_label(self, text, x, y) -> None:
        # The renderer draws at most 1024 characters of a label: the rest is cut, not an error.
        self._labels.append((str(text)[:1024], _unit(x, "label x"), _unit(y, "label y")))

    def add_rect(self, x1, y1, x2, y2) -> None:
        x1, y1 = _unit(x1, "rect x1"), _unit(y1, "rect y1")
        x2, y2 = _unit(x2, "rect x2"), _unit(y2, "rect y2")
        # Corners in either order, as cv2.rectangle takes them.
        self._rects.append((min(x1, x2), min(y1, y2), max(x1, x2), max(y1, y2)))

    def __repr__(self) -> str:
        h, w = self._image.shape[:2]
        return f"media(stream_id={self.stream_id!r}, {w}x{h}, time_stamp={self.time_stamp}, is_cached={self.is_cached})"


class port:
    """A port of the code node: ``get`` on inputs, ``put`` on outputs."""

    def __init__(self, name: str, kind: str, value=None):
        self.name = name
        self._kind = kind
        self._value = value

    def get(self, timeout: Optional[float] = None):
        if self._kind == "output":
            raise ValueError(f"`{self.name}` is an output port: use put()")
        if self._kind == "param":
            return self._value
        return _rt().get(self.name, timeout)

    def put(self, data) -> None:
        if self._kind != "output":
            raise ValueError(f"`{self.name}` is an input port: use get()")
        if isinstance(data, media):
            data = [data]
        data = list(data)
        if not data:
            raise ValueError("put() needs at least one media")
        for m in data:
            if not isinstance(m, media):
                raise ValueError(f"put() takes media objects, not {type(m).__name__}")
        _rt().put(self.name, data)

    def __repr__(self) -> str:
        return f"port({self.name!r})"


class _Ports:
    def __init__(self, ports: dict, what: str):
        self.__dict__["_ports"] = ports
        self.__dict__["_what"] = what

    def __getattr__(self, name):
        try:
            return self._ports[name]
        except KeyError:
            raise AttributeError(
                f"the code node has no {self._what} port `{name}` connected "
                f"(its {self._what}s: {', '.join(self._ports) or 'none'})"
            ) from None

    def __dir__(self):
        return list(self._ports)


class node:
    """The application's node. Subclasses need not call ``super().__init__()``: the ports are
    attached when the object is created. ``panoramasdk.node()`` works by composition too."""

    def __new__(cls, *args, **kwargs):
        self = object.__new__(cls)
        rt = _rt()
        self.inputs = _Ports(rt.inputs, "input")
        self.outputs = _Ports(rt.outputs, "output")
        return self

    def __init__(self, *args, **kwargs):
        pass

    def call(self, *args, **kwargs):
        """``call(inputs, model_node, time_out=None)`` or ``call(model_node, inputs)``: runs the
        model node on a dict of named arrays (or one array or media); a tuple of arrays."""
        args = list(args)
        name = kwargs.pop("name", None)
        inputs = kwargs.pop("input", kwargs.pop("inputs", None))
        timeout = kwargs.pop("time_out", kwargs.pop("timeout", None))
        if kwargs:
            raise TypeError(f"call() got unexpected arguments {', '.join(kwargs)}")
        for a in list(args):
            if name is None and isinstance(a, str):
                name = a
                args.remove(a)
                break
        if inputs is None and args:
            inputs = args.pop(0)
        if timeout is None and args:
            timeout = args.pop(0)
        if name is None or inputs is None:
            raise TypeError("call() needs the model node's name and its inputs")
        return _rt().call(name, inputs, timeout)


_lock = threading.Lock()
