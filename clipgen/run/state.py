"""Run state for checkpoint and resume: ``OUT/<slug>/state.pt``, tensors and plain data only.

Everything here loads with ``torch.load(weights_only=True)``: generator parameters (only
what is optimised, not frozen networks), optimiser state, the step, the loss history,
every RNG the run draws from, the latent anchor's start (``--latent-l2``: a refinement
starts from prior tokens a resumed run has no other record of) and the resolved settings
as JSON. Restoring all of it makes a resumed run continue exactly where the interrupted
one stopped.
"""

from __future__ import annotations

import json
import random
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from clipgen.atomic import atomic_path
from clipgen.errors import ModelError, one_line

STATE_FILE = "state.pt"
FORMAT = 1


def trainable_state(generator: torch.nn.Module) -> dict[str, torch.Tensor]:
    """Optimised parameters plus the generator's own buffers (frozen sub-networks are left out)."""
    state = {name: p.detach().clone() for name, p in generator.named_parameters() if p.requires_grad}
    state.update({name: b.detach().clone() for name, b in generator.named_buffers(recurse=False)
                  if name not in generator._non_persistent_buffers_set})
    return state


@torch.no_grad()
def load_trainable_state(generator: torch.nn.Module, state: dict[str, torch.Tensor]) -> None:
    params = dict(generator.named_parameters())
    buffers = dict(generator.named_buffers(recurse=False))
    for name, value in state.items():
        target = params.get(name, buffers.get(name))
        if target is None or target.shape != value.shape:
            raise ModelError(f"saved state has {name!r} {tuple(value.shape)}, which this generator "
                             "does not have; was it saved by another version or generator?")
        target.copy_(value)


def capture_rng() -> dict[str, Any]:
    np_state = np.random.get_state()
    py_version, py_state, py_gauss = random.getstate()
    return {
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
        "numpy_keys": torch.from_numpy(np_state[1].astype(np.int64)),
        "numpy_pos": int(np_state[2]),
        "numpy_has_gauss": int(np_state[3]),
        "numpy_gauss": float(np_state[4]),
        "python": torch.tensor(py_state, dtype=torch.int64),
        "python_version": int(py_version),
        "python_gauss": py_gauss,
    }


def restore_rng(rng: dict[str, Any]) -> None:
    torch.set_rng_state(rng["torch"])
    if rng["cuda"] and torch.cuda.is_available():
        # Saved with more GPUs than this machine has: the run's own device comes first.
        for index, state in enumerate(rng["cuda"][: torch.cuda.device_count()]):
            torch.cuda.set_rng_state(state, index)
    np.random.set_state(("MT19937", rng["numpy_keys"].numpy().astype(np.uint32), rng["numpy_pos"],
                         rng["numpy_has_gauss"], rng["numpy_gauss"]))
    random.setstate((rng["python_version"], tuple(int(v) for v in rng["python"].tolist()),
                     rng["python_gauss"]))


@dataclass
class RunState:
    step: int
    generator: dict[str, torch.Tensor]
    optimizer: dict[str, Any]
    rng: dict[str, Any]
    losses: list[float]
    settings: dict[str, Any]
    initial_similarity: float
    anchor_starts: list[torch.Tensor] = field(default_factory=list)  # empty: the run has no anchor


def save_state(folder: Path, state: RunState) -> Path:
    path = folder / STATE_FILE
    payload = {
        "format": FORMAT, "step": state.step, "generator": state.generator, "optimizer": state.optimizer,
        "rng": state.rng, "losses": torch.tensor(state.losses, dtype=torch.float64),
        "settings_json": json.dumps(state.settings), "initial_similarity": state.initial_similarity,
        "anchor_starts": state.anchor_starts,
    }
    with atomic_path(path) as tmp:
        torch.save(payload, tmp)
    return path


def load_state(folder: Path) -> RunState:
    path = Path(folder) / STATE_FILE
    if not path.is_file():
        raise ModelError(f"{folder} has no {STATE_FILE}; give the folder of a run started with "
                         "checkpoints (--checkpoint-every or --save-every > 0)")
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
        if payload.get("format") != FORMAT:
            raise ValueError(f"unknown state format {payload.get('format')!r}")
        return RunState(
            step=int(payload["step"]), generator=payload["generator"], optimizer=payload["optimizer"],
            rng=payload["rng"], losses=payload["losses"].tolist(),
            settings=json.loads(payload["settings_json"]),
            initial_similarity=float(payload["initial_similarity"]),
            anchor_starts=list(payload.get("anchor_starts", [])),
        )
    except Exception as exc:  # noqa: BLE001 - any failure means the file cannot be trusted
        raise ModelError(f"{path} is corrupt or truncated ({one_line(exc)}); resume from an intact copy "
                         "or start the run again") from None


class Checkpointer:
    """A loop callback that saves ``state.pt`` every ``every`` steps, and on demand.

    It must be the step's last callback, so the RNG state it saves is exactly the one the
    next step starts from, whatever the other callbacks drew.
    """

    def __init__(self, folder: Path, generator: torch.nn.Module, optimizer: torch.optim.Optimizer,
                 settings: dict[str, Any], losses: list[float], initial_similarity: float, every: int,
                 anchor_starts: tuple[torch.Tensor, ...] = ()):
        self.folder, self.generator, self.optimizer = folder, generator, optimizer
        self.settings, self.losses, self.initial_similarity, self.every = settings, losses, initial_similarity, every
        self.anchor_starts = list(anchor_starts)

    def __call__(self, state) -> None:
        if self.every and state.step and state.step % self.every == 0:
            self.save(state.step)

    def save(self, step: int) -> Path:
        return save_state(self.folder, RunState(
            step=step, generator=trainable_state(self.generator), optimizer=self.optimizer.state_dict(),
            rng=capture_rng(), losses=[float(v) for v in self.losses], settings=self.settings,
            initial_similarity=self.initial_similarity, anchor_starts=self.anchor_starts))
