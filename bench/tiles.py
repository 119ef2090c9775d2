"""Tiles through the app's production server (gunicorn, production settings, login check on every tile).

Starts gunicorn on a free local port over a fresh database with one ingested mosaic, logs in as an expert,
then keeps 16 keep-alive connections busy requesting random tiles for a fixed time and prints throughput and
latency percentiles. Goal (issue #2): ≥ 500 tiles/s and p99 ≤ 50 ms on 2 cores.

    .venv/bin/python bench/tiles.py [--seconds 20] [--connections 16] [--workers 2] [--threads 8]
"""

from __future__ import annotations

import argparse
import http.client
import os
import random
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
# Bench limits: each connection runs for the given seconds; the server must come up within this time.
SERVER_START_TIMEOUT_S = 60
MOSAIC_SIDE_PX = 6000  # gives a pyramid of ~ 800 tiles, more than any one screen asks for


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def prepare(env: dict[str, str]) -> tuple[str, list[str]]:
    """Migrate, create a user and an ingested mosaic; return (session cookie, tile urls)."""
    code = f"""
import io, json, django
django.setup()
from django.core.management import call_command
call_command("migrate", verbosity=0)
from django.contrib.auth.models import Group, User
from django.test import Client
import numpy as np
from PIL import Image
from annotations import services
from annotations.models import Mosaic
from inference.models import Job
from inference.services import run_job
admin = User.objects.create_user("bench-admin", is_superuser=True)
expert = User.objects.create_user("bench-expert", password="bench-password-123")
expert.groups.add(Group.objects.get(name="expert"))
rng = np.random.default_rng(0)
img = rng.integers(0, 256, ({MOSAIC_SIDE_PX}, {MOSAIC_SIDE_PX}), dtype=np.uint8)
buf = io.BytesIO(); Image.fromarray(img).save(buf, format="PNG"); buf.seek(0)
m, _ = services.mosaic_upload(source=buf, filename="bench.png", user=admin, um_per_px=1.0)
job = Job.objects.get(mosaic=m)
run_job(job.pk, lambda job, progress: services.mosaic_ingest(mosaic_id=m.pk, progress=progress))
m.refresh_from_db()
files = m.folder / "dzi" / "image_files"
urls = [f"/tiles/mosaics/{{m.pk}}/{{m.checksum[:12]}}/image_files/{{p.parent.name}}/{{p.name}}"
        for p in files.glob("*/*.jpg")]
client = Client()
assert client.login(username="bench-expert", password="bench-password-123")
print(json.dumps({{"cookie": client.cookies["sessionid"].value, "urls": urls}}))
"""
    import json

    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, check=True, capture_output=True, text=True)
    data = json.loads(out.stdout.strip().splitlines()[-1])
    return data["cookie"], data["urls"]


def load(port: int, cookie: str, urls: list[str], *, connections: int, seconds: float) -> tuple[list[float], int]:
    latencies: list[list[float]] = [[] for _ in range(connections)]
    errors = [0] * connections
    deadline = time.perf_counter() + seconds

    def worker(index: int) -> None:
        rng = random.Random(index)
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        headers = {"Cookie": f"sessionid={cookie}", "Host": "127.0.0.1"}
        while time.perf_counter() < deadline:
            url = rng.choice(urls)
            start = time.perf_counter()
            try:
                conn.request("GET", url, headers=headers)
                response = conn.getresponse()
                body = response.read()
                ok = response.status == 200 and body[:3] == b"\xff\xd8\xff"
            except (OSError, http.client.HTTPException):
                ok = False
                conn.close()
                conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
            if ok:
                latencies[index].append(time.perf_counter() - start)
            else:
                errors[index] += 1

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(connections)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return [x for per in latencies for x in per], sum(errors)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--threads", type=int, default=8)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="rcmweb-tiles-") as tmp_name:
        tmp = Path(tmp_name)
        env = dict(os.environ, PYTHONPATH=str(ROOT), RCMWEB_DATA_DIR=str(tmp),
                   DJANGO_SETTINGS_MODULE="rcmweb.settings.production", DJANGO_SECRET_KEY="bench-" + "x" * 50,
                   DJANGO_ALLOWED_HOSTS="127.0.0.1", DJANGO_SECURE_SSL_REDIRECT="0",
                   CELERY_BROKER_URL="memory://")
        env.setdefault("DATABASE_URL", f"sqlite:///{tmp / 'db.sqlite3'}")
        print(f"Preparing a {MOSAIC_SIDE_PX}² mosaic and a logged-in expert ...", flush=True)
        cookie, urls = prepare(env)
        port = free_port()
        server = subprocess.Popen(
            [str(Path(sys.executable).parent / "gunicorn"), "rcmweb.wsgi:application", "--bind", f"127.0.0.1:{port}",
             "--worker-class", "gthread", "--workers", str(args.workers), "--threads", str(args.threads),
             "--log-level", "warning"],
            cwd=ROOT, env=env,
        )
        try:
            deadline = time.monotonic() + SERVER_START_TIMEOUT_S
            while time.monotonic() < deadline:
                try:
                    socket.create_connection(("127.0.0.1", port), timeout=1).close()
                    break
                except OSError:
                    time.sleep(0.2)
            load(port, cookie, urls, connections=args.connections, seconds=2.0)  # warm-up
            latencies, errors = load(port, cookie, urls, connections=args.connections, seconds=args.seconds)
        finally:
            server.terminate()
            server.wait(timeout=30)
    latencies.sort()
    count = len(latencies)
    p = statistics.quantiles(latencies, n=100) if count >= 100 else [float("nan")] * 99
    print()
    print(f"database: {env['DATABASE_URL'].split(':', 1)[0]}, gunicorn gthread {args.workers}×{args.threads}, "
          f"{args.connections} connections, {args.seconds:.0f} s, {len(urls)} distinct tiles, {os.cpu_count()} cores")
    print("| tiles/s | p50 | p95 | p99 | errors |")
    print("|---|---|---|---|---|")
    print(f"| {count / args.seconds:.0f} | {p[49] * 1000:.1f} ms | {p[94] * 1000:.1f} ms | {p[98] * 1000:.1f} ms "
          f"| {errors} |")


if __name__ == "__main__":
    main()
