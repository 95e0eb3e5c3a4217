"""mp4 (imageio-ffmpeg's bundled ffmpeg, no system ffmpeg needed) and gif from frame files."""

from __future__ import annotations

from pathlib import Path

import imageio_ffmpeg
import numpy as np
from PIL import Image

from clipgen.atomic import atomic_path


def _even(image: Image.Image) -> np.ndarray:
    """yuv420p needs even width and height: pad by repeating the last row/column."""
    array = np.asarray(image.convert("RGB"))
    pad_h, pad_w = array.shape[0] % 2, array.shape[1] % 2
    if pad_h or pad_w:
        array = np.pad(array, ((0, pad_h), (0, pad_w), (0, 0)), mode="edge")
    return array


def write_mp4(frames: list[Path], path: Path, fps: int) -> Path:
    first = _even(Image.open(frames[0]))
    height, width = first.shape[:2]
    with atomic_path(path) as tmp:
        writer = imageio_ffmpeg.write_frames(
            str(tmp), (width, height), fps=fps, codec="libx264", pix_fmt_out="yuv420p",
            quality=8, macro_block_size=1, ffmpeg_log_level="error",
        )
        writer.send(None)
        try:
            for frame in frames:
                writer.send(np.ascontiguousarray(_even(Image.open(frame))))
        finally:
            writer.close()
    return path


def write_gif(frames: list[Path], path: Path, fps: int) -> Path:
    images = [Image.open(f).convert("RGB") for f in frames]
    with atomic_path(path) as tmp:
        images[0].save(tmp, format="GIF", save_all=True, append_images=images[1:],
                       duration=max(1, round(1000 / fps)), loop=0)
    return path
