"""Time and peak memory of ``generate_mosaic`` (one core), per size.

Usage: ``python bench/synthetic_speed.py [--sizes 3000x4 12000x1] [--seed 0]`` (``<pixels>x<µm/px>``).
Each size runs in a fresh process so that its peak resident memory (ru_maxrss) is its own; the import baseline is
printed separately so the generator's own share is visible.
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import os
import resource
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run as a script from anywhere

os.environ.setdefault("OMP_NUM_THREADS", "1")  # one core, as on the 2-core demo machine with a web server beside it


def _measure(size: int, um_per_px: float, seed: int, queue: mp.Queue) -> None:
    from inference.ml.synthetic import generate_mosaic

    base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    start, cpu_start = time.perf_counter(), time.process_time()
    mosaic = generate_mosaic(height=size, width=size, um_per_px=um_per_px, seed=seed)
    seconds, cpu = time.perf_counter() - start, time.process_time() - cpu_start
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    queue.put((seconds, cpu, base, peak, float((mosaic.partial == 255).mean())))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", nargs="+", default=["3000x4", "12000x1"], help="<pixels>x<um_per_px>")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    ctx = mp.get_context("spawn")
    print(f"load average before: {os.getloadavg()[0]:.2f} (other processes slow the wall time, less the CPU time)")
    print(
        f"{'size':>15} {'µm/px':>6} {'wall s':>7} {'CPU s':>6} {'MP/s':>6} {'import MB':>10} {'peak MB':>8} {'unlab.':>7}"
    )
    for spec in args.sizes:
        size_s, um_s = spec.split("x")
        size, um_per_px = int(size_s), float(um_s)
        queue: mp.Queue = ctx.Queue()
        proc = ctx.Process(target=_measure, args=(size, um_per_px, args.seed, queue))
        proc.start()
        proc.join()
        if proc.exitcode != 0:
            raise SystemExit(f"measuring {spec} failed (exit code {proc.exitcode})")
        seconds, cpu, base, peak, unl = queue.get()
        mp_s = size * size / 1e6 / seconds
        print(
            f"{size:>7} x {size:<5} {um_per_px:>6g} {seconds:>7.1f} {cpu:>6.1f} {mp_s:>6.1f} {base:>10.0f} {peak:>8.0f}"
            f" {unl:>7.3f}"
        )


if __name__ == "__main__":
    main()
