"""`clipgen bench`: steps/s, time per stage and peak memory of a fixed configuration."""

from __future__ import annotations

import json
import sys
from typing import Annotated, Optional

import typer

from clipgen.cli.console import stdout_console
from clipgen.cli.generate import setting_help


def bench(
    preset: Annotated[str, typer.Option(help="Benchmark case (see --list).")] = "vqgan-256-cut32",
    steps: Annotated[int, typer.Option(min=1, help="Timed steps (samples, for a prior case).")] = 5,
    warmup: Annotated[int, typer.Option(min=0, help="Untimed steps (samples) first.")] = 1,
    device: Annotated[str, typer.Option(help=setting_help("device"))] = "auto",
    clip: Annotated[Optional[str], typer.Option(help="CLIP instead of the case's ViT-B-32:none.")] = None,
    size: Annotated[Optional[int], typer.Option(help="Square size instead of the case's.")] = None,
    cutn: Annotated[Optional[int], typer.Option(help="Cutouts instead of the case's.")] = None,
    precision: Annotated[str, typer.Option(help=setting_help("precision"))] = "auto",
    cut_batch: Annotated[Optional[int], typer.Option(help=setting_help("cut_batch"))] = None,
    checkpointing: Annotated[bool, typer.Option(help="Decoder gradient checkpointing (vqgan).")] = False,
    compile: Annotated[str, typer.Option(help=setting_help("compile"))] = "auto",
    roofline: Annotated[bool, typer.Option(
        help="Also count the step's FLOPs, measure this machine's peaks and report the efficiency.")] = False,
    profile: Annotated[int, typer.Option(
        min=0, help="Also profile one step and list this many ops by self time (torch.profiler).")] = 0,
    threads: Annotated[Optional[int], typer.Option(min=1, help="CPU threads (default: torch's, from OMP_NUM_THREADS).")] = None,
    list_cases: Annotated[bool, typer.Option("--list", help="List the cases and exit.")] = False,
    json_out: Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")] = False,
) -> None:
    """Time a fixed configuration with random-weight models of the real architectures."""
    from rich.table import Table

    from clipgen.bench.cases import CASES, STAGES, run_bench

    console = stdout_console()
    if list_cases:
        table = Table("case", "description")
        for name, case in CASES.items():
            table.add_row(name, case.description)
        console.print(table)
        return
    if threads:
        import torch

        torch.set_num_threads(threads)  # the CLI is the edge: the library never sets threads
    # run_bench checks every value against the Settings schema before it builds anything.
    result = run_bench(preset, steps=steps, warmup=warmup, device=device, clip=clip, size=size, cutn=cutn,
                       precision=precision, cut_batch=cut_batch, checkpointing=checkpointing, compile=compile,
                       with_roofline=roofline, profile_ops=profile)
    if json_out:
        sys.stdout.write(json.dumps(result, indent=2) + "\n")
        return
    if result.get("kind") == "prior":
        console.print(f"{result['preset']} on {result['device']} ({result['threads']} threads, {result['precision']}, "
                      f"{result['parameters'] / 1e6:.0f}M parameters): {result['seconds_per_sample']:.2f} s/sample, "
                      f"{result['tokens_per_second']:.1f} tokens/s", markup=False)
        console.print(f"peak memory ({result['peak_memory_kind']}): {result['peak_memory_mb']:.0f} MB")
        return
    table = Table("stage", "s/step", "share", title=f"{result['preset']} on {result['device']} "
                  f"({result['threads']} threads, {result['precision']}, {result['size']}², cutn "
                  f"{result['cutn']} in chunks of {result['cut_batch'] or result['cutn']}): "
                  f"{result['steps_per_second']:.3f} steps/s")
    total = result["seconds_per_step"]
    for stage in STAGES:
        seconds = result["stages"][stage]
        table.add_row(stage, f"{seconds:.4f}", f"{100 * seconds / total:.1f}%")
    table.add_row("total", f"{total:.4f}", "100%")
    console.print(table)
    console.print(f"peak memory ({result['peak_memory_kind']}): {result['peak_memory_mb']:.0f} MB")
    if "roofline" in result:
        _print_roofline(console, result["roofline"], total)
    if "profile" in result:
        ops = Table("op (one step)", "calls", "self ms", "share", title="torch.profiler, by self time")
        for row in result["profile"]:
            ops.add_row(row["op"][:60], str(row["calls"]), f"{row['self_ms']:.1f}", f"{100 * row['self_share']:.1f}%")
        console.print(ops)


def _print_roofline(console, roof: dict, measured: float) -> None:
    from rich.table import Table

    console.print(f"step: {roof['flops_per_step'] / 1e12:.3f} TFLOP ({roof['conv_flops'] / 1e9:.0f} GFLOP in "
                  f"convolutions, {roof['matmul_flops'] / 1e9:.0f} in matrix products); peaks measured on "
                  f"conv {roof['conv_shape']} (c_in, c_out, h, w, k) and matmul {roof['matmul_shape']} (m, k, n)",
                  markup=False)
    table = Table("precision", "matmul GFLOP/s", "conv GFLOP/s", "floor s/step", "efficiency")
    for name, floor in roof["floor_seconds"].items():
        peaks = roof["peaks_gflops"][name]
        measured_here = name == roof["precision"]
        table.add_row(name + (" (measured)" if measured_here else ""), f"{peaks.get('matmul', 0):.1f}",
                      f"{peaks['conv']:.1f}" if "conv" in peaks else "-", f"{floor:.3f}",
                      f"{100 * floor / measured:.0f}%" if measured_here else "-")
    console.print(table)
