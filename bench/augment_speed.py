"""Time of ``augment_pair`` on one 256 x 256 patch pair, and of one augmented ``PatchDataset`` item.

Usage: ``python bench/augment_speed.py [--repeats 300]``. Prints wall and CPU milliseconds per call.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run as a script from anywhere

import numpy as np  # noqa: E402

from inference.ml.augment import augment_pair  # noqa: E402
from inference.ml.sampling import PatchDataset  # noqa: E402
from inference.ml.synthetic import generate_mosaic  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=300)
    args = parser.parse_args()
    mosaic = generate_mosaic(height=512, width=512, um_per_px=4.0, seed=0)
    image, labels = mosaic.image[:256, :256], mosaic.partial[:256, :256]
    rng = np.random.default_rng(0)
    dataset = PatchDataset([(mosaic.image, mosaic.partial)], patch=256, augment=True, seed=0)
    print(f"load average: {os.getloadavg()[0]:.2f}")
    for name, call in (
        ("augment_pair 256 px", lambda i: augment_pair(image, labels, rng)),
        ("PatchDataset item 256 px", lambda i: dataset[i % len(dataset)]),
    ):
        start, cpu = time.perf_counter(), time.process_time()
        for i in range(args.repeats):
            call(i)
        wall_ms = (time.perf_counter() - start) / args.repeats * 1e3
        cpu_ms = (time.process_time() - cpu) / args.repeats * 1e3
        print(f"{name:<26} {wall_ms:6.2f} ms wall {cpu_ms:6.2f} ms CPU")


if __name__ == "__main__":
    main()
