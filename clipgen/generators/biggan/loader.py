"""Build a BigGAN-deep generator from pytorch_pretrained_biggan's on-disk format, safely.

A model is a folder (or registry entry) with the package's two files: ``config.json``
(a ``BigGANConfig``) and ``pytorch_model.bin`` (a ``state_dict``). The modules come from
``pytorch_pretrained_biggan``; its ``BigGAN.from_pretrained`` is never used, because it
downloads from its own legacy host and unpickles with a plain ``torch.load``. Here the
weights are read by :func:`clipgen.weights.checkpoints.load_checkpoint` (``weights_only=True``)
and every tensor is checked against the architecture the config describes.

After loading, spectral normalisation is folded into the weights: in eval mode it only
divides each weight by a constant (its stored singular-value estimate), so doing that
once instead of on every forward pass gives the same images, faster.

:func:`synthesize` runs the generator with one conditioning vector per block, as
BigSleep does, or one shared by all (the package's own ``forward`` only does the latter).
"""

from __future__ import annotations

import functools
import json
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from clipgen.errors import MissingDependencyError, ModelError, one_line
from clipgen.generators.upsampling import doubled_then_convolved
from clipgen.hardware import convert_frozen
from clipgen.weights.checkpoints import load_checkpoint, state_dict_of

#: The keys a BigGANConfig JSON must carry (the package fills missing ones with its 128 defaults).
CONFIG_KEYS = ("output_dim", "z_dim", "class_embed_dim", "channel_width", "num_classes", "layers",
               "attention_layer_position", "eps", "n_stats")
#: What ``import pytorch_pretrained_biggan`` pulls in, and which pip name provides it.
_IMPORT_NEEDS = {"scipy": "scipy", "boto3": "boto3", "botocore": "boto3", "requests": "requests",
                 "tqdm": "tqdm"}


def biggan_package():
    """``pytorch_pretrained_biggan``, or a clear error naming the extra.

    Its ``__init__`` imports its model, file_utils and utils modules, hence ``boto3``,
    ``requests``, ``tqdm`` and ``scipy.stats`` (scipy is not even declared by the package):
    any of those missing fails the import, and the error names the one that is.
    """
    try:
        import pytorch_pretrained_biggan
    except ModuleNotFoundError as exc:
        root = (exc.name or "").split(".")[0]
        package = _IMPORT_NEEDS.get(root, "pytorch-pretrained-biggan")
        raise MissingDependencyError(package, "biggan", "The biggan generator") from None
    return pytorch_pretrained_biggan


# --------------------------------------------------------------------------- config


def read_config(path: str | Path, fix: str = "check the file") -> Any:
    """A validated ``BigGANConfig`` from the package's ``config.json``."""
    path = Path(path)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ModelError(f"cannot read BigGAN config {path}: {exc.strerror}; {fix}") from None
    except (ValueError, UnicodeDecodeError) as exc:
        raise ModelError(f"BigGAN config {path} is not valid JSON ({one_line(exc)}); {fix}") from None
    if not isinstance(data, dict):
        raise ModelError(f"BigGAN config {path} is not a JSON object; {fix}")
    missing = [key for key in CONFIG_KEYS if key not in data]
    if missing:
        raise ModelError(f"BigGAN config {path} has no {missing[0]!r}; is it a pytorch_pretrained_biggan "
                         f"config.json? {fix}")
    for key in ("output_dim", "z_dim", "channel_width", "num_classes", "n_stats"):
        value = data[key]
        if not isinstance(value, int) or isinstance(value, bool) or value < 1:
            raise ModelError(f"BigGAN config {path}: {key} must be a positive whole number, got {value!r}; {fix}")
    _check_layers(data, path, fix)
    return biggan_package().BigGANConfig.from_dict(data)


def _check_layers(data: dict, path: Path, fix: str) -> None:
    """Layers are ``[upsample, in, out]`` channel multiples; the output size must follow from them."""
    layers = data["layers"]
    if not isinstance(layers, list) or not layers or not all(
            isinstance(layer, list) and len(layer) == 3 and isinstance(layer[0], bool)
            and all(isinstance(n, int) and n > 0 for n in layer[1:]) for layer in layers):
        raise ModelError(f"BigGAN config {path}: layers must be a list of [upsample, in, out]; {fix}")
    upsamples = sum(layer[0] for layer in layers)
    # The generator starts from a 4x4 grid of 16*channel_width channels and ends with channel_width.
    if 4 * 2**upsamples != data["output_dim"] or layers[0][1] != 16 or layers[-1][2] != 1:
        raise ModelError(f"BigGAN config {path}: its layers make {4 * 2**upsamples}px images from "
                         f"{layers[0][1]}x to {layers[-1][2]}x channels, not {data['output_dim']}px "
                         f"from 16x to 1x; {fix}")


# --------------------------------------------------------------------------- weights


def load_biggan(config_path: str | Path, weights_path: str | Path, device: torch.device,
                fix: str = "check the file", dtype: torch.dtype = torch.float32) -> nn.Module:
    """A frozen, eval-mode ``BigGAN`` on ``device`` in ``dtype`` (the run's precision), with
    spectral norm folded into its weights."""
    config = read_config(config_path, fix)
    weights_path = Path(weights_path)
    # Built on the CPU, not the meta device: the package's spectral_norm() setup is slower
    # on meta than initialising for real (1.0 s vs 1.4-4.9 s for BigGAN-deep-256). Its
    # random init must not move the run's RNG, so the seed's latents stay the same.
    with torch.random.fork_rng(devices=[]), torch.no_grad():
        model = biggan_package().BigGAN(config)
    state = extract_state(load_checkpoint(weights_path, fix=fix), weights_path, fix)
    expected = model.state_dict()
    missing = [k for k in expected if k not in state]
    if missing:
        more = f" and {len(missing) - 1} more" if len(missing) > 1 else ""
        raise ModelError(f"BigGAN weights {weights_path} lack {missing[0]!r}{more} needed by its config; "
                         f"config.json and pytorch_model.bin do not belong together or the file is damaged; {fix}")
    for key, tensor in expected.items():
        value = state[key]
        if value.shape != tensor.shape:
            raise ModelError(f"BigGAN weights {weights_path}: {key!r} has shape {tuple(value.shape)}, the "
                             f"config needs {tuple(tensor.shape)}; config.json and pytorch_model.bin do "
                             f"not belong together; {fix}")
    # assign=True adopts the loaded tensors instead of copying into meta ones.
    model.load_state_dict({k: state[k].float() for k in expected}, strict=True, assign=True)
    model.eval()
    fold_spectral_norm(model)
    model.requires_grad_(False)
    for block in model.generator.layers:
        if getattr(block, "up_sample", False) and hasattr(block, "conv_1"):
            block.forward = functools.partial(_upsampling_block_forward, block)
    # Channels-last: the layout oneDNN's and cuDNN's fast conv kernels want (see vqgan).
    return convert_frozen(model.to(device), dtype, channels_last=True)


def extract_state(checkpoint: Any, path: Path, fix: str) -> dict[str, torch.Tensor]:
    """The tensors of a ``state_dict`` file (``module.`` prefixes of DataParallel saves removed)."""
    state = state_dict_of(checkpoint, path, fix, what="BigGAN weights")
    return {k.removeprefix("module."): v for k, v in state.items()
            if isinstance(k, str) and isinstance(v, torch.Tensor)}


@torch.no_grad()
def fold_spectral_norm(model: nn.Module) -> None:
    """Replace every spectral-norm hook by the weight it computes in eval mode.

    In eval mode the hook divides ``weight_orig`` by ``u . (W v)`` with the stored ``u``
    and ``v`` (no power iteration), a constant: the folded model computes the same images.
    """
    for module in model.modules():
        if hasattr(module, "weight_orig"):
            nn.utils.remove_spectral_norm(module)


# --------------------------------------------------------------------------- forward


def _upsampling_block_forward(block: nn.Module, x: torch.Tensor, condition: torch.Tensor,
                              truncation: float) -> torch.Tensor:
    """The package's ``GenBlock.forward`` for a block that doubles its image, with the
    doubling and the 3×3 convolution after it as one transposed convolution
    (:mod:`clipgen.generators.upsampling`)."""
    skip = x
    x = block.conv_0(block.relu(block.bn_0(x, truncation, condition)))
    x = doubled_then_convolved(block.relu(block.bn_1(x, truncation, condition)), block.conv_1)
    x = block.conv_2(block.relu(block.bn_2(x, truncation, condition)))
    x = block.conv_3(block.relu(block.bn_3(x, truncation, condition)))
    if block.drop_channels:
        skip = skip[:, :skip.shape[1] // 2]
    return x + F.interpolate(skip, scale_factor=2, mode="nearest")


def num_conditions(model: nn.Module) -> int:
    """How many conditioning vectors a per-block forward takes: the first linear + each block."""
    return 1 + sum(1 for layer in model.generator.layers if hasattr(layer, "bn_0"))


def synthesize(model: nn.Module, z: torch.Tensor, classes: torch.Tensor, truncation: float) -> torch.Tensor:
    """An image ``(1, 3, R, R)`` in ``[-1, 1]`` at the model's native resolution ``R``.

    ``z`` ``(N, z_dim)`` and ``classes`` ``(N, num_classes)`` hold either one row (shared
    by every block, as the package's own forward) or :func:`num_conditions` rows: the
    first conditions the initial linear layer, the others one block each (BigSleep).
    """
    generator = model.generator
    dtype = generator.gen_z.weight.dtype  # the frozen model's precision; z and classes stay fp32
    conditions = torch.cat((z.to(dtype), model.embeddings(classes.to(dtype))), dim=1)
    rows = iter(conditions.split(1)) if conditions.shape[0] > 1 else None
    first = next(rows) if rows else conditions
    x = generator.gen_z(first)
    # The weights came from TensorFlow: the linear output is laid out (4, 4, channels).
    x = x.view(1, 4, 4, 16 * generator.config.channel_width).permute(0, 3, 1, 2)
    x = x.contiguous(memory_format=torch.channels_last)  # the layout of the weights (load_biggan)
    for layer in generator.layers:
        if hasattr(layer, "bn_0"):  # a GenBlock; the self-attention layer takes no condition
            x = layer(x, next(rows) if rows else conditions, truncation)
        else:
            x = layer(x)
    x = generator.relu(generator.bn(x, truncation))
    return torch.tanh(generator.conv_to_rgb(x)[:, :3].float())

