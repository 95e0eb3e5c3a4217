"""`clipgen batch FILE`: many prompts, models loaded once, a contact sheet at the end."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Annotated, Optional

import typer

from clipgen.cli.console import stderr_console, stdout_console
from clipgen.cli.generate import setting_help


def batch(
    file: Annotated[str, typer.Argument(help="Prompt file: one prompt per line, '# comments', "
                                        "'prompt | key=value …' overrides.")],
    preset: Annotated[Optional[str], typer.Option(help="Preset for every prompt.")] = None,
    set_: Annotated[Optional[list[str]], typer.Option("--set", help="key=value for every prompt.")] = None,
    clip: Annotated[Optional[list[str]], typer.Option("--clip", help="CLIP model(s) for every prompt.")] = None,
    generator: Annotated[Optional[str], typer.Option("--generator", "-g", help=setting_help("generator"))] = None,
    steps: Annotated[Optional[int], typer.Option(help="Steps per prompt.")] = None,
    size: Annotated[Optional[str], typer.Option(help=setting_help("size"))] = None,
    seed: Annotated[Optional[int], typer.Option(help="Seed (per-line seed= overrides it).")] = None,
    device: Annotated[Optional[str], typer.Option(help="Device for this process.")] = None,
    out: Annotated[str, typer.Option(help="Output directory: a folder per prompt + index.html.")] = "outputs",
    resume: Annotated[bool, typer.Option("--resume", help="Skip finished prompts; continue interrupted ones.")] = False,
    shard: Annotated[Optional[str], typer.Option(help="I/N: process every N-th prompt starting at I.")] = None,
    devices: Annotated[Optional[str], typer.Option(help="One worker process per device, e.g. cuda:0,cuda:1.")] = None,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress or summary table.")] = False,
    json_out: Annotated[bool, typer.Option("--json", help="Print per-prompt results as JSON.")] = False,
) -> None:
    """Generate an image for every prompt in FILE; exit status 1 if any prompt failed."""
    from clipgen.config.settings import resolve_run_settings
    from clipgen.outputs.contact_sheet import write_index
    from clipgen.run.batch import parse_shard, read_batch_file, run_batch, select_shard

    items = read_batch_file(file)
    shard_index, shard_count = parse_shard(shard)
    common = {"clip": clip, "generator": generator, "steps": steps, "size": size, "seed": seed,
              "device": device, "out": out}
    base_flags = {k: v for k, v in common.items() if v is not None}
    # Fail on bad shared options before any prompt runs.
    resolve_run_settings(preset=preset, flags={**base_flags, "prompt": "x"}, assignments=set_)
    if devices:
        raise typer.Exit(_run_workers(file, devices, shard_index, shard_count, preset, set_, base_flags,
                                      resume, quiet, Path(out)))
    selected = select_shard(items, shard_index, shard_count)

    def resolve(item):
        return resolve_run_settings(preset=preset, flags={**base_flags, "prompt": item.prompt},
                                    assignments=[*(set_ or []), *item.overrides])

    console = stderr_console()

    def on_done(outcome):
        if quiet:
            return
        where = f"line {outcome.item.line}"
        if outcome.status == "failed":
            console.print(f"[red]failed[/] {where}: {outcome.error}")
        else:
            console.print(f"[green]{outcome.status}[/] {where}: {outcome.item.prompt} → {outcome.folder}")

    outcomes = run_batch(selected, resolve, Path(out), resume=resume, on_done=on_done)
    if Path(out).is_dir():
        write_index(Path(out))
    if json_out:
        rows = [{"line": o.item.line, "prompt": o.item.prompt, "status": o.status,
                 "folder": str(o.folder) if o.folder else None, "score": o.score, "seed": o.seed,
                 "seconds": round(o.seconds, 3), "error": o.error} for o in outcomes]
        sys.stdout.write(json.dumps(rows, indent=2) + "\n")
    elif not quiet:
        _summary_table(outcomes, Path(out))
    raise typer.Exit(1 if any(o.status == "failed" for o in outcomes) else 0)


def _summary_table(outcomes, out: Path) -> None:
    from rich.table import Table

    table = Table("line", "prompt", "status", "seed", "score", "time")
    for o in outcomes:
        table.add_row(str(o.item.line), o.item.prompt, o.status, str(o.seed or ""),
                      f"{o.score:.3f}" if o.score is not None else "", f"{o.seconds:.1f} s")
    console = stdout_console()
    console.print(table)
    console.print(f"contact sheet: {out / 'index.html'}")


def _run_workers(file, devices, shard_index, shard_count, preset, set_, flags, resume, quiet, out) -> int:
    """One `clipgen batch` process per device, each on its own sub-shard of this shard."""
    from clipgen.outputs.contact_sheet import write_index

    names = [d.strip() for d in devices.split(",") if d.strip()]
    threads = max(1, (os.cpu_count() or 1) // len(names))
    processes = []
    for k, device in enumerate(names):
        args = [sys.executable, "-m", "clipgen", "batch", file, "--device", device,
                "--shard", f"{shard_index + shard_count * k}/{shard_count * len(names)}"]
        for key, value in flags.items():
            if key == "device":
                continue
            for v in (value if isinstance(value, list) else [value]):
                args += [f"--{key}", str(v)]
        if preset:
            args += ["--preset", preset]
        for assignment in set_ or []:
            args += ["--set", assignment]
        if resume:
            args.append("--resume")
        if quiet:
            args.append("--quiet")
        env = {**os.environ, "OMP_NUM_THREADS": str(threads)}
        processes.append(subprocess.Popen(args, env=env))
    codes = [p.wait() for p in processes]
    if out.is_dir():
        write_index(out)
    return max(codes)
