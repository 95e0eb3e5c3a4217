"""Registry entries for DeepMind's BigGAN-deep generators as converted by pytorch_pretrained_biggan.

Each entry is the package's own on-disk pair: ``config.json`` (a ``BigGANConfig`` as JSON)
and ``pytorch_model.bin`` (a ``torch.save``'d ``state_dict``; converted in 2019, so the
legacy non-zip format, holding only tensors, ``OrderedDict`` and storages).
"""

from __future__ import annotations

from clipgen.weights.spec import FileFacts, Mirror, WeightsEntry, build_entry

#: Local file names of a BigGAN entry, as the package names them; the generator opens these.
BIGGAN_CONFIG = "config.json"
BIGGAN_WEIGHTS = "pytorch_model.bin"

# The package's original host (PRETRAINED_*_ARCHIVE_MAP in pytorch_pretrained_biggan/model.py):
# Hugging Face's legacy S3 bucket. Still the only known source of the 256 and 512 files.
_S3 = "https://s3.amazonaws.com/models.huggingface.co/biggan"
# A Hugging Face Hub copy of the 128 model, pinned to the commit whose blob page shows the digest.
_OSANSEVIERO_128 = "https://huggingface.co/osanseviero/BigGAN-deep-128/resolve/af0640a119a2486b24eed0985d6d54e734890bff"
_MIB = 1 << 20


def _biggan(px: int, weights: FileFacts, config: FileFacts = FileFacts(), *first: Mirror) -> WeightsEntry:
    """An entry served from the S3 bucket, after any ``first`` mirrors."""
    name = f"biggan-deep-{px}"
    description = f"BigGAN-deep {px}x{px}, ImageNet 1000 classes (DeepMind, TF Hub conversion)"
    mirrors = [*first, (f"{_S3}/{name}-config.json", f"{_S3}/{name}-pytorch_model.bin")]
    return build_entry(name, "biggan-deep", description, {BIGGAN_CONFIG: config, BIGGAN_WEIGHTS: weights}, mirrors)


# Sources: shared/weights-facts.md section 3 (public pages, 2026-11-21). Only the 128 weights
# have a published SHA-256 (the HF copy's); that it is byte-identical to the S3 file is an
# inference, so the digest check decides: a differing S3 file is rejected and the next
# mirror tried. Sizes from the upstream README ("201/224/225 MB", read as MiB because HF
# shows the 128 file as 211 MB) are for display only. Not mirrors, deliberately absent:
# OpenMMLab's "*_cvt_hugging-face_rgb_*.pth" (same weights, mmgen key layout) and
# flax-community/BigGAN-deep-* (Flax).
BIGGAN_ENTRIES: tuple[WeightsEntry, ...] = (
    _biggan(128, FileFacts(sha256="b86146a8cfcde4cda135adba4b2806f78b3abe2dac9d0fd090cc3ab318604ad9",
                           approx_size=201 * _MIB),
            FileFacts(approx_size=630), (f"{_OSANSEVIERO_128}/config.json", f"{_OSANSEVIERO_128}/pytorch_model.bin")),
    _biggan(256, FileFacts(approx_size=224 * _MIB)),
    _biggan(512, FileFacts(approx_size=225 * _MIB)),
)
