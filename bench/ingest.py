"""Ingest of a 12000 × 12000 8-bit TIFF against bare pyvips ``dzsave`` of the same file, in the same run.

Prints wall time and peak memory (max RSS of each child process) for:
  bare     pyvips dzsave with the app's tile settings (the yardstick),
  ingest   the app's ingest task (decode once, DZI pyramid, working copy, thumbnail, job/progress rows),
  upload   the app's upload checks before the task (header, full decode, checksum, copy).
Goal (issue #2): ingest ≤ 1.5 × bare; peak memory ≤ 1.5 GB.

    .venv/bin/python bench/ingest.py [--size 12000] [--repeats 2]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import textwrap
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

BARE = textwrap.dedent("""
    import json, resource, sys, time
    import pyvips
    from annotations import imaging
    src, out = sys.argv[1], sys.argv[2]
    t = time.perf_counter()
    pyvips.Image.new_from_file(src, access="sequential").dzsave(
        out, tile_size=imaging.DZI_TILE_SIZE, overlap=imaging.DZI_OVERLAP,
        suffix=f".jpg[Q={imaging.DZI_JPEG_QUALITY}]")
    print(json.dumps({"seconds": time.perf_counter() - t,
                      "peak_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
""")

APP = textwrap.dedent("""
    import json, resource, sys, time
    import django
    django.setup()
    from django.core.management import call_command
    call_command("migrate", verbosity=0)
    from django.contrib.auth.models import User
    from annotations import services
    from inference.models import Job
    from inference.services import run_job
    admin = User.objects.create_user("bench", is_superuser=True)
    t = time.perf_counter()
    with open(sys.argv[1], "rb") as fh:
        mosaic, _ = services.mosaic_upload(source=fh, filename="bench.tif", user=admin, um_per_px=1.0)
    upload = time.perf_counter() - t
    job = Job.objects.get(mosaic=mosaic)
    t = time.perf_counter()
    run_job(job.pk, lambda job, progress: services.mosaic_ingest(mosaic_id=mosaic.pk, progress=progress))
    ingest = time.perf_counter() - t
    job.refresh_from_db()
    assert job.state == "succeeded", job.error
    print(json.dumps({"upload_seconds": upload, "seconds": ingest,
                      "peak_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
""")


def make_tiff(path: Path, size: int) -> None:
    import numpy as np
    import tifffile

    try:
        from inference.ml.synthetic import generate_mosaic

        image = generate_mosaic(height=size, width=size, um_per_px=1.0, seed=1).image
    except ImportError:  # the generator is optional for this benchmark: textured noise has similar JPEG cost
        rng = np.random.default_rng(0)
        image = rng.integers(0, 256, (size, size), dtype=np.uint8)
    tifffile.imwrite(path, image, resolution=(1e4, 1e4), resolutionunit="CENTIMETER")


def run_child(code: str, *args: str, env: dict[str, str]) -> dict:
    out = subprocess.run([sys.executable, "-c", code, *args], cwd=ROOT, env=env, check=True,
                         capture_output=True, text=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size", type=int, default=12000)
    parser.add_argument("--repeats", type=int, default=2)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="rcmweb-bench-") as tmp_name:
        tmp = Path(tmp_name)
        tiff = tmp / "mosaic.tif"
        print(f"Writing a {args.size} × {args.size} 8-bit TIFF ...", flush=True)
        make_tiff(tiff, args.size)
        print(f"  {tiff.stat().st_size / 2**20:.0f} MiB")
        rows: dict[str, list[dict]] = {"bare": [], "app": []}
        for repeat in range(args.repeats):
            env = dict(os.environ, PYTHONPATH=str(ROOT))
            rows["bare"].append(run_child(BARE, str(tiff), str(tmp / f"bare{repeat}"), env=env))
            app_env = dict(env, DJANGO_SETTINGS_MODULE="rcmweb.settings.test",
                           RCMWEB_TEST_DATA_DIR=str(tmp / f"app{repeat}"),
                           DATABASE_URL=f"sqlite:///{tmp / f'app{repeat}.sqlite3'}", CELERY_BROKER_URL="memory://")
            rows["app"].append(run_child(APP, str(tiff), env=app_env))
            print(f"  run {repeat + 1}: bare {rows['bare'][-1]['seconds']:.2f} s, "
                  f"ingest {rows['app'][-1]['seconds']:.2f} s", flush=True)
        bare = min(r["seconds"] for r in rows["bare"])
        ingest = min(r["seconds"] for r in rows["app"])
        upload = min(r["upload_seconds"] for r in rows["app"])
        print()
        print(f"| {args.size}² 8-bit TIFF | time (best of {args.repeats}) | peak memory |")
        print("|---|---|---|")
        print(f"| bare pyvips dzsave | {bare:.2f} s | {max(r['peak_mb'] for r in rows['bare']):.0f} MB |")
        print(f"| app ingest task | {ingest:.2f} s ({ingest / bare:.2f} × bare) | "
              f"{max(r['peak_mb'] for r in rows['app']):.0f} MB |")
        print(f"| app upload checks (before the task) | {upload:.2f} s | (same process) |")


if __name__ == "__main__":
    main()
