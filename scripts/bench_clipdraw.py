#!/usr/bin/env python
"""Benchmark the CLIPDraw rasteriser (forward + backward time, peak RSS); see clipgen.bench.raster.

Each case runs in a fresh Python process (this script again, with --case) so that the
peak RSS belongs to that case alone. JSON lines on stdout.

    OMP_NUM_THREADS=1 python scripts/bench_clipdraw.py --threads 1          # the default cases
    python scripts/bench_clipdraw.py --case 256 224 --radius 0.1 --width 1  # one case, here
"""

import argparse
import json
import os
import subprocess
import sys

from clipgen.bench.raster import DEFAULT_CASES, bench_case


def run_cases(cases=DEFAULT_CASES, repeats: int = 3, device: str = "cpu", threads: int | None = None) -> list[dict]:
    """Each case in a fresh interpreter (for a clean peak RSS); returns their dicts."""
    results = []
    for strokes, side, radius, width in cases:
        command = [sys.executable, os.path.abspath(__file__), "--case", str(strokes), str(side),
                   "--radius", str(radius), "--width", str(width), "--repeats", str(repeats), "--device", device]
        if threads:
            command += ["--threads", str(threads)]
        done = subprocess.run(command, capture_output=True, text=True, check=True, env=os.environ.copy())
        results.append(json.loads(done.stdout.strip().splitlines()[-1]))
    return results


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--case", nargs=2, type=int, metavar=("STROKES", "SIDE"))
    parser.add_argument("--radius", type=float, default=0.1)
    parser.add_argument("--width", type=float, default=1.0)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", type=int, default=None)
    args = parser.parse_args(argv)
    if args.case:
        results = [bench_case(*args.case, repeats=args.repeats, device=args.device, threads=args.threads,
                              radius=args.radius, width=args.width)]
    else:
        results = run_cases(repeats=args.repeats, device=args.device, threads=args.threads)
    for result in results:
        sys.stdout.write(json.dumps(result) + "\n")


if __name__ == "__main__":
    main()
