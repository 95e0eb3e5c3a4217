"""Reading user-supplied files (init images, image prompts) with one-line errors."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from PIL import Image, UnidentifiedImageError

from clipgen.errors import InputFileError


def load_image(path: str, what: str):
    """Open ``path`` as an RGB PIL image, or raise InputFileError naming ``what`` it was for."""
    file = Path(path).expanduser()
    if not file.exists():
        raise InputFileError(f"{what} {path} does not exist; check the path")
    if not file.is_file():
        raise InputFileError(f"{what} {path} is not a file; give an image file (PNG, JPEG, …)")
    try:
        with Image.open(file) as image:
            image.load()
            return image.convert("RGB")
    except (UnidentifiedImageError, OSError, ValueError) as exc:
        reason = "not an image" if isinstance(exc, UnidentifiedImageError) else f"unreadable ({exc})"
        raise InputFileError(f"{what} {path} is {reason}; give a PNG, JPEG or other image file") from None


def resize_to(image, size: tuple[int, int]):
    """Resize a PIL image to ``(width, height)`` (Lanczos) -> ``(1, 3, H, W)`` tensor in [0, 1]."""
    return pil_to_tensor(image.resize(size, Image.LANCZOS)).unsqueeze(0)


def pil_to_tensor(image) -> torch.Tensor:
    """An RGB PIL image -> ``(3, H, W)`` float tensor in [0, 1]."""
    array = np.asarray(image.convert("RGB"), dtype=np.float32) / 255.0
    return torch.from_numpy(array).permute(2, 0, 1).contiguous()


def mask_to_tensor(image, size: tuple[int, int]) -> torch.Tensor:
    """A ``(1, 1, H, W)`` mask in [0, 1] from an image: white = editable, black = kept."""
    grey = np.asarray(image.convert("L").resize(size, Image.BILINEAR), dtype=np.float32) / 255.0
    return torch.from_numpy(grey).view(1, 1, size[1], size[0])


def read_text_file(path: str | Path, what: str) -> str:
    """A user's UTF-8 text file (prompt, batch or story file), or one line saying what is wrong."""
    file = Path(path).expanduser()
    if not file.is_file():
        raise InputFileError(f"{what} {path} does not exist; check the path")
    data = file.read_bytes()
    if b"\x00" in data:
        raise InputFileError(f"{what} {path} is binary, not text; give a UTF-8 text file")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise InputFileError(f"{what} {path} is not UTF-8 (bad byte at offset {exc.start}); "
                             "save it as UTF-8") from None
