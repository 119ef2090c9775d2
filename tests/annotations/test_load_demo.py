"""The demo loader of `make run`: accounts per role (printed), synthetic mosaics with labels, idempotent."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import User
from django.core.management import call_command

from annotations.models import LabelLayer, Mosaic
from rcmweb.access import Role, primary_role

pytestmark = pytest.mark.django_db(transaction=True)


def test_accounts_are_created_once_and_printed(settings, tmp_path, capsys) -> None:
    settings.DATA_DIR = tmp_path
    call_command("load_demo", "--no-mosaics")
    first = capsys.readouterr().out
    call_command("load_demo", "--no-mosaics")
    second = capsys.readouterr().out
    assert first == second  # same accounts, same passwords
    roles = {u.username: primary_role(u) for u in User.objects.all()}
    assert roles == {"admin": Role.ADMIN, "expert1": Role.EXPERT, "expert2": Role.EXPERT, "trainee1": Role.TRAINEE}
    for username in roles:
        assert username in first
    password = first.split("admin ")[-1].split()[0]
    assert User.objects.get(username="admin").check_password(password)


@pytest.mark.slow
def test_small_demo_mosaics_are_ready_with_labels_and_not_duplicated(settings, tmp_path, media_root) -> None:
    settings.DATA_DIR = tmp_path
    call_command("load_demo", "--small")
    call_command("load_demo", "--small")
    assert Mosaic.objects.count() == 3
    assert set(Mosaic.objects.values_list("status", flat=True)) == {"ready"}
    assert LabelLayer.objects.filter(source="import").count() == 3
    big = Mosaic.objects.order_by("-width").first()
    assert (big.width, big.height, big.working_width) == (3000, 3000, 750)
