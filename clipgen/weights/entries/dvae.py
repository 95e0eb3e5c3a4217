"""Registry entry for OpenAI's DALL-E discrete VAE (the dVAE that tokenises images for DALL-E).

The two files are whole pickled ``dall_e.Encoder`` / ``dall_e.Decoder`` modules, served only
from OpenAI's CDN. OpenAI publishes neither their size nor a digest, and no byte-identical
mirror is known (shared/weights-facts.md, section 2), so ``sha256`` stays ``None``: a
download records the digest it saw, and :mod:`clipgen.generators.dvae.loader` unpickles a file only
when its bytes match that record (or a digest the user pins), or with ``trust_checkpoint``.
"""

from __future__ import annotations

from clipgen.weights.spec import FileFacts, WeightsEntry, build_entry

_OPENAI_CDN = "https://cdn.openai.com/dall-e"

#: Local file names of a dVAE entry; :mod:`clipgen.generators.dvae.generator` opens these.
DVAE_ENCODER = "encoder.pkl"
DVAE_DECODER = "decoder.pkl"

# approx_size: parameter count of the dall_e 0.1 default architecture x 4 bytes (float32)
# (encoder 53,786,240 and decoder 43,829,766 parameters, counted by building the modules);
# the pickles add a few kB of structure. Inferred, not read from any page.
DVAE_ENTRIES: tuple[WeightsEntry, ...] = (
    build_entry("dalle-dvae", "dalle-dvae",
                "OpenAI DALL-E discrete VAE, 8x downsampling, 8192 codes (digest not published)",
                {DVAE_ENCODER: FileFacts(approx_size=215_000_000), DVAE_DECODER: FileFacts(approx_size=175_000_000)},
                [(f"{_OPENAI_CDN}/encoder.pkl", f"{_OPENAI_CDN}/decoder.pkl")]),
)
