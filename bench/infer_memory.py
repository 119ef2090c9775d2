"""Peak memory of ``predict_mosaic`` on a large mosaic (goal: 6000 × 6000 within 4 GB).

Usage: ``python bench/infer_memory.py [--side 6000] [--mode paper|fast] [--full]``

Each measurement runs in a fresh subprocess and reports its peak resident set size (``ru_maxrss``) above the
process's footprint right after importing torch and building the model:

* ``tiling``: ``predict_mosaic`` over the whole ``side × side`` mosaic with a 1-convolution model that follows the
  model contract, i.e. the outputs (probabilities float16, labels, confidence, uncertainty, levels), the padded image
  and the band buffers, without the cost of running MUNet 10000 times;
* ``munet batch``: one forward pass of the default MUNet on one batch of windows as ``predict_mosaic`` sends it
  (8 windows of 256² in paper mode, 2 of 512² in fast mode), i.e. the activations;
* ``--full``: the real thing, MUNet over the whole mosaic (takes as long as the inference: ~4x the 3000² time).

The first two add up to the peak of the real run (the activations are freed between batches, the outputs stay).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

CHILD = r"""
import json, resource, sys
sys.path.insert(0, {root!r})
import numpy as np, torch
from torch import nn
torch.set_num_threads(2)
from inference.ml.infer import predict_mosaic, optimise_for_cpu
from inference.ml.models import ModelConfig, build_model

class OneConv(nn.Module):
    required_multiple = 16
    num_levels = 3
    config = None
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(1, 6, 3, padding=1)
    def forward(self, x):
        y = self.conv(x)
        return [y, nn.functional.avg_pool2d(y, 2), nn.functional.avg_pool2d(y, 4)]

what, side, mode = {what!r}, {side}, {mode!r}
model = OneConv().eval() if what == "tiling" else optimise_for_cpu(build_model(ModelConfig()))
rng = np.random.default_rng(0)
image = rng.integers(0, 256, size=(side, side), dtype=np.uint8) if what != "munet batch" else None
base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
if what == "munet batch":
    window, n = (256, 8) if mode == "paper" else (512, 2)
    with torch.inference_mode():
        model(torch.rand(n, 1, window, window).contiguous(memory_format=torch.channels_last))
else:
    predict_mosaic(model, image, mode=mode)
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
print(json.dumps({{"what": what, "base_mb": base / 1024, "peak_mb": peak / 1024, "delta_mb": (peak - base) / 1024}}))
"""


def measure(what: str, side: int, mode: str) -> dict:
    code = CHILD.format(root=str(ROOT), what=what, side=side, mode=mode)
    out = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True).stdout
    return json.loads(out.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--side", type=int, default=6000)
    parser.add_argument("--mode", choices=("paper", "fast"), default="paper")
    parser.add_argument("--full", action="store_true", help="also run MUNet over the whole mosaic (slow)")
    args = parser.parse_args()
    parts = ["tiling", "munet batch"] + (["full"] if args.full else [])
    results = [measure(what, args.side, args.mode) for what in parts]
    for r in results:
        print(f"{r['what']:12s} peak RSS {r['peak_mb']:7.0f} MB, above the loaded process {r['delta_mb']:7.0f} MB")
    tiling, batch = results[0], results[1]
    estimate = tiling["peak_mb"] + batch["delta_mb"]
    print(f"{args.side} x {args.side}, {args.mode} mode: estimated peak {estimate:.0f} MB "
          f"(tiling peak + one MUNet batch); budget 4096 MB")


if __name__ == "__main__":
    main()
