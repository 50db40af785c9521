"""Procedural capture frames, deterministic by (seed, capture date, index).

A minimal generator that proves the pipeline spine; the acquisition stage grows it into full
capture sessions with sensors and planted defects.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import io
import random
from collections.abc import Iterator
from dataclasses import dataclass

from PIL import Image, ImageDraw

CLASSES = ("car", "pedestrian", "cyclist", "traffic_sign")
FRAME_INTERVAL_MS = 83  # ~12 Hz camera


@dataclass(frozen=True)
class Frame:
    data: bytes
    sha256: str
    width: int
    height: int
    capture_time: dt.datetime
    device_id: str
    source_uri: str
    boxes: tuple[tuple[str, float, float, float, float], ...]


def _rng(seed: int, date: str, index: int) -> random.Random:
    digest = hashlib.sha256(f"{seed}/{date}/{index}".encode()).digest()
    return random.Random(int.from_bytes(digest[:8], "big"))


def render_frame(seed: int, date: str, index: int, width: int, height: int) -> Frame:
    rng = _rng(seed, date, index)
    base = tuple(rng.randrange(40, 200) for _ in range(3))
    img = Image.new("RGB", (width, height), base)
    draw = ImageDraw.Draw(img)
    boxes = []
    for _ in range(rng.randint(1, 4)):
        cls = rng.choice(CLASSES)
        w = rng.uniform(0.1, 0.4) * width
        h = rng.uniform(0.1, 0.4) * height
        x1 = rng.uniform(0, width - w)
        y1 = rng.uniform(0, height - h)
        color = tuple(rng.randrange(0, 256) for _ in range(3))
        draw.rectangle([x1, y1, x1 + w, y1 + h], fill=color)
        boxes.append((cls, round(x1, 2), round(y1, 2), round(x1 + w, 2), round(y1 + h, 2)))
    buf = io.BytesIO()
    img.save(buf, format="PNG", optimize=False, compress_level=6)
    data = buf.getvalue()
    start = dt.datetime.fromisoformat(date).replace(hour=8, tzinfo=dt.UTC)
    return Frame(
        data=data,
        sha256=hashlib.sha256(data).hexdigest(),
        width=width,
        height=height,
        capture_time=start + dt.timedelta(milliseconds=FRAME_INTERVAL_MS * index),
        device_id="synthetic-cam-0",
        source_uri=f"synthetic://seed={seed}/{date}/{index:06d}.png",
        boxes=tuple(boxes),
    )


def generate_frames(
    seed: int, date: str, count: int, width: int, height: int
) -> Iterator[Frame]:
    """Yield ``count`` frames one at a time (never the whole partition in memory)."""
    for i in range(count):
        yield render_frame(seed, date, i, width, height)
