"""PNG writing with the run's prompt, seed and settings embedded as text chunks."""

from __future__ import annotations

import io
import json
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from PIL.PngImagePlugin import PngInfo

from clipgen.atomic import write_bytes


def tensor_to_pil(image: torch.Tensor) -> Image.Image:
    """``(1, 3, H, W)`` or ``(3, H, W)`` in [0, 1] -> RGB PIL image (rounded, not truncated)."""
    if image.dim() == 4:
        image = image[0]
    array = image.detach().float().clamp(0, 1).mul(255).round().byte().permute(1, 2, 0).cpu().numpy()
    return Image.fromarray(np.ascontiguousarray(array), mode="RGB")


def grid_image(images: list[Image.Image], columns: int | None = None, gap: int = 2) -> Image.Image:
    """Equal-sized images side by side in rows (a square-ish grid unless ``columns``)."""
    columns = columns or max(1, round(len(images) ** 0.5 + 0.49))
    rows = -(-len(images) // columns)
    w, h = images[0].size
    sheet = Image.new("RGB", (columns * (w + gap) - gap, rows * (h + gap) - gap), (255, 255, 255))
    for i, image in enumerate(images):
        sheet.paste(image, ((i % columns) * (w + gap), (i // columns) * (h + gap)))
    return sheet


def png_bytes(image: Image.Image, metadata: dict[str, str] | None = None) -> bytes:
    info = PngInfo()
    for key, value in (metadata or {}).items():
        info.add_itxt(key, value)
    buffer = io.BytesIO()
    image.save(buffer, format="PNG", pnginfo=info)
    return buffer.getvalue()


def save_png(path: str | Path, image: Image.Image, metadata: dict[str, str] | None = None) -> Path:
    write_bytes(path, png_bytes(image, metadata))
    return Path(path)


def run_metadata(prompt: str, seed: int, settings: dict) -> dict[str, str]:
    return {
        "prompt": prompt,
        "seed": str(seed),
        "clipgen:settings": json.dumps(settings, sort_keys=True),
        "Software": "clipgen",
    }
