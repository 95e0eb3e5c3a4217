"""Reading user-supplied files (init images, image prompts) with one-line errors."""

from __future__ import annotations

from pathlib import Path

from clipgen.errors import InputFileError


def load_image(path: str, what: str):
    """Open ``path`` as an RGB PIL image, or raise InputFileError naming ``what`` it was for."""
    from PIL import Image, UnidentifiedImageError

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
    from PIL import Image

    from clipgen.guidance.perceptor import pil_to_tensor

    return pil_to_tensor(image.resize(size, Image.LANCZOS)).unsqueeze(0)


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
