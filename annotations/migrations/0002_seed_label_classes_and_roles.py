"""Seed the label classes (paper order) and the role groups with their permissions."""

from __future__ import annotations

from django.db import migrations

from inference.ml.classes import CLASSES

ROLES = ("admin", "expert", "trainee")  # permissions are attached after migrate (rcmweb.access)


def seed(apps, schema_editor) -> None:  # noqa: ANN001
    LabelClass = apps.get_model("annotations", "LabelClass")
    for info in CLASSES:
        LabelClass.objects.update_or_create(
            value=info.value, defaults={"key": info.key, "name": info.name, "colour": info.colour}
        )
    Group = apps.get_model("auth", "Group")
    for name in ROLES:
        Group.objects.get_or_create(name=name)


def unseed(apps, schema_editor) -> None:  # noqa: ANN001
    apps.get_model("annotations", "LabelClass").objects.all().delete()


class Migration(migrations.Migration):
    dependencies = [("annotations", "0001_initial"), ("auth", "0012_alter_user_first_name_max_length")]
    operations = [migrations.RunPython(seed, unseed)]
