"""Telescope: re-stream an edge video-analytics app's annotated numpy frames.

    import telescope
    with telescope.Telescope(sinks=["file:out.mkv"], fps=10) as t:
        for frame in frames:          # numpy uint8, HxWx3 BGR or HxW gray
            t.put(frame)              # never blocks; False when the frame was not accepted

Sinks: ``"file:OUT.mkv"`` (or .mp4, .ts), ``RtspServer(port=8554).mount("/cam")``,
``KvsStream("stream", "us-east-1")``. Without fps/width/height a warmup measures them from
the first frames. ``telescope.annotation`` draws scenes; ``telescope.compat`` keeps the method
names of the original Python telescope.
"""

from telescope import _native, annotation
from telescope._native import (
    ConfigError,
    KvsStream,
    RtspMount,
    RtspServer,
    StreamError,
    TelescopeError,
)


class Telescope(_native.Telescope):
    """Streams numpy frames to sinks. ``put`` never blocks and releases the GIL."""

    def set_scene(self, scene) -> None:
        """Draw ``scene`` (an annotation.Scene, a parsed scene or JSON) on every frame; None clears."""
        super().set_scene(None if scene is None else annotation._as_native(scene))

__all__ = [
    "Telescope",
    "RtspServer",
    "RtspMount",
    "KvsStream",
    "TelescopeError",
    "ConfigError",
    "StreamError",
    "annotation",
]
