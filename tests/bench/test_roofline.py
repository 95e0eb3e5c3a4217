"""`clipgen bench --roofline`: FLOPs counted op by op, peaks on the case's own shapes,
floor and efficiency."""

from __future__ import annotations

import json

import pytest
import torch
from torch import nn

from clipgen.bench.roofline import count_flops, floor_seconds, roofline
import clipgen.packed_linear as packed_linear
from clipgen.packed_linear import FrozenLinear, packing_available


def test_flops_of_a_conv_and_a_linear_are_counted_by_kind():
    conv = nn.Conv2d(4, 8, 3, padding=1)
    linear = nn.Linear(16, 32)
    x = torch.randn(1, 4, 10, 10)
    tally = count_flops(lambda: (conv(x), linear(torch.randn(5, 16))))
    assert tally.conv == 2 * 8 * 10 * 10 * 4 * 9
    assert tally.matmul == 2 * 5 * 16 * 32
    assert tally.heaviest("conv") == (4, 8, 10, 10, 3, 1, 1)
    assert tally.heaviest("matmul") == (5, 16, 32)


def test_backward_through_a_frozen_conv_counts_the_input_gradient_only():
    conv = nn.Conv2d(4, 8, 3, stride=2, padding=1).requires_grad_(False)
    x = torch.randn(1, 4, 16, 16, requires_grad=True)
    forward = 2 * 8 * 8 * 8 * 4 * 9
    tally = count_flops(lambda: conv(x).sum().backward())
    assert tally.conv == 2 * forward  # forward + grad of the input, no weight gradient
    assert tally.heaviest("conv") == (4, 8, 16, 16, 3, 2, 1)


@pytest.mark.skipif(not packing_available(), reason="this torch has no oneDNN packed linear")
def test_products_through_packed_weights_count_as_matmuls(monkeypatch):
    monkeypatch.setattr(packed_linear, "MIN_PACKED_ELEMENTS", 0)
    layer = FrozenLinear(nn.Linear(16, 32).requires_grad_(False))
    x = torch.randn(5, 16, requires_grad=True)
    tally = count_flops(lambda: layer(x).sum().backward())
    assert tally.matmul == 2 * (2 * 5 * 16 * 32)  # forward, and the input's gradient
    assert tally.heaviest("matmul") in {(5, 16, 32), (5, 32, 16)}


def test_floor_adds_each_kind_at_its_own_peak():
    conv = nn.Conv2d(2, 2, 1)
    tally = count_flops(lambda: (conv(torch.randn(1, 2, 5, 5)), torch.randn(3, 4) @ torch.randn(4, 6)))
    assert floor_seconds(tally, {"conv": 100.0, "matmul": 10.0}) == pytest.approx(tally.conv / 100 + tally.matmul / 10)


def test_roofline_efficiency_is_floor_over_measured():
    linear = nn.Linear(256, 256)
    tally = count_flops(lambda: linear(torch.randn(256, 256)))
    roof = roofline(tally, measured_seconds=1.0, measured_precision="fp32", device=torch.device("cpu"),
                    precisions=("fp32",))
    assert roof["flops_per_step"] == 2 * 256 ** 3
    assert roof["peaks_gflops"]["fp32"]["matmul"] > 0
    assert roof["efficiency"] == pytest.approx(roof["floor_seconds"]["fp32"] / 1.0)


def test_bench_roofline_json_and_table(run_cli, tiny_clip):
    base = ["bench", "--preset", "fourier-256-cut32", "--clip", tiny_clip, "--size", "32", "--cutn", "2",
            "--steps", "1", "--warmup", "1", "--device", "cpu", "--precision", "fp32", "--roofline"]
    code, out, err = run_cli([*base, "--json"])
    assert code == 0, err
    roof = json.loads(out)["roofline"]
    assert roof["precision"] == "fp32" and set(roof["floor_seconds"]) == {"fp32", "bf16"}
    # the tiny ViT's patch embedding runs as a matmul (tower_kernels.linear_patch_embed), so no conv is left
    assert roof["matmul_flops"] > 0 and roof["conv_flops"] == 0
    assert 0 < roof["efficiency"] < 1.5
    code, out, err = run_cli(base)
    assert code == 0, err
    assert "floor s/step" in out and "fp32 (measured)" in out


def test_roofline_is_refused_for_a_prior_case(run_cli):
    code, _, err = run_cli(["bench", "--preset", "dalle-mini-prior", "--roofline"])
    assert code == 2 and "--roofline" in err


def test_bench_profile_lists_ops_by_self_time(run_cli, tiny_clip):
    code, out, err = run_cli(["bench", "--preset", "pixels-256-cut32", "--clip", tiny_clip, "--size", "32",
                              "--cutn", "2", "--steps", "1", "--warmup", "0", "--device", "cpu", "--profile", "5",
                              "--json"])
    assert code == 0, err
    ops = json.loads(out)["profile"]
    assert len(ops) == 5 and all(row["calls"] >= 1 for row in ops)
    assert [row["self_ms"] for row in ops] == sorted((row["self_ms"] for row in ops), reverse=True)
    assert any(row["op"].startswith("aten::") for row in ops)


def test_a_faster_earlier_peak_is_kept():
    """On a machine whose speed drifts, the floor uses the best peak seen, before or after."""
    linear = nn.Linear(64, 64)
    tally = count_flops(lambda: linear(torch.randn(64, 64)))
    huge = {"fp32": {"matmul": 1e15}}
    roof = roofline(tally, measured_seconds=1.0, measured_precision="fp32", device=torch.device("cpu"),
                    precisions=("fp32",), earlier_peaks=huge)
    assert roof["peaks_gflops"]["fp32"]["matmul"] == 1e6
    assert roof["floor_seconds"]["fp32"] == pytest.approx(tally.matmul / 1e15)
