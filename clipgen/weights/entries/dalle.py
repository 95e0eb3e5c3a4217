"""Registry entries for DALL-E Mini and DALL-E Mega as ported to PyTorch by min-dalle.

All files live in one Hugging Face repository, ``kuprel/min-dalle``, which is what the
``min-dalle`` package downloads from (``MIN_DALLE_REPO`` in ``min_dalle/min_dalle.py``,
0.4.11). The encoder/decoder files are plain ``torch.save``'d state dicts of
``DalleBartEncoder``/``DalleBartDecoder``; ``detoker.pt`` is the state dict of
``VQGanDetokenizer``, the VQGAN f16-16384 decoder both models write tokens for, loaded as
the VQGAN ``dalle-vqgan`` (converted to taming's layout by
:mod:`clipgen.generators.vqgan.detoker`).

Neither sizes nor SHA-256 digests are published (shared/weights-facts.md, "DALL-E Mini /
Mega"), so none are given: the first download records the digest it saw and later runs
check against that record. For scale, from the architectures (parameters counted by
building the modules): Mini 202,649,584 encoder + 235,313,136 decoder parameters, Mega
1,110,220,800 + 1,477,746,688, the detokenizer 46,709,891. The files' dtype (fp16 or
fp32) is not known, so no byte size is inferred from those.
"""

from __future__ import annotations

from clipgen.weights.spec import FileFacts, WeightsEntry, build_entry

_REPO = "https://huggingface.co/kuprel/min-dalle/resolve/main"

#: Local file names, in the order (encoder, decoder, vocab, merges); the prior opens these.
DALLE_MINI_FILES = ("encoder_mini.pt", "decoder_mini.pt", "vocab_mini.json", "merges_mini.txt")
DALLE_MEGA_FILES = ("encoder.pt", "decoder.pt", "vocab.json", "merges.txt")
#: The one file of the ``dalle-vqgan`` entry.
DETOKER_FILE = "detoker.pt"


def _entry(name: str, kind: str, description: str, files: tuple[str, ...]) -> WeightsEntry:
    return build_entry(name, kind, description, {f: FileFacts() for f in files},
                       [tuple(f"{_REPO}/{f}" for f in files)])


DALLE_ENTRIES: tuple[WeightsEntry, ...] = (
    _entry("dalle-mini", "prior", "DALL-E Mini text-to-token prior (min-dalle port; decodes with dalle-vqgan)",
           DALLE_MINI_FILES),
    _entry("dalle-mega", "prior", "DALL-E Mega text-to-token prior (min-dalle port; decodes with dalle-vqgan)",
           DALLE_MEGA_FILES),
    _entry("dalle-vqgan", "vqgan", "VQGAN f16-16384 decoder of DALL-E Mini/Mega (min-dalle's detoker; no encoder)",
           (DETOKER_FILE,)),
)
