"""Annotations in normalized coordinates ((0, 0) top-left, (1, 1) bottom-right).

    from telescope.annotation import BoundingBox, Label, Scene, render
    scene = Scene([BoundingBox((0.1, 0.2, 0.3, 0.6), label="person", confidence=0.93)])
    render(scene, frame)            # draws in place on a numpy BGR frame
    telescope.set_scene(scene)      # or on every streamed frame

Every class mirrors one entry of the scene JSON documented in the README; optional fields
left as None take the documented defaults.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field, fields
from typing import List, Optional, Sequence, Tuple

from telescope import _native

Point = Tuple[float, float]


def _clean(obj) -> dict:
    out = {"type": obj._type}
    for f in fields(obj):
        v = getattr(obj, f.name)
        if v is None or (f.name == "closed" and v is False) or (f.name == "fill" and v is False):
            continue
        if f.name == "from_":
            out["from"] = list(v)
        elif isinstance(v, tuple):
            out[f.name] = list(v)
        elif isinstance(v, list):
            out[f.name] = [list(p) for p in v]
        else:
            out[f.name] = v
    return out


@dataclass
class Label:
    text: str
    at: Point
    color: Optional[str] = None
    size: Optional[float] = None
    anchor: Optional[str] = None
    background: Optional[str] = None
    _type = "label"


@dataclass
class Rect:
    rect: Tuple[float, float, float, float]
    color: Optional[str] = None
    thickness: Optional[int] = None
    fill: bool = False
    _type = "rect"


@dataclass
class Line:
    from_: Point
    to: Point
    color: Optional[str] = None
    thickness: Optional[int] = None
    _type = "line"


@dataclass
class Marker:
    at: Point
    style: Optional[str] = None
    color: Optional[str] = None
    size: Optional[float] = None
    _type = "marker"


@dataclass
class PolyLine:
    points: List[Point]
    closed: bool = False
    fill: bool = False
    color: Optional[str] = None
    thickness: Optional[int] = None
    _type = "polyline"


@dataclass
class Timestamp:
    time: Optional[str] = None
    format: Optional[str] = None
    at: Optional[Point] = None
    color: Optional[str] = None
    _type = "timestamp"


@dataclass
class BoundingBox:
    rect: Tuple[float, float, float, float]
    label: Optional[str] = None
    confidence: Optional[float] = None
    track_id: Optional[int] = None
    color: Optional[str] = None
    _type = "bounding_box"


@dataclass
class Scene:
    annotations: List[object] = field(default_factory=list)

    def to_json(self) -> str:
        return json.dumps({"annotations": [_clean(a) for a in self.annotations]})

    @staticmethod
    def from_json(text: str) -> "_native.Scene":
        """Parse and validate; ValueError with line and column when the JSON is bad."""
        return _native.Scene.from_json(text)

    def _native(self) -> "_native.Scene":
        return _native.Scene.from_json(self.to_json())


def _as_native(scene) -> "_native.Scene":
    if isinstance(scene, Scene):
        return scene._native()
    if isinstance(scene, _native.Scene):
        return scene
    if isinstance(scene, str):
        return _native.Scene.from_json(scene)
    raise TypeError("scene must be a telescope.annotation.Scene, a parsed scene or JSON text")


def render(scene, frame) -> int:
    """Draw `scene` in place on a numpy uint8 frame; returns how many annotations were drawn."""
    return _native.render(_as_native(scene), frame)


__all__ = [
    "Label",
    "Rect",
    "Line",
    "Marker",
    "PolyLine",
    "Timestamp",
    "BoundingBox",
    "Scene",
    "render",
]
