"""Precision: what --precision resolves to on each device, and fp16 refused on the CPU."""

from __future__ import annotations

import pytest
import torch

from clipgen.errors import SettingsError
import json

import clipgen.kernel_rates as kernel_rates
from clipgen.hardware import choose_precision, resolve_precision
from clipgen.kernel_rates import PrecisionProbe

CPU = torch.device("cpu")


def _probe(bf16_over_fp32: float, machine: str = "test machine") -> PrecisionProbe:
    return PrecisionProbe(machine=machine, capability="AVX2", threads=1, fp32_matmul=100.0,
                          bf16_matmul=100.0 * bf16_over_fp32, fp32_conv=50.0, bf16_conv=50.0 * bf16_over_fp32)


def test_auto_precision_follows_the_measured_speed_not_the_cpu_flags(monkeypatch):
    import clipgen.hardware as precision

    monkeypatch.setattr(precision, "cpu_has_fast_bf16", lambda: True)  # flags say bf16 ...
    monkeypatch.setattr(precision, "cached_precision_probe", lambda folder: _probe(0.1))  # ... timing says no
    choice = choose_precision("auto", CPU)
    assert choice.dtype == torch.float32 and "0.10×" in choice.reason
    monkeypatch.setattr(precision, "cached_precision_probe", lambda folder: _probe(2.0))
    assert resolve_precision("auto", CPU) == torch.bfloat16
    assert choose_precision("auto", CPU).to_dict()["probe"]["bf16_speedup"] == 2.0
    assert choose_precision("fp32", CPU).probe is None  # an explicit precision measures nothing
    assert resolve_precision("bf16", CPU) == torch.bfloat16
    with pytest.raises(SettingsError, match="fp16 is for GPUs"):
        resolve_precision("fp16", CPU)


def test_fp16_on_cpu_is_one_line_exit_2(run_cli, tiny_clip, tmp_path):
    code, _, err = run_cli(["generate", "a cat", "--clip", tiny_clip, "--device", "cpu", "--precision", "fp16",
                            "--out", tmp_path / "out", "--steps", "1"])
    assert code == 2 and "fp16 is for GPUs" in err and "Traceback" not in err
    assert not (tmp_path / "out").exists()


def test_probe_is_measured_once_per_machine_and_torch_version(tmp_path, monkeypatch):
    measured = []

    def measure():
        measured.append(1)
        return _probe(0.5, machine=kernel_rates.machine_key())

    monkeypatch.setattr(kernel_rates, "measure_precision_probe", measure)
    first = kernel_rates.cached_precision_probe(tmp_path)
    again = kernel_rates.cached_precision_probe(tmp_path)
    assert first == again and len(measured) == 1
    (cached,) = tmp_path.glob("precision-probe-*.json")
    assert json.loads(cached.read_text())["bf16_speedup"] == 0.5
    monkeypatch.setattr(kernel_rates, "machine_key", lambda: "another CPU | torch 9")
    kernel_rates.cached_precision_probe(tmp_path)
    assert len(measured) == 2  # a new machine or torch is measured afresh
    cached.write_text("{not json")
    monkeypatch.undo()
    monkeypatch.setattr(kernel_rates, "measure_precision_probe", measure)
    assert kernel_rates.cached_precision_probe(tmp_path).machine == kernel_rates.machine_key()
    assert len(measured) == 3  # an unreadable cache is measured again, not an error


def test_the_real_probe_reports_both_precisions():
    probe = kernel_rates.measure_precision_probe()
    assert min(probe.fp32_matmul, probe.bf16_matmul, probe.fp32_conv, probe.bf16_conv) > 0
    assert probe.machine == kernel_rates.machine_key()
