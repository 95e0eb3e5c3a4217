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
    shard: Annotated[Optional[str], typer.Option(
        help="I/N: every N-th prompt starting at I; auto: I and N from a SLURM job array or a Kubernetes "
             "indexed Job (auto/N where the count is not in the environment).")] = None,
    devices: Annotated[Optional[str], typer.Option(help="One worker process per device, e.g. cuda:0,cuda:1.")] = None,
    ray: Annotated[Optional[str], typer.Option(
        "--ray", metavar="ADDRESS",
        help="Run on Ray workers: local (a cluster on this machine), auto (the one `ray start` runs here) or "
             "ray://host:10001. Needs pip install 'clipgen[ray]'.")] = None,
    workers: Annotated[Optional[int], typer.Option(
        min=1, help="Ray workers to start (default: one per GPU, else one per --cpus-per-worker CPUs).")] = None,
    cpus_per_worker: Annotated[int, typer.Option(min=1, help="CPUs (and torch threads) per Ray worker.")] = 1,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress or summary table.")] = False,
    json_out: Annotated[bool, typer.Option("--json", help="Print per-prompt results as JSON.")] = False,
) -> None:
    """Generate an image for every prompt in FILE; exit status 1 if any prompt failed, 130 if stopped."""
    from clipgen.errors import SettingsError
    from clipgen.outputs.contact_sheet import write_index
    from clipgen.run.batch import read_batch_file, run_batch, settings_for
    from clipgen.run.shards import parse_shard

    items = read_batch_file(file)
    chosen = parse_shard(shard, os.environ)
    common = {"clip": clip, "generator": generator, "steps": steps, "size": size, "seed": seed,
              "device": device, "out": out}
    base_flags = {k: v for k, v in common.items() if v is not None}
    resolve = settings_for(preset, base_flags, set_)  # fails on bad shared options before any prompt runs
    if ray and devices:
        raise SettingsError("--ray and --devices both place workers; use --ray alone (one worker per GPU)")
    if devices:
        raise typer.Exit(_run_workers(file, devices, chosen.index, chosen.count, preset, set_, base_flags,
                                      resume, quiet, Path(out)))
    selected = chosen.select(items)
    console = stderr_console()
    if ray:
        outcomes = _run_on_ray(selected, resolve, Path(out), resume, ray, workers, cpus_per_worker, quiet, console)
    else:
        outcomes = run_batch(selected, resolve, Path(out), resume=resume,
                             on_done=None if quiet else lambda o: _print_outcome(console, o))
    if Path(out).is_dir():
        write_index(Path(out))
    if json_out:
        rows = [{"line": o.item.line, "prompt": o.item.prompt, "status": o.status,
                 "folder": str(o.folder) if o.folder else None, "score": o.score, "seed": o.seed,
                 "seconds": round(o.seconds, 3), "attempts": o.attempts, "error": o.error} for o in outcomes]
        sys.stdout.write(json.dumps(rows, indent=2) + "\n")
    elif not quiet:
        _summary_table(outcomes, Path(out))
    unfinished = len(selected) - sum(o.status in ("finished", "skipped", "failed") for o in outcomes)
    if unfinished:
        console.print(f"[yellow]stopped[/]: {unfinished} prompt(s) not finished; run the same command with "
                      "--resume to finish them")
        raise typer.Exit(130)
    raise typer.Exit(1 if any(o.status == "failed" for o in outcomes) else 0)


def _print_outcome(console, outcome) -> None:
    where = f"line {outcome.item.line}"
    if outcome.status == "failed":
        console.print(f"[red]failed[/] {where}: {outcome.error}")
    elif outcome.status == "interrupted":
        console.print(f"[yellow]interrupted[/] {where}: {outcome.item.prompt} (state saved in {outcome.folder})")
    else:
        console.print(f"[green]{outcome.status}[/] {where}: {outcome.item.prompt} → {outcome.folder}")


def _run_on_ray(items, resolve, out: Path, resume: bool, address: str, workers, cpus_per_worker: int, quiet: bool,
                console):
    """The batch on Ray workers, shown as one bar of prompts with counts of running and failed."""
    from clipgen.cli.progress import BatchProgress
    from clipgen.run.ray_batch import RayEvents, RayOptions, run_batch_on_ray

    options = RayOptions.at(address, workers=workers, cpus_per_worker=cpus_per_worker)
    with BatchProgress(console, len(items), quiet, _print_outcome) as bar:
        return run_batch_on_ray(items, resolve, out, resume, options,
                                RayEvents(on_start=bar.on_start, on_done=bar.on_done, on_retry=bar.on_retry,
                                          on_workers=bar.on_workers))


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
