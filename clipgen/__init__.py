"""clipgen: text-to-image by CLIP-guided optimisation."""

__version__ = "0.1.0"

__all__ = ["__version__", "generate", "batch", "Result", "Settings"]


def __getattr__(name: str):
    # Importing torch costs seconds; `clipgen --version` and `--help` should not pay it.
    if name in ("generate", "batch", "Result"):
        from clipgen import api

        return getattr(api, name)
    if name == "Settings":
        from clipgen.config.settings import Settings

        return Settings
    raise AttributeError(f"module 'clipgen' has no attribute {name!r}")
