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
    # run_bench checks every value against the Settings schema before it builds anything.
    result = run_bench(preset, steps=steps, warmup=warmup, device=device, clip=clip, size=size, cutn=cutn,
                       precision=precision, cut_batch=cut_batch, checkpointing=checkpointing, compile=compile)
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
