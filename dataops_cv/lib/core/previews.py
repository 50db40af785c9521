"""Small preview images for the Dagster UI: a grid of thumbnails with their boxes drawn."""

from __future__ import annotations

import base64
import io
from collections.abc import Iterable, Mapping, Sequence

from PIL import Image, ImageDraw

from dataops_cv.lib.core.images import to_rgb

PALETTE = [(230, 25, 75), (60, 180, 75), (255, 225, 25), (0, 130, 200), (245, 130, 48),
           (145, 30, 180), (70, 240, 240), (240, 50, 230)]

PREVIEW_FRAMES = 12  # thumbnails per materialization preview
Box = tuple[str, float, float, float, float]


def grid_png(items: Sequence[tuple[bytes, Sequence[Box]]], cols: int = 4, thumb: int = 160) -> bytes:
    """A PNG grid of up to ``len(items)`` thumbnails (displayed orientation) with boxes."""
    rows = max(1, -(-len(items) // cols))
    sheet = Image.new("RGB", (cols * thumb, rows * thumb), (24, 24, 24))
    classes: dict[str, tuple[int, int, int]] = {}
    for i, (data, boxes) in enumerate(items):
        img = to_rgb(Image.open(io.BytesIO(data)))
        scale = min(thumb / img.width, thumb / img.height)
        small = img.resize((max(1, int(img.width * scale)), max(1, int(img.height * scale))))
        draw = ImageDraw.Draw(small)
        for name, x1, y1, x2, y2 in boxes:
            color = classes.setdefault(name, PALETTE[len(classes) % len(PALETTE)])
            draw.rectangle([x1 * scale, y1 * scale, x2 * scale, y2 * scale], outline=color,
                           width=2)
        sheet.paste(small, ((i % cols) * thumb, (i // cols) * thumb))
    buf = io.BytesIO()
    sheet.save(buf, format="PNG", optimize=True)
    return buf.getvalue()


def markdown_image(png: bytes, alt: str = "preview") -> str:
    """Markdown that the Dagster UI renders inline (a data URI: no file server needed)."""
    return f"![{alt}](data:image/png;base64,{base64.b64encode(png).decode()})"


def preview_markdown(items: Sequence[tuple[bytes, Sequence[Box]]], empty: str) -> str:
    """The grid of ``items`` as inline markdown, or ``empty`` (markdown) when there are none."""
    return markdown_image(grid_png(items)) if items else empty


def box_tuples(rows: Iterable[Mapping]) -> list[Box]:
    """(class, x_min, y_min, x_max, y_max) of canonical annotation rows, for drawing."""
    return [(r["class_name"], r["x_min"], r["y_min"], r["x_max"], r["y_max"]) for r in rows]


def markdown_table(rows: Sequence[Mapping], columns: Sequence[str]) -> str:
    """``rows`` as a markdown table of ``columns`` (floats to 6 significant digits)."""
    def cell(v: object) -> str:
        return f"{v:.6g}" if isinstance(v, float) else ("" if v is None else str(v))

    head = "| " + " | ".join(columns) + " |\n|" + "---|" * len(columns) + "\n"
    return head + "\n".join("| " + " | ".join(cell(r.get(c)) for c in columns) + " |"
                            for r in rows)
