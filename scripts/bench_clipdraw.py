#!/usr/bin/env python
"""Benchmark the CLIPDraw rasteriser (forward + backward time, peak RSS); see clipgen.bench.raster.

    OMP_NUM_THREADS=1 python scripts/bench_clipdraw.py --threads 1
"""

from clipgen.bench.raster import main

if __name__ == "__main__":
    main()
