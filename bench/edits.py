"""Expert edits: round-trip latency on a 3000 × 3000 layer, and 8 experts editing at once (issue #5).

(a) Round trip: an expert's brush stroke (30 points, 20 µm radius, ~240 µm long) posted to
    ``POST /api/reviews/{id}/edits/`` → rasterised and stored → answered with the new pixels and the updated
    agreement; p50/p95 over a few hundred strokes on a 3000 × 3000 working layer, once through the Django test
    client (in process) and once through a live gunicorn (HTTP, session auth, CSRF). Goal: p95 ≤ 100 ms.
(b) Load: 8 experts, each on their own mosaic, editing as fast as they can for 60 s through gunicorn (paints,
    erases, accepted rectangles, undos and redos). Counts accepted edits and errors, then checks every accepted
    edit is in the layers: revisions and Edit rows match the count, rebuilding each review from its edits (both by
    rasterising the geometries again and from the stored patches) gives the stored raster, and the incrementally
    kept confusion matrix equals a full recomputation.

Everything runs on a fresh database and media folder: SQLite by default; with ``DATABASE_URL`` pointing to a
PostgreSQL server, a fresh database is created on it for the run and dropped afterwards. The mosaics are
predicted by a tiny untrained MUNet through the app's own prediction job (that takes a few minutes on 2 cores).

    .venv/bin/python bench/edits.py [--strokes 300] [--seconds 60] [--experts 8] [--skip-roundtrip]
"""

from __future__ import annotations

import argparse
import http.client
import io
import json
import math
import os
import random
import secrets
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
# Bench limits: the server must come up within this time; a request taking longer than this is an error.
SERVER_START_TIMEOUT_S = 60
REQUEST_TIMEOUT_S = 30
BIG_SIDE_PX = 3000  # the round-trip layer: the paper's working resolution mosaic (~12 mm at 4 µm/px)
LOAD_SIDE_PX = 1024  # each load-test mosaic: edits cost the same on any layer size; predictions of 8 × 3000² would
# take half an hour of the bench's 2 cores
UM_PER_PX = 4.0  # uploads at 4 µm/px: the working layer has the upload's size
STROKE_POINTS = 30
STROKE_RADIUS_UM = 20.0
STROKE_STEP_UM = 8.0  # distance between successive pointer samples of a moderate brush movement


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def percentile(values: list[float], q: int) -> float:
    return statistics.quantiles(values, n=100)[q - 1] if len(values) >= 100 else float("nan")


def stroke(rng: random.Random, width_px: int, height_px: int) -> dict[str, Any]:
    """A smooth random brush stroke in full-resolution px (at ``UM_PER_PX``)."""
    step = STROKE_STEP_UM / UM_PER_PX
    x, y = rng.uniform(0.1, 0.9) * width_px, rng.uniform(0.1, 0.9) * height_px
    heading = rng.uniform(0, 2 * math.pi)
    points = []
    for _ in range(STROKE_POINTS):
        points.append([round(x, 2), round(y, 2)])
        heading += rng.gauss(0, 0.15)
        x += step * math.cos(heading)
        y += step * math.sin(heading)
    return {"type": "stroke", "points": points, "radius_um": STROKE_RADIUS_UM}


# --- Set-up (in this process, on the bench's own database) --------------------------------------------------


def setup_environment(tmp: Path, database_url: str | None) -> dict[str, str]:
    env = dict(os.environ, PYTHONPATH=str(ROOT), RCMWEB_DATA_DIR=str(tmp),
               DJANGO_SETTINGS_MODULE="rcmweb.settings.production", DJANGO_SECRET_KEY="bench-" + "x" * 50,
               DJANGO_ALLOWED_HOSTS="127.0.0.1,testserver", DJANGO_SECURE_SSL_REDIRECT="0",
               CELERY_BROKER_URL="memory://", RCMWEB_LOG_LEVEL="ERROR")
    env["DATABASE_URL"] = database_url or f"sqlite:///{tmp / 'db.sqlite3'}"
    os.environ.update(env)
    return env


def create_postgres_database(url: str) -> tuple[str, str]:
    """A fresh database on the server of ``url``; returns (its URL, its name)."""
    import psycopg

    parts = urlsplit(url)
    name = f"rcmweb_bench_edits_{os.getpid()}"
    admin = parts._replace(path="/postgres").geturl()
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    return parts._replace(path=f"/{name}").geturl(), name


def drop_postgres_database(url: str, name: str) -> None:
    import psycopg

    admin = urlsplit(url)._replace(path="/postgres").geturl()
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def prepare(tmp: Path, experts: int, *, big_side: int | None, load_side: int) -> dict[str, Any]:
    """Migrate; users; a tiny active model; mosaics ingested and predicted by the app's jobs."""
    import django

    django.setup()
    import numpy as np
    import torch
    from django.contrib.auth.models import Group, User
    from django.core.management import call_command
    from PIL import Image

    from annotations import services
    from inference.ml.models import ModelConfig, build_model
    from inference.ml.weights import save_model
    from inference.models import Job
    from inference.services import run_job
    from inference.services.models import model_version_register
    from inference.services.predictions import prediction_run

    call_command("migrate", verbosity=0)
    admin = User.objects.create_user("bench-admin", is_superuser=True)
    torch.manual_seed(0)
    weights = tmp / "tiny.safetensors"
    save_model(weights, build_model(ModelConfig(arch="munet", levels=2, base_channels=4)), metadata={})
    model_version_register(weights_file=weights, name="tiny", user=admin, activate=True)

    def mosaic(side: int, seed: int) -> int:
        rng = np.random.default_rng(seed)
        yy, xx = np.mgrid[0:side, 0:side]
        image = np.clip(128 + 60 * np.sin(xx / 23.0 + seed) * np.cos(yy / 17.0) + rng.normal(0, 12, (side, side)),
                        0, 255).astype(np.uint8)
        buffer = io.BytesIO()
        Image.fromarray(image).save(buffer, format="PNG")
        buffer.seek(0)
        record, _ = services.mosaic_upload(source=buffer, filename=f"bench{seed}.png", user=admin,
                                           um_per_px=UM_PER_PX)
        ingest = Job.objects.get(mosaic=record, kind=Job.Kind.INGEST)
        run_job(ingest.pk, lambda job, progress: services.mosaic_ingest(mosaic_id=record.pk, progress=progress))
        predict = Job.objects.get(mosaic=record, kind=Job.Kind.PREDICT)
        started = time.perf_counter()
        run_job(predict.pk, lambda job, progress: prediction_run(job=job, progress=progress))
        print(f"  mosaic {record.pk}: {side} × {side}, predicted in {time.perf_counter() - started:.0f} s",
              flush=True)
        return record.pk

    expert_group = Group.objects.get(name="expert")
    users = []
    for index in range(experts + 1):
        user = User.objects.create_user(f"bench-expert{index}")
        user.groups.add(expert_group)
        users.append(user.username)
    big_id = mosaic(big_side, 0) if big_side else None
    load_ids = [mosaic(load_side, 100 + index) for index in range(experts)]
    return {"big": big_id, "load": load_ids, "users": users}


def session_cookie(username: str) -> str:
    from django.contrib.auth.models import User
    from django.test import Client

    client = Client()
    client.force_login(User.objects.get(username=username))
    return client.cookies["sessionid"].value


# --- HTTP client ----------------------------------------------------------------------------------------------


class Api:
    """One keep-alive connection with a logged-in session and a CSRF token."""

    def __init__(self, port: int, session: str) -> None:
        self.port = port
        self.csrf = secrets.token_hex(16)  # 32 characters: an unmasked secret, same in cookie and header
        self.headers = {"Cookie": f"sessionid={session}; csrftoken={self.csrf}", "X-CSRFToken": self.csrf,
                        "Content-Type": "application/json", "Host": "127.0.0.1"}
        self.conn = http.client.HTTPConnection("127.0.0.1", port, timeout=REQUEST_TIMEOUT_S)

    def call(self, method: str, url: str, body: dict[str, Any] | None = None) -> tuple[int, Any]:
        try:
            self.conn.request(method, url, body=json.dumps(body) if body is not None else None, headers=self.headers)
            response = self.conn.getresponse()
            data = response.read()
        except (OSError, http.client.HTTPException):
            self.conn.close()
            self.conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=REQUEST_TIMEOUT_S)
            return 0, None
        try:
            return response.status, json.loads(data) if data else None
        except ValueError:
            return response.status, data


def start_server(env: dict[str, str], workers: int, threads: int, log: Path) -> tuple[subprocess.Popen, int]:
    """gunicorn on a free port; its output (including the expected 409 warnings) goes to ``log``."""
    port = free_port()
    server = subprocess.Popen(
        [str(Path(sys.executable).parent / "gunicorn"), "rcmweb.wsgi:application", "--bind", f"127.0.0.1:{port}",
         "--worker-class", "gthread", "--workers", str(workers), "--threads", str(threads),
         "--log-level", "warning"], cwd=ROOT, env=env, stdout=log.open("wb"), stderr=subprocess.STDOUT)
    deadline = time.monotonic() + SERVER_START_TIMEOUT_S
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return server, port
        except OSError:
            time.sleep(0.2)
    server.terminate()
    raise RuntimeError("gunicorn did not start")


# --- (a) round trip -------------------------------------------------------------------------------------------


def roundtrip_in_process(mosaic_id: int, side: int, username: str, strokes: int) -> list[float]:
    from django.contrib.auth.models import User
    from django.test import Client

    client = Client()
    client.force_login(User.objects.get(username=username))
    review = client.post(f"/api/mosaics/{mosaic_id}/reviews/", content_type="application/json").json()
    rng = random.Random(1)
    revision, times = review["revision"], []
    for index in range(strokes + 10):
        body = {"revision": revision, "op": "paint", "class_value": rng.randrange(6),
                "geometry": stroke(rng, side, side)}
        started = time.perf_counter()
        response = client.post(f"/api/reviews/{review['id']}/edits/", body, content_type="application/json")
        data = response.json()
        elapsed = time.perf_counter() - started
        assert response.status_code == 201 and data["agreement"]["report"] is not None, response.content
        revision = data["revision"]
        if index >= 10:  # the first strokes warm caches (prediction decoded once into its .npy cache)
            times.append(elapsed)
    return times


def roundtrip_http(port: int, session: str, mosaic_id: int, side: int, strokes: int) -> tuple[list[float], float]:
    api = Api(port, session)
    status, review = api.call("POST", f"/api/mosaics/{mosaic_id}/reviews/")
    assert status in (200, 201), (status, review)
    rng = random.Random(2)
    revision, times = review["revision"], []
    for index in range(strokes + 10):
        body = {"revision": revision, "op": "paint", "class_value": rng.randrange(6),
                "geometry": stroke(rng, side, side)}
        started = time.perf_counter()
        status, data = api.call("POST", f"/api/reviews/{review['id']}/edits/", body)
        elapsed = time.perf_counter() - started
        assert status == 201, (status, data)
        revision = data["revision"]
        if index >= 10:
            times.append(elapsed)
    started = time.perf_counter()  # the whole layer's PNG of the latest revision, encoded on this request
    api.conn.request("GET", data["raster_url"], headers=api.headers)
    png = api.conn.getresponse()
    png.read()
    assert png.status == 200
    return times, time.perf_counter() - started


# --- (b) many experts at once ----------------------------------------------------------------------------------


def expert_session(port: int, session: str, mosaic_id: int, side: int, seconds: float, seed: int,
                   out: dict[str, Any]) -> None:
    api = Api(port, session)
    status, review = api.call("POST", f"/api/mosaics/{mosaic_id}/reviews/")
    if status not in (200, 201):
        out.update(review=None, accepted=0, errors=1, statuses={status: 1})
        return
    rng = random.Random(seed)
    revision, accepted, errors, conflicts = review["revision"], 0, 0, 0
    statuses: dict[int, int] = {}
    latencies: list[float] = []
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        roll = rng.random()
        if roll < 0.05:
            url, body = f"/api/reviews/{review['id']}/undo/", {"revision": revision}
        elif roll < 0.10:
            url, body = f"/api/reviews/{review['id']}/redo/", {"revision": revision}
        else:
            url = f"/api/reviews/{review['id']}/edits/"
            if roll < 0.80:
                body = {"op": "paint", "class_value": rng.randrange(6), "geometry": stroke(rng, side, side)}
            elif roll < 0.90:
                body = {"op": "erase", "geometry": stroke(rng, side, side)}
            else:
                x, y = rng.uniform(0, side - 60), rng.uniform(0, side - 60)
                body = {"op": "accept", "geometry": {"type": "rectangle", "x0": x, "y0": y, "x1": x + 60,
                                                      "y1": y + 60}}
            body["revision"] = revision
        started = time.perf_counter()
        status, data = api.call("POST", url, body)
        latencies.append(time.perf_counter() - started)
        statuses[status] = statuses.get(status, 0) + 1
        if status == 201:
            accepted += 1
            revision = data["revision"]
        elif status == 409 and isinstance(data, dict) and data.get("detail", "").startswith("Nothing to"):
            conflicts += 1  # undo with nothing to undo, redo with nothing to redo: a correct refusal
        else:
            errors += 1
    out.update(review=review["id"], accepted=accepted, errors=errors, refused=conflicts, statuses=statuses,
               latencies=latencies)


def verify(results: list[dict[str, Any]]) -> list[str]:
    """Every accepted edit is in its layer: counts, revisions, rebuild and agreement."""
    import numpy as np

    from annotations.models import Edit, Review
    from annotations.rasters import read_raster
    from annotations.reviews import review_confusion_full, review_rebuild

    problems = []
    for result in results:
        review = Review.objects.select_related("layer", "mosaic", "prediction__mosaic").get(pk=result["review"])
        rows = Edit.objects.filter(review=review).count()
        if not rows == result["accepted"] == review.layer.revision - 1:
            problems.append(f"review {review.pk}: {result['accepted']} accepted, {rows} rows, "
                            f"revision {review.layer.revision}")
        stored = read_raster(review.layer.raster_path)
        if not np.array_equal(review_rebuild(review), stored):
            problems.append(f"review {review.pk}: rebuilding from the geometries differs from the stored raster")
        if not np.array_equal(review_rebuild(review, rasterise_again=False), stored):
            problems.append(f"review {review.pk}: rebuilding from the patches differs from the stored raster")
        if not np.array_equal(np.asarray(review.confusion), review_confusion_full(review)):
            problems.append(f"review {review.pk}: incremental confusion matrix differs from a full recomputation")
        if review.layer.labelled_pixels != int((stored != 255).sum()):
            problems.append(f"review {review.pk}: labelled pixel count is off")
    return problems


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--strokes", type=int, default=300)
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--experts", type=int, default=8)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--threads", type=int, default=4)
    parser.add_argument("--big-side", type=int, default=BIG_SIDE_PX, help="side of the round-trip layer (px)")
    parser.add_argument("--load-side", type=int, default=LOAD_SIDE_PX, help="side of each load-test layer (px)")
    parser.add_argument("--skip-roundtrip", action="store_true", help="only (b), e.g. for a second database")
    args = parser.parse_args()
    given = os.environ.get("DATABASE_URL", "")
    pg = given.startswith(("postgres://", "postgresql://"))
    db_url, db_name = create_postgres_database(given) if pg else (None, "")
    try:
        with tempfile.TemporaryDirectory(prefix="rcmweb-edits-") as tmp_name:
            run(Path(tmp_name), args, db_url)
    finally:
        if pg:
            from django.db import connections

            connections.close_all()
            drop_postgres_database(given, db_name)


def run(tmp: Path, args: argparse.Namespace, db_url: str | None) -> None:
    env = setup_environment(tmp, db_url)
    engine = env["DATABASE_URL"].split(":", 1)[0]
    print(f"Preparing ({engine}, {os.cpu_count()} cores, load {os.getloadavg()[0]:.1f}) ...", flush=True)
    data = prepare(tmp, args.experts, big_side=None if args.skip_roundtrip else args.big_side,
                   load_side=args.load_side)
    sessions = {name: session_cookie(name) for name in data["users"]}
    from django.db import connections

    connections.close_all()
    lines = []
    if not args.skip_roundtrip:
        times = roundtrip_in_process(data["big"], args.big_side, data["users"][0], args.strokes)
        lines.append(f"| (a) Django test client, {args.big_side}² layer | {len(times)} strokes | "
                     f"p50 {statistics.median(times) * 1000:.1f} ms | p95 {percentile(times, 95) * 1000:.1f} ms |")
        connections.close_all()
    server_log = tmp / "gunicorn.log"
    server, port = start_server(env, args.workers, args.threads, server_log)
    try:
        if not args.skip_roundtrip:
            times, png_s = roundtrip_http(port, sessions[data["users"][-1]], data["big"], args.big_side, args.strokes)
            lines.append(f"| (a) gunicorn {args.workers}×{args.threads} HTTP, {args.big_side}² layer | {len(times)} "
                         f"strokes | p50 {statistics.median(times) * 1000:.1f} ms | "
                         f"p95 {percentile(times, 95) * 1000:.1f} ms |")
            lines.append(f"| whole-layer PNG of a new revision ({args.big_side}², encoded on request) | 1 | "
                         f"{png_s * 1000:.0f} ms | |")
        results: list[dict[str, Any]] = [{} for _ in range(args.experts)]
        threads = [threading.Thread(target=expert_session, args=(
            port, sessions[data["users"][index]], data["load"][index], args.load_side, args.seconds, 10 + index,
            results[index])) for index in range(args.experts)]
        load_before = os.getloadavg()[0]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    finally:
        server.terminate()
        server.wait(timeout=30)
    problems = verify(results)
    connections.close_all()
    accepted = sum(r["accepted"] for r in results)
    errors = sum(r["errors"] for r in results)
    refused = sum(r.get("refused", 0) for r in results)
    latencies = [x for r in results for x in r.get("latencies", [])]
    print()
    print(f"database: {engine}; gunicorn gthread {args.workers}×{args.threads}; {os.cpu_count()} cores "
          f"(load average {load_before:.1f} before (b))")
    print("| what | n | p50 | p95 |")
    print("|---|---|---|---|")
    for line in lines:
        print(line)
    print(f"| (b) {args.experts} experts × {args.seconds:.0f} s, {args.load_side}² layers | {len(latencies)} requests "
          f"| p50 {statistics.median(latencies) * 1000:.1f} ms | p95 {percentile(latencies, 95) * 1000:.1f} ms |")
    print()
    print(f"(b) accepted edits: {accepted} ({accepted / args.seconds:.1f}/s; per expert "
          f"{[r['accepted'] for r in results]}), errors: {errors}, correct refusals (nothing to undo/redo): "
          f"{refused}, statuses: {sum_statuses(results)}")
    print("(b) verification: " + ("every accepted edit is in the layers (rows = revisions = accepted; rebuild from "
                                  "geometries and from patches = stored; incremental agreement = full)"
                                  if not problems else "FAILED:\n  " + "\n  ".join(problems)))
    if problems or errors:
        print("gunicorn log (last lines):\n" + "\n".join(server_log.read_text(errors="replace").splitlines()[-30:]))
        sys.exit(1)


def sum_statuses(results: list[dict[str, Any]]) -> dict[int, int]:
    total: dict[int, int] = {}
    for result in results:
        for status, count in result.get("statuses", {}).items():
            total[status] = total.get(status, 0) + count
    return total


if __name__ == "__main__":
    main()
