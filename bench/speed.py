"""CPU inference speed of MUNet: windows/s at 256² (eager fp32 vs faster paths) and whole-mosaic times.

Usage: ``python bench/speed.py [--threads 2] [--weights inference/weights/demo_munet.safetensors] [--side 3000]
[--skip-mosaic] [--skip-windows] [--compile] [--no-int8] [--runs paper:float32,fast:bfloat16,fast:float32:constant]``

Part 1 runs the same 256² windows (cut from a synthetic mosaic) through each variant, interleaving the variants
over several rounds and keeping each one's best round (the machine is shared: the best round is the one least
disturbed), and reports windows/s, the speed-up over eager fp32 at batch 8 (what ``predict_mosaic`` runs by
default) and the share of pixels whose label equals eager fp32's; the int8 variant (``quantize_for_cpu``) is
calibrated on windows of another mosaic. Part 2 times ``predict_mosaic`` on a whole ``side × side`` mosaic, one
run per ``mode:precision[:blend]`` in ``--runs`` (the first is the reference: paper mode in float32; the blend
defaults to the mode's), and reports each
one's time, the share of pixels whose label equals the reference's (the fast-mode goal: ≥ 99 %) and its accuracy
against the synthetic truth; int8 runs print their quantization and compilation time apart (once per process and
window size in the app). The CPU, its bf16/VNNI support and the load average before and after are printed too.
Figures go to stdout and ``bench/out/speed.json``.
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run as a script from anywhere
# Idle OpenMP threads sleep instead of spinning: on a shared 2-core machine a spinning thread burns the CPU its
# sibling (or another process) needs; measured here, a MUNet training step went from ~8 s to ~2.3 s wall.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import numpy as np  # noqa: E402
import torch  # noqa: E402

from inference.ml.infer import (  # noqa: E402
    BLENDS,
    FAST_BLEND,
    cpu_has_native_bfloat16,
    fold_batchnorm,
    optimise_for_cpu,
    predict_mosaic,
)
from inference.ml.metrics import SegmentationReport  # noqa: E402
from inference.ml.models import ModelConfig, build_model  # noqa: E402
from inference.ml.synthetic import generate_mosaic  # noqa: E402
from inference.ml.weights import load_model  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_WEIGHTS = ROOT / "inference" / "weights" / "demo_munet.safetensors"
OUT = ROOT / "bench" / "out"
WINDOWS = 16  # windows per timed round: two batches of 8, enough for a stable rate, short enough to interleave
ROUNDS = 3
MOSAIC_SEED = 4242  # never used for training (training seeds are < 1000, see bench/table1.py and train_demo.py)
CALIBRATION_SEED = 4243  # int8 calibration windows come from another mosaic than the timed ones
CALIBRATION_WINDOWS = 16
DEFAULT_RUNS = "paper:float32,paper:bfloat16,fast:float32,fast:float32:constant,fast:bfloat16,fast:int8,paper:int8"


def _load(weights: Path) -> tuple[torch.nn.Module, str]:
    if weights.exists():
        return load_model(weights).model, str(weights.relative_to(ROOT) if weights.is_relative_to(ROOT) else weights)
    torch.manual_seed(0)
    return build_model(ModelConfig()).eval(), "random init (no weights file)"


def _windows(image: np.ndarray, n: int) -> torch.Tensor:
    rng = np.random.default_rng(0)
    h, w = image.shape
    tiles = [image[y : y + 256, x : x + 256] for y, x in zip(rng.integers(0, h - 256, n), rng.integers(0, w - 256, n),
                                                             strict=True)]
    return torch.from_numpy(np.stack(tiles)).float().div(255).unsqueeze(1)


def _calibration(window: int) -> torch.Tensor:
    image = generate_mosaic(height=1024, width=1024, um_per_px=4.0, seed=CALIBRATION_SEED).image
    rng = np.random.default_rng(1)
    tiles = [image[y : y + window, x : x + window] for y, x in zip(rng.integers(0, 1024 - window, CALIBRATION_WINDOWS),
                                                                   rng.integers(0, 1024 - window, CALIBRATION_WINDOWS),
                                                                   strict=True)]
    return torch.from_numpy(np.stack(tiles)).float().div(255).unsqueeze(1)


def _int8(model: torch.nn.Module, window: int, batch: int) -> torch.nn.Module:
    from inference.ml.quantize import quantize_for_cpu

    start = time.perf_counter()
    quantized = quantize_for_cpu(model, _calibration(window), window=window, batch=batch)
    print(f"  int8 quantization + compilation for {window}² windows: {time.perf_counter() - start:.0f} s", flush=True)
    return quantized


def _variants(model: torch.nn.Module, use_compile: bool, use_int8: bool) -> dict[str, tuple[torch.nn.Module, int, bool]]:
    """name -> (model, batch size, channels-last input)."""
    eager = copy.deepcopy(model).eval()
    folded = fold_batchnorm(copy.deepcopy(model).eval())
    folded_cl = copy.deepcopy(folded).to(memory_format=torch.channels_last)
    fast = optimise_for_cpu(model)
    bf16 = optimise_for_cpu(model, precision="bfloat16")
    out: dict[str, tuple[torch.nn.Module, int, bool]] = {
        "eager fp32 b8": (eager, 8, False),
        "eager fp32 b1": (eager, 1, False),
        "BN folded b8": (folded, 8, False),
        "BN folded + channels_last b8": (folded_cl, 8, True),
        "optimise_for_cpu b8": (fast, 8, True),
        "optimise_for_cpu b1": (fast, 1, True),
        "optimise_for_cpu bfloat16 b8": (bf16, 8, True),
        "optimise_for_cpu bfloat16 b2": (bf16, 2, True),
    }
    if use_compile:
        import torch._inductor.config as inductor_config

        inductor_config.freezing = True
        out["torch.compile fp32 (inductor, freezing) b8"] = (torch.compile(copy.deepcopy(fast)), 8, True)
        out["torch.compile bfloat16 (inductor, freezing) b8"] = (
            torch.compile(optimise_for_cpu(model, precision="bfloat16")), 8, True)
    if use_int8:
        out["int8 quantize_for_cpu b2"] = (_int8(model, 256, 2), 2, False)
        out["int8 quantize_for_cpu b8"] = (_int8(model, 256, 8), 8, False)
    return out


def _run(model: torch.nn.Module, x: torch.Tensor, batch: int, channels_last: bool) -> torch.Tensor:
    labels = []
    with torch.inference_mode():
        for i in range(0, x.shape[0], batch):
            xb = x[i : i + batch]
            if channels_last:
                xb = xb.contiguous(memory_format=torch.channels_last)
            labels.append(model(xb)[0].argmax(1))
    return torch.cat(labels)


def bench_windows(model: torch.nn.Module, image: np.ndarray, use_compile: bool, use_int8: bool
                  ) -> list[dict[str, object]]:
    x = _windows(image, WINDOWS)
    variants = _variants(model, use_compile, use_int8)
    reference = _run(variants["eager fp32 b8"][0], x, 8, False)
    best = {name: float("inf") for name in variants}
    agreement = {}
    for name, (m, batch, cl) in variants.items():  # warm-up (and compilation) outside the timed rounds
        start = time.perf_counter()
        labels = _run(m, x[:batch], batch, cl)
        agreement[name] = float((_run(m, x, batch, cl) == reference).float().mean())
        print(f"  warm-up {name}: {time.perf_counter() - start:.1f} s", flush=True)
    for _ in range(ROUNDS):
        for name, (m, batch, cl) in variants.items():
            start = time.perf_counter()
            labels = _run(m, x, batch, cl)
            best[name] = min(best[name], time.perf_counter() - start)
    del labels
    base = WINDOWS / best["eager fp32 b8"]
    rows = []
    for name in variants:
        rate = WINDOWS / best[name]
        rows.append({"variant": name, "windows_per_s": rate, "speedup": rate / base, "agreement": agreement[name]})
    return rows


def _mosaic_model(model: torch.nn.Module, mode: str, precision: str) -> torch.nn.Module:
    if precision == "int8":
        return _int8(model, 256 if mode == "paper" else 512, 2)
    return optimise_for_cpu(model, precision=precision)


def bench_mosaic(model: torch.nn.Module, side: int, runs: list[tuple[str, str, str | None]]) -> dict[str, object]:
    start = time.perf_counter()
    mosaic = generate_mosaic(height=side, width=side, um_per_px=4.0, seed=MOSAIC_SEED)
    print(f"  generated {side} x {side} mosaic in {time.perf_counter() - start:.1f} s", flush=True)
    results: dict[str, object] = {"side": side, "fast_blend": FAST_BLEND}
    reference = None
    ref_name = " ".join(x for x in runs[0] if x)
    for mode, precision, blend in runs:
        m = _mosaic_model(model, mode, precision)
        start = time.perf_counter()
        pred = predict_mosaic(m, mosaic.image, mode=mode, blend=blend, keep_probabilities=False)
        seconds = time.perf_counter() - start
        if reference is None:
            reference = pred.labels
        report = SegmentationReport.from_maps(mosaic.truth, pred.labels)
        agreement = float((pred.labels == reference).mean())
        name = " ".join(x for x in (mode, precision, blend) if x)
        results[name] = {
            "seconds": seconds, "windows": pred.windows, "window": pred.window, "stride": pred.stride,
            "blend": pred.blend, "agreement_with_reference": agreement, "reference": ref_name,
            "accuracy_vs_truth": report.accuracy, "mean_dice_vs_truth": report.mean_dice,
            "load_average_after": os.getloadavg()[0],
        }
        print(f"  {name}: {seconds:.1f} s, {pred.windows} windows of {pred.window} px (stride "
              f"{pred.stride}, {pred.blend} blend), labels equal to {ref_name} {100 * agreement:.2f} %, accuracy "
              f"{report.accuracy:.4f}, mean Dice {report.mean_dice:.4f}, load average {os.getloadavg()[0]:.2f}",
              flush=True)
        del m
    return results


def _parse_runs(text: str, use_int8: bool) -> list[tuple[str, str, str | None]]:
    runs: list[tuple[str, str, str | None]] = []
    for item in text.split(","):
        mode, precision, *rest = item.strip().split(":") + [""]
        blend = rest[0] or None
        if mode not in ("paper", "fast") or precision not in ("float32", "bfloat16", "int8") or \
                blend not in (None, *BLENDS) or len(rest) > 2:
            raise SystemExit(f"--runs: {item!r} is not mode:precision[:blend] with mode paper|fast, precision "
                             f"float32|bfloat16|int8 and blend {'|'.join(BLENDS)}")
        if precision != "int8" or use_int8:
            runs.append((mode, precision, blend))
    return runs


def _machine() -> dict[str, object]:
    caps = torch.cpu.get_capabilities() if hasattr(torch.cpu, "get_capabilities") else {}
    model_name = ""
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.exists():
        for line in cpuinfo.read_text().splitlines():
            if line.startswith("model name"):
                model_name = line.split(":", 1)[1].strip()
                break
    return {"cpu": model_name, "logical_cpus": os.cpu_count(), "torch": torch.__version__,
            "isa": torch.backends.cpu.get_cpu_capability(), "native_bfloat16": cpu_has_native_bfloat16(),
            "avx512_vnni": bool(caps.get("avx512_vnni")), "amx": bool(caps.get("amx_tile"))}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--weights", type=Path, default=DEFAULT_WEIGHTS)
    parser.add_argument("--side", type=int, default=3000, help="whole-mosaic side in px (default 3000)")
    parser.add_argument("--skip-mosaic", action="store_true", help="only the 256² window rates")
    parser.add_argument("--skip-windows", action="store_true", help="only the whole-mosaic runs")
    parser.add_argument("--compile", action="store_true", help="also try torch.compile (minutes of warm-up)")
    parser.add_argument("--no-int8", action="store_true", help="skip the int8 (torchao) variants")
    parser.add_argument("--runs", default=DEFAULT_RUNS,
                        help=f"whole-mosaic runs, mode:precision[:blend], the first is the reference (default {DEFAULT_RUNS})")
    args = parser.parse_args()
    runs = _parse_runs(args.runs, not args.no_int8)
    torch.set_num_threads(args.threads)
    model, source = _load(args.weights)
    machine = _machine()
    print(f"threads {torch.get_num_threads()}, load average {os.getloadavg()[0]:.2f}, weights: {source}")
    print("machine: " + ", ".join(f"{k} {v}" for k, v in machine.items()), flush=True)
    report: dict[str, object] = {"threads": args.threads, "weights": source, "machine": machine,
                                 "load_average_start": os.getloadavg()[0]}
    if not args.skip_windows:
        image = generate_mosaic(height=1024, width=1024, um_per_px=4.0, seed=MOSAIC_SEED).image
        rows = bench_windows(model, image, args.compile, not args.no_int8)
        print("\n| variant | windows/s (256²) | speed-up vs eager fp32 b8 | labels equal to eager |\n|---|---:|---:|---:|")
        for r in rows:
            print(f"| {r['variant']} | {r['windows_per_s']:.2f} | {r['speedup']:.2f}x | {100 * r['agreement']:.2f} % |")
        print(f"load average after the window rates: {os.getloadavg()[0]:.2f}", flush=True)
        report["windows"] = rows
    if not args.skip_mosaic:
        print(f"\nwhole {args.side} x {args.side} mosaic:")
        report["mosaic"] = bench_mosaic(model, args.side, runs)
    report["load_average_end"] = os.getloadavg()[0]
    OUT.mkdir(parents=True, exist_ok=True)
    (OUT / "speed.json").write_text(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
