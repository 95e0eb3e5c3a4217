"""DALL-E Mini and DALL-E Mega: min-dalle's modules, stepped one token at a time.

The decoding follows ``MinDalle.generate_raw_image_stream`` and
``DalleBartDecoder.forward``/``sample_tokens`` of min-dalle 0.4.11:

- the encoder reads two rows, the unconditioned ``<s> </s>`` one and the text
  (:func:`~clipgen.priors.dalle.loader.text_rows`); a guided state decodes ``batch``
  unconditioned rows first, then ``batch`` text rows, every row fed the same token;
- the self-attention keys/values go into min-dalle's ``attention_state`` layout,
  ``(layers, 2·rows, 256, width)``, keys in the first ``rows``, values in the rest;
- logits are the first 16384 (``[:, -1, :2 ** 14]``: the codes; Mega's table has 31 more
  rows and both have the BOS row), and min-dalle's supercondition mix
  ``uncond·(1 − s) + cond·s`` is :func:`clipgen.priors.sampling.guide`.

Two things are computed differently, with the same result (tests compare the logits with
min-dalle's own ``DalleBartDecoder.forward``): the cross-attention keys/values of the
encoder state are projected once per :meth:`begin` rather than at every token (they do not
change), and attention is ``scaled_dot_product_attention`` over the positions written so
far rather than a softmax with ``-1e12`` on the unwritten ones.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import torch
import torch.nn.functional as F

from clipgen import weights
from clipgen.priors.base import Prior, PriorContext
from clipgen.priors.dalle.loader import MEGA, MINI, PAD, Architecture, DalleFiles, load_modules, text_rows
from clipgen.weights.entries.dalle import DALLE_MEGA_FILES, DALLE_MINI_FILES

#: The token every sequence starts from. min-dalle 0.4.11 fills with ``2 ** 14 - 1`` (code
#: 16383), for Mini and Mega alike. The models were trained from the extra table row
#: (dalle-mini's ``decoder_start_token_id``: 16384 for Mini, 16415 for Mega; min-dalle's
#: own 0.1 releases used those); clipgen copies the pinned 0.4.11, whose outputs are the
#: ones its users know.
START_TOKEN = 2**14 - 1
CODES = 2**14


@dataclass
class DalleState:
    batch: int
    guided: bool
    attention_state: torch.Tensor  # (layers, 2·rows, 256, width): self-attention keys, then values
    cross_keys: list[torch.Tensor]  # per layer (groups, heads, 64, head width); groups: uncond?, text
    cross_values: list[torch.Tensor]
    cross_mask: torch.Tensor  # (groups, 1, 1, 64): True where a text token (not padding) is

    @property
    def rows(self) -> int:
        return 2 * self.batch if self.guided else self.batch


class DallePrior(Prior):
    """Shared by :class:`DalleMini` and :class:`DalleMega`."""

    grid = (16, 16)  # min-dalle's IMAGE_TOKEN_COUNT = 256, the decoder's position table
    vocab_size = CODES
    #: min-dalle's ``supercondition_factor`` default, the same for Mini and Mega.
    default_guidance: ClassVar[float] = 16.0
    entry: ClassVar[str]
    files: ClassVar[tuple[str, ...]]
    architecture: ClassVar[Architecture]

    def __init__(self, encoder, decoder, tokenizer, arch: Architecture):
        super().__init__()
        self.encoder, self.decoder, self.tokenizer, self.arch = encoder, decoder, tokenizer, arch

    @classmethod
    def load(cls, context: PriorContext) -> "DallePrior":
        """The registry's files (never downloaded here: missing ones are a
        MissingWeightsError naming ``clipgen models download NAME``)."""
        entry = weights.get_entry(cls.entry, kind="prior")
        paths = weights.ensure(entry, offline=context.offline, download_missing=False)
        files = DalleFiles(*(paths[name] for name in cls.files))
        return cls.from_files(files, context, cls.architecture,
                              fix=f"fetch it again with: clipgen models download {entry.name}")

    @classmethod
    def from_files(cls, files: DalleFiles, context: PriorContext, arch: Architecture,
                   fix: str = "check the file") -> "DallePrior":
        encoder, decoder, tokenizer = load_modules(files, arch, context.device, context.dtype, fix)
        return cls(encoder, decoder, tokenizer, arch)

    @property
    def device(self) -> torch.device:
        return self.decoder.lm_head.weight.device

    @torch.no_grad()
    def begin(self, text: str, batch: int, guided: bool) -> DalleState:
        rows = text_rows(self.tokenizer, text).to(self.device)
        encoded = self.encoder(rows)  # (2, 64, width); the encoder is made for exactly two rows
        if not guided:
            rows, encoded = rows[1:], encoded[1:]
        heads = self.arch.heads
        cross_keys, cross_values = [], []
        for layer in self.decoder.layers:
            attn = layer.encoder_attn
            cross_keys.append(_heads(attn.k_proj(encoded), heads))
            cross_values.append(_heads(attn.v_proj(encoded), heads))
        count = 2 * batch if guided else batch
        shape = (self.arch.layers, 2 * count, self.positions, self.arch.width)
        attention_state = torch.zeros(shape, device=self.device, dtype=encoded.dtype)
        mask = rows.ne(PAD)[:, None, None, :]
        return DalleState(batch, guided, attention_state, cross_keys, cross_values, mask)

    @torch.no_grad()
    def next_logits(self, state: DalleState, previous: torch.Tensor | None,
                    position: int) -> tuple[torch.Tensor, torch.Tensor | None]:
        if previous is None:
            previous = torch.full((state.batch,), START_TOKEN, dtype=torch.long)
        tokens = previous.to(self.device).repeat(2 if state.guided else 1)  # min-dalle's prev_tokens.repeat(2, 1)
        logits = self._step(state, tokens, position)[:, :CODES].float()
        if state.guided:
            return logits[state.batch:], logits[:state.batch]
        return logits, None

    def _step(self, state: DalleState, tokens: torch.Tensor, position: int) -> torch.Tensor:
        """One decoder pass for one position: ``tokens (rows,)`` -> logits ``(rows, table)``."""
        decoder, heads, rows = self.decoder, self.arch.heads, state.rows
        where = torch.tensor([position], device=self.device)
        h = decoder.embed_tokens(tokens[:, None]) + decoder.embed_positions(where)
        h = decoder.layernorm_embedding(h)  # (rows, 1, width)
        for index, layer in enumerate(decoder.layers):
            cache = state.attention_state[index]
            x = layer.pre_self_attn_layer_norm(h)
            attn = layer.self_attn
            cache[:rows, position] = attn.k_proj(x)[:, 0]
            cache[rows:, position] = attn.v_proj(x)[:, 0]
            keys, values = (_heads(part[:, :position + 1], heads) for part in (cache[:rows], cache[rows:]))
            out = F.scaled_dot_product_attention(_heads(attn.q_proj(x), heads), keys, values)
            h = h + layer.self_attn_layer_norm(attn.out_proj(_merge(out)))

            x = layer.pre_encoder_attn_layer_norm(h)
            attn = layer.encoder_attn
            out = _cross_attention(_heads(attn.q_proj(x), heads), state.cross_keys[index],
                                   state.cross_values[index], state.cross_mask)
            h = h + layer.encoder_attn_layer_norm(attn.out_proj(_merge(out)))

            h = h + layer.glu(h)
        return decoder.lm_head(decoder.final_ln(h))[:, -1]


def _heads(x: torch.Tensor, heads: int) -> torch.Tensor:
    """``(b, n, width)`` -> ``(b, heads, n, width / heads)``."""
    return x.unflatten(-1, (heads, -1)).transpose(1, 2)


def _merge(x: torch.Tensor) -> torch.Tensor:
    """``(b, heads, n, head width)`` -> ``(b, n, width)``."""
    return x.transpose(1, 2).flatten(2)


def _cross_attention(queries: torch.Tensor, keys: torch.Tensor, values: torch.Tensor,
                     mask: torch.Tensor) -> torch.Tensor:
    """Attention of ``queries (rows, heads, 1, d)`` on the text rows' keys/values
    ``(groups, heads, 64, d)``: every row of a group attends to the same text, so the rows
    are folded into the query length of their group instead of copying keys per row."""
    groups = keys.shape[0]
    rows, heads, _, width = queries.shape
    folded = queries.reshape(groups, rows // groups, heads, width).transpose(1, 2)
    out = F.scaled_dot_product_attention(folded, keys, values, attn_mask=mask)
    return out.transpose(1, 2).reshape(rows, heads, 1, width)


class DalleMini(DallePrior):
    """DALL-E Mini (12 layers, width 1024, 438M parameters), as ported by min-dalle."""

    entry = "dalle-mini"
    files = DALLE_MINI_FILES
    architecture = MINI


class DalleMega(DallePrior):
    """DALL-E Mega (24 layers, width 2048, 2.6B parameters), as ported by min-dalle."""

    entry = "dalle-mega"
    files = DALLE_MEGA_FILES
    architecture = MEGA
