"""The real generator architectures with random weights, written in their real on-disk
formats, for benchmarks that cannot download anything."""

from __future__ import annotations

from pathlib import Path

import torch
import torch.nn.functional as F

from clipgen.generators.dvae.loader import convert_pickle
from clipgen.generators.dvae.pickle_gate import PickleSource
from clipgen.generators.vqgan.taming import TamingVQGAN, read_config
from clipgen.priors.dalle.library import min_dalle
from clipgen.priors.dalle.loader import Architecture, build_modules
from clipgen.priors.dalle.prior import DallePrior

# ImageNet f16-16384 model.yaml as CompVis publish it (the loss section is ignored by clipgen).
IMAGENET_16384 = {
    "model": {
        "base_learning_rate": 4.5e-06,
        "target": "taming.models.vqgan.VQModel",
        "params": {
            "embed_dim": 256, "n_embed": 16384,
            "ddconfig": {"double_z": False, "z_channels": 256, "resolution": 256, "in_channels": 3,
                         "out_ch": 3, "ch": 128, "ch_mult": [1, 1, 2, 2, 4], "num_res_blocks": 2,
                         "attn_resolutions": [16], "dropout": 0.0},
            "lossconfig": {"target": "taming.modules.losses.vqperceptual.VQLPIPSWithDiscriminator",
                           "params": {"disc_conditional": False, "disc_in_channels": 3, "disc_start": 0,
                                      "disc_weight": 0.75, "disc_num_layers": 2, "codebook_weight": 1.0}},
        },
    }
}


def random_vqgan(folder: Path) -> dict:
    """model.yaml + last.ckpt of ImageNet f16-16384 with random weights -> ``vqgan`` options."""
    import yaml

    folder.mkdir(parents=True, exist_ok=True)
    config = folder / "model.yaml"
    config.write_text(yaml.safe_dump(IMAGENET_16384))
    model = TamingVQGAN(read_config(config))
    torch.save({"state_dict": model.state_dict(), "epoch": 0, "global_step": 0}, folder / "last.ckpt")
    return {"config": str(config), "checkpoint": str(folder / "last.ckpt")}


def random_dvae(folder: Path) -> dict:
    """The published decoder architecture (dall_e defaults), random weights, converted -> ``dvae`` options."""
    from dall_e import Decoder

    folder.mkdir(parents=True, exist_ok=True)
    torch.save(Decoder(), folder / "decoder.pkl")
    convert_pickle(PickleSource(folder / "decoder.pkl", None, True, ""), "Decoder", folder / "decoder")
    return {"decoder": str(folder / "decoder.safetensors")}


@torch.no_grad()
def converge_spectral_norm(model: torch.nn.Module, iterations: int = 30) -> None:
    """Power-iterate spectral norms' ``u``/``v`` as training would have: random ones
    underestimate the top singular value so much that activations overflow."""
    for module in model.modules():
        if hasattr(module, "weight_orig"):
            matrix = module.weight_orig.reshape(module.weight_orig.shape[0], -1)
            u = module.weight_u
            for _ in range(iterations):
                v = F.normalize(matrix.t() @ u, dim=0)
                u = F.normalize(matrix @ v, dim=0)
            module.weight_u.copy_(u)
            module.weight_v.copy_(v)


def random_biggan(folder: Path, resolution: int = 256) -> dict:
    """config.json + pytorch_model.bin of BigGAN-deep-N, random weights -> ``biggan`` options."""
    from pytorch_pretrained_biggan import BigGAN
    from pytorch_pretrained_biggan import convert_tf_to_pytorch as convert

    config = {128: convert.BigGAN128, 256: convert.BigGAN256, 512: convert.BigGAN512}[resolution]
    model = BigGAN(config)
    with torch.no_grad():
        # The package leaves these uninitialised; the released file sets them.
        model.generator.bn.weight.fill_(1.0)
        model.generator.bn.bias.zero_()
    converge_spectral_norm(model)
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "config.json").write_text(config.to_json_string())
    torch.save(model.state_dict(), folder / "pytorch_model.bin", _use_new_zipfile_serialization=False)
    return {"model_dir": str(folder)}


@torch.no_grad()
def random_dalle(prior_class: type[DallePrior], arch: Architecture, device: torch.device,
                 dtype: torch.dtype = torch.float32, seed: int = 0) -> DallePrior:
    """A DALL-E prior of architecture ``arch`` with random weights, built in memory (writing
    and reading back gigabytes would time the disk, not the prior). Weights are N(0, 0.02),
    norms the identity: trained-model scale, so activations stay finite at full depth. The
    tokenizer knows single letters only: text length does not change the cost (the encoder
    always reads 64 positions)."""
    torch.manual_seed(seed)
    encoder, decoder = build_modules(arch, device)
    for module in (encoder, decoder):
        module.to_empty(device=device)
        for part in module.modules():
            if isinstance(part, torch.nn.LayerNorm):
                part.weight.fill_(1.0)
                part.bias.zero_()
            elif isinstance(part, (torch.nn.Linear, torch.nn.Embedding)):
                part.weight.normal_(0.0, 0.02)
        module.to(dtype).requires_grad_(False).eval()
    vocab = {"<s>": 0, "<pad>": 1, "</s>": 2, "<unk>": 3, "Ġ": 4, **{chr(97 + i): 5 + i for i in range(26)}}
    return prior_class(encoder, decoder, min_dalle().TextTokenizer(vocab, []), arch)
