"""The GPU check's measuring parts, each writing into OUT as it goes (a part cut short by
its time limit keeps what it finished). Run by scripts/gpu_check.sh:

    python scripts/gpu_check.py env OUT       versions, the card, its memory        -> env.json
    python scripts/gpu_check.py bench OUT     the bench grid                        -> bench.jsonl
    python scripts/gpu_check.py memory OUT    the largest VQGAN size at cutn 32     -> memory.json
    python scripts/gpu_check.py summary OUT   one table of all of it                -> summary.md
"""

from __future__ import annotations

import argparse
import json
import platform
import subprocess
import sys
import time
import traceback
from pathlib import Path

import torch

from clipgen.bench.cases import run_bench
from clipgen.config.settings import resolve_run_settings
from clipgen.errors import ClipgenError
from clipgen.guidance.clip_specs import parse_clip_spec
from clipgen.run.plan import estimate_peak

CASES = ("vqgan-256-cut32", "vqgan-512-cut64", "dvae-256-cut32", "biggan-256-cut32", "clipdraw-224-cut8")
PRECISIONS = ("auto", "fp32")
COMPILES = ("off", "on")
STEPS, WARMUP = 10, 3
IMAGE_STEPS = 300  # s/image is quoted for a 300-step run, as README's GPU table does


def env(out: Path) -> None:
    info = {"python": sys.version.split()[0], "platform": platform.platform(), "torch": torch.__version__,
            "cuda": torch.version.cuda, "cudnn": torch.backends.cudnn.version(),
            "cuda_available": torch.cuda.is_available()}
    try:
        info["nvidia_smi"] = subprocess.run(["nvidia-smi"], capture_output=True, text=True, timeout=30).stdout
    except (OSError, subprocess.TimeoutExpired) as exc:
        info["nvidia_smi"] = f"not run: {exc}"
    if torch.cuda.is_available():
        props = torch.cuda.get_device_properties(0)
        info.update(device=props.name, capability=f"{props.major}.{props.minor}",
                    memory_gib=round(props.total_memory / 2**30, 1), devices=torch.cuda.device_count())
    (out / "env.json").write_text(json.dumps(info, indent=2) + "\n")


def bench(out: Path, budget_s: float) -> None:
    """The grid, compile off before on (on costs its compile time), each run a line of
    bench.jsonl; what the budget leaves out is listed as skipped."""
    started = time.monotonic()
    grid = [(case, precision, compiled) for compiled in COMPILES for case in CASES for precision in PRECISIONS]
    with open(out / "bench.jsonl", "a") as lines:
        for case, precision, compiled in grid:
            row = {"case": case, "precision_asked": precision, "compile_asked": compiled}
            if time.monotonic() - started > budget_s:
                row["skipped"] = f"over the {budget_s:.0f} s budget"
            else:
                try:
                    result = run_bench(case, steps=STEPS, warmup=WARMUP, device="cuda", precision=precision,
                                       compile=compiled)
                    result["seconds_per_image"] = result["seconds_per_step"] * IMAGE_STEPS
                    row.update(result)
                except Exception as exc:  # noqa: BLE001 - a failing case is a finding, not the end of the check
                    row["error"] = f"{type(exc).__name__}: {exc}"
                    row["traceback"] = traceback.format_exc(limit=6)
                finally:
                    torch.cuda.empty_cache()
            lines.write(json.dumps(row) + "\n")
            lines.flush()


def memory(out: Path) -> None:
    """The largest VQGAN size the estimate admits at cutn 32, then one real step there,
    with and without decoder checkpointing; the estimate against max_memory_allocated."""
    rows = []
    for checkpointing in (False, True):
        size = largest_by_estimate()
        row = {"checkpointing": checkpointing, "largest_by_estimate": size,
               "estimate_gib": round(estimate_at(size) / 2**30, 2)}
        for attempt in range(4):  # step down until a real step fits
            try:
                result = run_bench("vqgan-256-cut32", steps=1, warmup=0, device="cuda", size=size, cutn=32,
                                   checkpointing=checkpointing, compile="off")
            except (torch.OutOfMemoryError, ClipgenError) as exc:
                row.setdefault("failed_sizes", []).append({"size": size, "error": str(exc).splitlines()[0]})
                size -= 128
                continue
            finally:
                torch.cuda.empty_cache()
            measured = result["peak_memory_mb"] * 2**20
            row.update(largest_that_ran=size, measured_gib=round(measured / 2**30, 2),
                       estimate_over_measured=round(estimate_at(size) / measured, 3),
                       seconds_per_step=result["seconds_per_step"])
            break
        rows.append(row)
        (out / "memory.json").write_text(json.dumps(rows, indent=2) + "\n")


def estimate_at(size: int) -> int:
    settings = resolve_run_settings(flags={"prompt": "x", "generator": "vqgan", "size": [size, size], "cutn": 32,
                                           "device": "cuda"})
    return estimate_peak(settings, (parse_clip_spec("ViT-B-32:none"),), torch.bfloat16)


def largest_by_estimate(step: int = 64) -> int:
    free, _ = torch.cuda.mem_get_info()
    low, high = 256, 16384  # sizes in multiples of the VQGAN's 16-pixel tokens
    while high - low > step:
        middle = (low + high) // 2 // step * step
        low, high = (middle, high) if estimate_at(middle) <= free else (low, middle)
    return low


def summary(out: Path) -> None:
    text = ["# GPU check", ""]
    if (out / "env.json").is_file():
        info = json.loads((out / "env.json").read_text())
        text += [f"{info.get('device', 'no CUDA device')}, {info.get('memory_gib', '?')} GiB; torch {info['torch']}, "
                 f"CUDA {info['cuda']}, cuDNN {info['cudnn']}", ""]
    if (out / "bench.jsonl").is_file():
        text += ["| case | precision | compile | steps/s | s/image (300 steps) | peak GiB | note |",
                 "|---|---|---|---|---|---|---|"]
        for line in (out / "bench.jsonl").read_text().splitlines():
            row = json.loads(line)
            if "steps_per_second" in row:
                text.append(f"| {row['case']} | {row['precision']} | {'on' if row['compile'] else 'off'} | "
                            f"{row['steps_per_second']:.2f} | {row['seconds_per_image']:.1f} | "
                            f"{row['peak_memory_mb'] / 1024:.2f} | |")
            else:
                note = row.get("skipped") or row.get("error", "")
                text.append(f"| {row['case']} | {row['precision_asked']} | {row['compile_asked']} | | | | "
                            f"{note.splitlines()[0][:120]} |")
        text.append("")
    if (out / "memory.json").is_file():
        text += ["| VQGAN cutn 32 | by estimate | estimate GiB | ran at | measured GiB | estimate / measured |",
                 "|---|---|---|---|---|---|"]
        for row in json.loads((out / "memory.json").read_text()):
            text.append(f"| checkpointing {'on' if row['checkpointing'] else 'off'} | {row['largest_by_estimate']}² | "
                        f"{row['estimate_gib']} | {row.get('largest_that_ran', '–')}² | {row.get('measured_gib', '–')} | "
                        f"{row.get('estimate_over_measured', '–')} |")
    (out / "summary.md").write_text("\n".join(text) + "\n")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("part", choices=("env", "bench", "memory", "summary"))
    parser.add_argument("out", type=Path)
    parser.add_argument("--budget-s", type=float, default=200.0, help="bench: start no run after this long")
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    if args.part in ("bench", "memory") and not torch.cuda.is_available():
        sys.exit(f"gpu_check {args.part}: torch sees no CUDA GPU")
    if args.part == "bench":
        bench(args.out, args.budget_s)
    else:
        {"env": env, "memory": memory, "summary": summary}[args.part](args.out)


if __name__ == "__main__":
    main()
