"""Production settings: no default secret, debug off, `check --deploy` clean."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def run_manage(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    base = {k: v for k, v in os.environ.items() if not k.startswith("DJANGO_")}
    return subprocess.run([sys.executable, "manage.py", *args], cwd=ROOT, env={**base, **env},
                          capture_output=True, text=True, timeout=120)


def test_production_refuses_to_start_without_secret_key(tmp_path) -> None:
    result = run_manage("check", env={"DJANGO_SETTINGS_MODULE": "rcmweb.settings.production",
                                      "RCMWEB_DATA_DIR": str(tmp_path)})
    assert result.returncode != 0
    assert "DJANGO_SECRET_KEY" in result.stderr


def test_production_deploy_check_reports_nothing(tmp_path) -> None:
    result = run_manage("check", "--deploy", "--fail-level", "WARNING", env={
        "DJANGO_SETTINGS_MODULE": "rcmweb.settings.production",
        "DJANGO_SECRET_KEY": "a-long-random-production-secret-" + "k9Q2x7Lm" * 6,
        "DJANGO_ALLOWED_HOSTS": "rcm.example.org",
        "RCMWEB_DATA_DIR": str(tmp_path),
    })
    assert result.returncode == 0, result.stdout + result.stderr
    assert "no issues" in result.stdout


def test_production_debug_is_off_even_if_asked(tmp_path) -> None:
    result = run_manage("shell", "-c", "from django.conf import settings; print('DEBUG', settings.DEBUG)", env={
        "DJANGO_SETTINGS_MODULE": "rcmweb.settings.production", "DJANGO_DEBUG": "1",
        "DJANGO_SECRET_KEY": "x" * 60, "RCMWEB_DATA_DIR": str(tmp_path)})
    assert "DEBUG False" in result.stdout, result.stderr
