"""Precision: what --precision resolves to on each device, and fp16 refused on the CPU."""

from __future__ import annotations

import pytest
import torch

from clipgen.errors import SettingsError
from clipgen.hardware import resolve_precision

CPU = torch.device("cpu")


def test_precision_resolution(monkeypatch):
    import clipgen.hardware as precision

    monkeypatch.setattr(precision, "cpu_has_fast_bf16", lambda: True)
    assert resolve_precision("auto", CPU) == torch.bfloat16
    monkeypatch.setattr(precision, "cpu_has_fast_bf16", lambda: False)
    assert resolve_precision("auto", CPU) == torch.float32
    assert resolve_precision("bf16", CPU) == torch.bfloat16
    with pytest.raises(SettingsError, match="fp16 is for GPUs"):
        resolve_precision("fp16", CPU)


def test_fp16_on_cpu_is_one_line_exit_2(run_cli, tiny_clip, tmp_path):
    code, _, err = run_cli(["generate", "a cat", "--clip", tiny_clip, "--device", "cpu", "--precision", "fp16",
                            "--out", tmp_path / "out", "--steps", "1"])
    assert code == 2 and "fp16 is for GPUs" in err and "Traceback" not in err
    assert not (tmp_path / "out").exists()
