"""Drawing a detection onto its picture (``cotrain predict --draw out.png``).

:func:`draw_detections` opens the original picture (EXIF rotation applied, as the loaders apply it,
so the boxes — absolute ``xyxy`` pixels of that picture — land where the model put them), draws each
object's box and a ``label (attribute) score`` caption in a colour per label, and writes the result.
"""

from __future__ import annotations

import colorsys
import zlib
from pathlib import Path

from cotrain.errors import InputError


def label_colour(label: str) -> tuple[int, int, int]:
    """A stable, well-saturated colour per label name."""
    hue = (zlib.crc32(str(label).encode()) % 360) / 360.0
    r, g, b = colorsys.hsv_to_rgb(hue, 0.9, 1.0)
    return int(r * 255), int(g * 255), int(b * 255)


def draw_detections(image: str | Path, objects: list[dict], out: str | Path, *, min_side: int = 256) -> Path:
    """Write ``image`` with ``objects`` (``{"label", "score", "box": [x0, y0, x1, y1](, "attribute")}``,
    as ``predict`` returns them for a detection task) drawn on it to ``out`` (format from its suffix).
    A small picture is scaled up (nearest) so that its shorter side is at least ``min_side`` pixels,
    boxes with it, to keep the captions readable."""
    from PIL import Image, ImageDraw, ImageOps

    out = Path(out)
    if out.suffix.lower() not in (".png", ".jpg", ".jpeg", ".bmp", ".webp"):
        raise InputError(f"--draw {out}: give a .png / .jpg / .bmp / .webp file name")
    with Image.open(image) as im:
        im = ImageOps.exif_transpose(im).convert("RGB")
    scale = max(1.0, min_side / min(im.size))
    if scale > 1:
        im = im.resize((round(im.width * scale), round(im.height * scale)), Image.Resampling.NEAREST)
    draw = ImageDraw.Draw(im)
    for obj in objects:
        x0, y0, x1, y1 = (float(v) * scale for v in obj["box"])
        colour = label_colour(obj["label"])
        draw.rectangle([x0, y0, x1, y1], outline=colour, width=2)
        caption = str(obj["label"])
        if obj.get("attribute") is not None:
            caption = f"{obj['attribute']} {caption}"
        caption += f" {obj['score']:.2f}"
        tx, ty = x0 + 2, max(0.0, y0 - 12)
        box = draw.textbbox((tx, ty), caption)
        draw.rectangle(box, fill=(0, 0, 0))
        draw.text((tx, ty), caption, fill=colour)
    out.parent.mkdir(parents=True, exist_ok=True)
    im.save(out)
    return out


__all__ = ["draw_detections", "label_colour"]
