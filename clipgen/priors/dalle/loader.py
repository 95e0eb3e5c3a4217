"""Build min-dalle's ``DalleBartEncoder``/``DalleBartDecoder`` and load the published files.

The files are plain state dicts (``torch.save(dict)``), read with ``weights_only=True``
by :func:`clipgen.weights.checkpoints.load_checkpoint`. min-dalle loads them with
``strict=False``; here every key is accounted for and the load is strict:

- a key the file has and the module does not: an error (the file is not this model);
- a key the module has and the file lacks: allowed only for the ``weight`` (scale) of a
  ``LayerNorm``. DALL-E Mini/Mega build their pre-attention, GLU and final norms with
  ``use_scale=config.force_ln_scale`` (dalle-mini's ``modeling.py``), which is False for
  the released models, so Flax stored no scale for them and the conversion had none to
  write. A norm without scale is a norm with scale 1, which is what is filled in (and
  what ``strict=False`` left there: ``LayerNorm`` initialises its weight to ones);
- every tensor must have the module's shape, else an error naming the key and both shapes.

Tensors are cast to the compute dtype and adopted (``assign=True``) by modules built on
the meta device, so nothing is initialised only to be overwritten.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple

import torch
from torch import nn

from clipgen.errors import ModelError, one_line
from clipgen.priors.dalle.library import min_dalle
from clipgen.weights.checkpoints import load_checkpoint, state_dict_of

#: Text tokens the encoder reads (its position table; min-dalle's ``text_token_count``).
TEXT_TOKENS = 64
#: The tokenizer's padding id (BART's ``<pad>``); min-dalle masks it out of attention.
PAD = 1


@dataclass(frozen=True)
class Architecture:
    """What ``MinDalle.__init__`` (0.4.11) sets from ``is_mega``."""

    name: str
    layers: int
    heads: int
    width: int
    glu: int
    text_vocab: int
    image_vocab: int  # the decoder's tables have one row more (the trained BOS)


MINI = Architecture("DALL-E Mini", layers=12, heads=16, width=1024, glu=2730, text_vocab=50264, image_vocab=16384)
MEGA = Architecture("DALL-E Mega", layers=24, heads=32, width=2048, glu=4096, text_vocab=50272, image_vocab=16415)


class DalleFiles(NamedTuple):
    encoder: Path
    decoder: Path
    vocab: Path
    merges: Path


def build_modules(arch: Architecture, device: torch.device) -> tuple[nn.Module, nn.Module]:
    """Encoder and decoder with meta parameters. ``device`` is where their index tables
    (``pose_tokens``, ``token_indices``: plain attributes, not buffers) are made, since
    ``.to()`` would not move them."""
    library = min_dalle()
    with torch.device("meta"):
        encoder = library.DalleBartEncoder(
            layer_count=arch.layers, embed_count=arch.width, attention_head_count=arch.heads,
            text_vocab_count=arch.text_vocab, text_token_count=TEXT_TOKENS, glu_embed_count=arch.glu,
            device=device)
        decoder = library.DalleBartDecoder(
            image_vocab_count=arch.image_vocab, embed_count=arch.width, attention_head_count=arch.heads,
            glu_embed_count=arch.glu, layer_count=arch.layers, device=device)
    return encoder, decoder


def unscaled_norm_keys(module: nn.Module) -> set[str]:
    """The ``weight`` keys of every LayerNorm in ``module`` (the keys a file may lack)."""
    return {f"{name}.weight" for name, child in module.named_modules() if isinstance(child, nn.LayerNorm)}


def load_into(module: nn.Module, path: Path, arch: Architecture, part: str, device: torch.device,
              dtype: torch.dtype, fix: str) -> None:
    """Load the state dict at ``path`` into ``module`` (built by :func:`build_modules`)."""
    state = state_dict_of(load_checkpoint(path, fix=fix), path, fix, what=f"{arch.name} {part}")
    expected = module.state_dict()
    # Shapes first: for a file of the other model they say the most (widths, vocabularies).
    for key, meta in expected.items():
        value = state.get(key, meta)
        if not isinstance(value, torch.Tensor) or value.shape != meta.shape:
            shape = tuple(value.shape) if isinstance(value, torch.Tensor) else type(value).__name__
            raise ModelError(f"{path}: {key!r} has shape {shape}, the {arch.name} {part} needs "
                             f"{tuple(meta.shape)}; is it another model's file? {fix}")
    unexpected = [k for k in state if k not in expected]
    if unexpected:
        raise ModelError(f"{path} holds {_first(unexpected)}, which the {arch.name} {part} does not have; "
                         f"is it another model's file? {fix}")
    may_lack = unscaled_norm_keys(module)
    missing = [k for k in expected if k not in state and k not in may_lack]
    if missing:
        raise ModelError(f"{path} lacks {_first(missing)} of the {arch.name} {part}; the file is damaged or "
                         f"another model's; {fix}")
    full = {key: (state[key] if key in state else torch.ones(meta.shape)).to(device=device, dtype=dtype)
            for key, meta in expected.items()}
    module.load_state_dict(full, strict=True, assign=True)
    module.requires_grad_(False)
    module.eval()


def _first(keys: list[str]) -> str:
    return repr(keys[0]) + (f" and {len(keys) - 1} more" if len(keys) > 1 else "")


def load_tokenizer(vocab_path: Path, merges_path: Path, arch: Architecture, fix: str) -> Any:
    """min-dalle's ``TextTokenizer`` for ``vocab.json`` + ``merges.txt``, both read as
    ``MinDalle.init_tokenizer`` reads them (the merges' first line is the ``#version``
    header and the file ends with a newline, hence ``[1:-1]``)."""
    try:
        vocab = json.loads(vocab_path.read_text(encoding="utf-8"))
        merges = merges_path.read_text(encoding="utf-8").split("\n")[1:-1]
    except OSError as exc:
        raise ModelError(f"cannot read the {arch.name} tokenizer: {exc.filename}: {exc.strerror}; {fix}") from None
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ModelError(f"{vocab_path} or {merges_path} is not a tokenizer file ({one_line(exc)}); {fix}") from None
    specials = ("<s>", "</s>", "<unk>")
    if not isinstance(vocab, dict) or not all(isinstance(vocab.get(s), int) for s in specials):
        raise ModelError(f"{vocab_path} is not a BART vocabulary (needs ids for {', '.join(specials)}); {fix}")
    ids = [v for v in vocab.values() if isinstance(v, int)]
    if len(ids) != len(vocab) or min(ids) < 0 or max(ids) >= arch.text_vocab:
        raise ModelError(f"{vocab_path} has token ids outside the {arch.name} encoder's 0..{arch.text_vocab - 1}; "
                         f"is it another model's vocabulary? {fix}")
    return min_dalle().TextTokenizer(vocab, merges)


def text_rows(tokenizer: Any, text: str) -> torch.Tensor:
    """The encoder's two input rows ``(2, 64)``, built as min-dalle 0.4.11 builds them
    (``generate_raw_image_stream``): row 0, the unconditioned one, is ``[tokens[0],
    tokens[-1]]`` (``<s> </s>``) and padding; row 1 is the text's tokens, cut to 64 and
    padded. (As there, a text over 64 tokens loses its ``</s>`` and row 0 then ends in
    the text's 64th token instead.)"""
    tokens = tokenizer.tokenize(text)[:TEXT_TOKENS]
    rows = torch.full((2, TEXT_TOKENS), PAD, dtype=torch.long)
    rows[0, :2] = torch.tensor([tokens[0], tokens[-1]])
    rows[1, :len(tokens)] = torch.tensor(tokens)
    return rows


def load_modules(files: DalleFiles, arch: Architecture, device: torch.device, dtype: torch.dtype,
                 fix: str) -> tuple[nn.Module, nn.Module, Any]:
    """``(encoder, decoder, tokenizer)``, frozen, on ``device`` in ``dtype``."""
    tokenizer = load_tokenizer(files.vocab, files.merges, arch, fix)  # small files first: cheap failures
    encoder, decoder = build_modules(arch, device)
    load_into(encoder, files.encoder, arch, "encoder", device, dtype, fix)
    load_into(decoder, files.decoder, arch, "decoder", device, dtype, fix)
    return encoder, decoder, tokenizer
