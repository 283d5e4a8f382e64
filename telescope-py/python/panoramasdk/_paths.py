"""The appliance's paths, mapped into a run directory without root.

Panorama apps open absolute paths: ``/opt/aws/panorama/logs/app.log`` at import time,
``/opt/aws/panorama/storage`` for files that persist, ``/panorama`` for their own code and
data. Within the runtime's process the file functions of ``builtins``, ``io``, ``os``,
``logging`` and (when present) ``cv2`` see those prefixes mapped to real directories; every other
path is left alone.
"""

from __future__ import annotations

import builtins
import io
import logging
import os
from typing import Dict

_MAP: Dict[str, str] = {}


def translate(path):
    """The real path for an appliance path (anything else unchanged)."""
    if isinstance(path, int) or not _MAP:
        return path
    try:
        text = os.fspath(path)
    except TypeError:
        return path
    as_bytes = isinstance(text, bytes)
    s = os.fsdecode(text) if as_bytes else text
    for prefix, real in _MAP.items():
        if s == prefix or s.startswith(prefix + "/"):
            out = real + s[len(prefix):]
            return os.fsencode(out) if as_bytes else out
    return path


def translate_with(path: str, mapping: Dict[str, str]) -> str:
    """``path`` under ``mapping`` (appliance prefix -> real directory), before install()."""
    for prefix, real in sorted(mapping.items(), key=lambda kv: -len(kv[0])):
        prefix = prefix.rstrip("/")
        if path == prefix or path.startswith(prefix + "/"):
            return os.path.abspath(real) + path[len(prefix):]
    return path


def _wrap(fn, *positions):
    def wrapped(*args, **kwargs):
        args = list(args)
        for i in positions:
            if i < len(args):
                args[i] = translate(args[i])
        for k in ("path", "file", "src", "dst", "filename"):
            if k in kwargs:
                kwargs[k] = translate(kwargs[k])
        return fn(*args, **kwargs)

    wrapped.__wrapped__ = fn
    wrapped.__name__ = getattr(fn, "__name__", "wrapped")
    wrapped.__doc__ = getattr(fn, "__doc__", None)
    return wrapped


_ONE = ("stat", "lstat", "mkdir", "listdir", "scandir", "remove", "unlink", "rmdir", "access",
        "chdir", "utime", "chmod", "open", "truncate", "readlink", "statvfs")
_TWO = ("rename", "replace", "link", "symlink")


def install(mapping: Dict[str, str]) -> None:
    """Maps each appliance prefix to a real directory (created) from now on."""
    for prefix, real in mapping.items():
        os.makedirs(real, exist_ok=True)
        _MAP[prefix.rstrip("/")] = os.path.abspath(real)
    if getattr(builtins.open, "__wrapped__", None) is not None:
        return
    builtins.open = _wrap(builtins.open, 0)
    io.open = builtins.open
    for name in _ONE:
        if hasattr(os, name):
            setattr(os, name, _wrap(getattr(os, name), 0))
    for name in _TWO:
        if hasattr(os, name):
            setattr(os, name, _wrap(getattr(os, name), 0, 1))
    # FileHandler opens with the `open` it captured when logging was imported.
    logging.FileHandler._builtin_open = staticmethod(builtins.open)
    try:
        import cv2  # noqa: F401  (apps draw and save with it)
    except ImportError:
        return
    for name in ("imread", "imwrite", "VideoCapture", "VideoWriter"):
        if hasattr(cv2, name):
            setattr(cv2, name, _wrap(getattr(cv2, name), 0))
