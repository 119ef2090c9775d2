"""POST /api/mosaics/ and annotations.services.mosaic_upload: accepted files, rejections leave nothing behind."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from annotations.models import AuditEvent, LabelLayer, Mosaic
from annotations.rasters import read_raster
from inference.models import Job
from tests.annotations.files import (
    HTML_BYTES,
    OTHER_TOOL_MAPPING,
    SVG_BYTES,
    expected_working,
    float_tiff_bytes,
    other_tool_labels,
    pillow_bytes,
    png_claiming,
    truncated_tiff_bytes,
    write_tiff,
)
from tests.conftest import gray_image, png_bytes

pytestmark = pytest.mark.django_db(transaction=True)


BOUNDARY = "rcmweb-test-boundary"


def post(api, name: str, data: bytes, *, labels: tuple[str, bytes] | None = None, **fields: object):
    """A multipart upload written by hand, so the file name reaches the server exactly as given
    (Django's test client would strip folders from it). ``labels``: (file name, bytes) of a label map."""
    parts = [f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="{key}"\r\n\r\n{value}\r\n'.encode()
             for key, value in fields.items()]
    files = [("file", name, data)] + ([("labels", *labels)] if labels is not None else [])
    for field, filename, content in files:
        parts.append(f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="{field}"; filename="{filename}"\r\n'
                     "Content-Type: application/octet-stream\r\n\r\n".encode() + content + b"\r\n")
    body = b"".join(parts) + f"--{BOUNDARY}--\r\n".encode()
    return api.generic("POST", "/api/mosaics/", body, content_type=f"multipart/form-data; boundary={BOUNDARY}")


def assert_nothing_left(media_root: Path) -> None:
    assert Mosaic.objects.count() == 0
    assert LabelLayer.objects.count() == 0
    assert Job.objects.count() == 0
    assert AuditEvent.objects.count() == 0
    leftovers = [p for p in media_root.rglob("*") if p.is_file()] if media_root.exists() else []
    assert leftovers == []


def test_png_upload_is_ingested(admin_api, media_root, eager_celery) -> None:
    response = post(admin_api, "lesion.png", png_bytes(gray_image(300, 200)), um_per_px=1.0)
    assert response.status_code == 201, response.content
    body = response.json()
    assert (body["width"], body["height"], body["working_width"], body["working_height"]) == (300, 200, 75, 50)
    mosaic = Mosaic.objects.get()
    assert mosaic.status == Mosaic.Status.READY
    assert (mosaic.folder / "dzi" / "image.dzi").exists()
    assert (mosaic.folder / "working.png").exists() and (mosaic.folder / "thumbnail.jpg").exists()
    job = Job.objects.get()
    assert (job.kind, job.state, job.progress, job.attempts) == ("ingest", "succeeded", 1.0, 1)
    assert AuditEvent.objects.filter(verb="mosaic.upload", target_id=str(mosaic.pk)).exists()


@pytest.mark.parametrize("fmt,ext", [("BMP", "bmp"), ("JPEG", "jpg")])
def test_bmp_and_jpeg_are_accepted(admin_api, media_root, eager_celery, fmt: str, ext: str) -> None:
    response = post(admin_api, f"m.{ext}", pillow_bytes(gray_image(), fmt))
    assert response.status_code == 201, response.content
    assert Mosaic.objects.get().status == Mosaic.Status.READY


def test_um_per_px_from_tiff_tags_and_default(admin_api, media_root, eager_celery, tmp_path) -> None:
    tagged = write_tiff(tmp_path / "t.tif", gray_image(seed=1), um_per_px=0.5).read_bytes()
    body = post(admin_api, "t.tif", tagged).json()
    assert body["um_per_px"] == pytest.approx(0.5, rel=1e-3) and body["um_per_px_source"] == "file"
    assert body["working_width"] == round(300 * 0.5 / 4.0)
    plain = post(admin_api, "p.png", png_bytes(gray_image(seed=2))).json()
    assert plain["um_per_px"] == 1.0 and plain["um_per_px_source"] == "default"


def test_same_file_twice_is_one_mosaic(admin_api, media_root, eager_celery) -> None:
    data = png_bytes(gray_image())
    first = post(admin_api, "a.png", data)
    second = post(admin_api, "b.png", data)
    assert (first.status_code, second.status_code) == (201, 200)
    assert first.json()["id"] == second.json()["id"]
    assert Mosaic.objects.count() == 1 and Job.objects.count() == 1


def test_experts_cannot_upload(expert_api, media_root) -> None:
    response = post(expert_api, "a.png", png_bytes(gray_image()))
    assert response.status_code == 403
    assert_nothing_left(media_root)


def test_anonymous_gets_no_api(client, db) -> None:
    assert client.get("/api/mosaics/").status_code in (401, 403)


BAD_INPUTS = {
    "empty": ("empty.png", lambda tmp: b"", "empty"),
    "html-as-png": ("page.png", lambda tmp: HTML_BYTES, "not an image"),
    "svg-as-png": ("drawing.png", lambda tmp: SVG_BYTES, "not an image"),
    "jpeg-as-png": ("photo.png", lambda tmp: pillow_bytes(gray_image(), "JPEG"), "content is JPEG"),
    "truncated-tiff": ("cut.tif", truncated_tiff_bytes, "truncated or corrupt"),
    "float-pixels": ("float.tif", float_tiff_bytes, "Pixel type 'float' is not supported"),
    "too-many-pixels": ("huge.png", lambda tmp: png_claiming(25000, 25000), "at most 400,000,000 pixels"),
    "path-in-name": ("../../etc/evil.png", lambda tmp: png_bytes(gray_image()), "plain file name"),
    "folder-in-name": ("sub/dir.png", lambda tmp: png_bytes(gray_image()), "plain file name"),
    "bad-extension": ("mosaic.gif", lambda tmp: png_bytes(gray_image()), "not accepted"),
}


@pytest.mark.parametrize("case", sorted(BAD_INPUTS))
def test_bad_input_is_refused_and_leaves_nothing(admin_api, media_root, tmp_path, case: str) -> None:
    name, make, message = BAD_INPUTS[case]
    response = post(admin_api, name, make(tmp_path))
    assert response.status_code == 400, response.content
    assert message in response.json()["file"][0]
    assert_nothing_left(media_root)


def test_file_over_size_limit_is_refused(admin_api, media_root, settings) -> None:
    settings.RCMWEB_MAX_UPLOAD_BYTES = 10_000
    response = post(admin_api, "big.png", png_bytes(gray_image(400, 400)))
    assert response.status_code == 400
    assert "larger than the limit" in response.json()["file"][0]
    assert_nothing_left(media_root)


def test_implausible_um_per_px_is_refused(admin_api, media_root) -> None:
    response = post(admin_api, "a.png", png_bytes(gray_image()), um_per_px=500)
    assert response.status_code == 400
    assert "between" in response.json()["file"][0]
    assert_nothing_left(media_root)


def test_delete_removes_rows_and_files(admin_api, media_root, eager_celery) -> None:
    mosaic_id = post(admin_api, "a.png", png_bytes(gray_image())).json()["id"]
    folder = Mosaic.objects.get(pk=mosaic_id).folder
    assert admin_api.delete(f"/api/mosaics/{mosaic_id}/").status_code == 204
    assert not Mosaic.objects.exists() and not folder.exists()
    assert AuditEvent.objects.filter(verb="mosaic.delete").exists()


# --- Expert labels sent with the upload -------------------------------------------------------------------

def test_labels_at_full_resolution_with_a_mapping_become_the_expert_layer(admin_api, media_root,
                                                                           eager_celery) -> None:
    response = post(admin_api, "lesion.png", png_bytes(gray_image(300, 200)), um_per_px=1.0,
                    labels=("lesion_labels.png", png_bytes(other_tool_labels())),
                    value_mapping=OTHER_TOOL_MAPPING, labels_name="Consensus")
    assert response.status_code == 201, response.content
    body = response.json()
    layer = LabelLayer.objects.get()
    assert body["labels"] == {"layer": layer.pk, "key": f"layer:{layer.pk}", "name": "Consensus",
                              "labelled_pixels": int((expected_working() != 255).sum()), "created": True}
    assert (layer.source, layer.mosaic_id) == (LabelLayer.Source.IMPORT, body["id"])
    np.testing.assert_array_equal(read_raster(layer.raster_path), expected_working())
    audit = AuditEvent.objects.get(verb="labels.import")
    assert audit.details["at_upload"] is True and audit.details["mapping"] == {"0": 255, "10": 2, "20": 4}
    # Ingest ran (eagerly) after the import; the layer is drawn in the viewer like a later import.
    assert Mosaic.objects.get().status == Mosaic.Status.READY
    listed = admin_api.get(f"/api/mosaics/{body['id']}/layers/").json()
    assert [(item["key"], item["source"]) for item in listed] == [(f"layer:{layer.pk}", "import")]


def test_labels_at_working_resolution_without_mapping(admin_api, media_root, eager_celery) -> None:
    labels = expected_working()
    response = post(admin_api, "m.png", png_bytes(gray_image(300, 200)), um_per_px=1.0,
                    labels=("m_labels.png", png_bytes(labels)))
    assert response.status_code == 201, response.content
    assert response.json()["labels"]["name"] == "m_labels.png"
    np.testing.assert_array_equal(read_raster(LabelLayer.objects.get().raster_path), labels)


@pytest.mark.parametrize("case,message", [
    ("wrong-size", "The label map is 299 × 200 px; it must match the mosaic at full resolution (300 × 200) or at "
                   "working resolution (75 × 50)"),
    ("outside-mapping", "has values [30] that the value mapping does not cover"),
    ("rgb", "one channel"),
    ("not-png-or-tiff", "Label maps must be PNG or TIFF"),
])
def test_bad_labels_refuse_the_whole_upload_and_leave_nothing(admin_api, media_root, eager_celery, case: str,
                                                              message: str) -> None:
    labels = other_tool_labels()
    name = "l.png"
    if case == "wrong-size":
        labels = labels[:, :-1]
    elif case == "outside-mapping":
        labels[0, 0] = 30
    elif case == "rgb":
        labels = np.stack([labels] * 3, axis=-1)
    else:
        name = "l.bmp"
    response = post(admin_api, "m.png", png_bytes(gray_image(300, 200)), um_per_px=1.0,
                    labels=(name, png_bytes(labels)), value_mapping=OTHER_TOOL_MAPPING)
    assert response.status_code == 400, response.content
    assert message in response.json()["labels"][0]
    assert_nothing_left(media_root)


def test_mapping_without_a_label_file_is_refused(admin_api, media_root) -> None:
    response = post(admin_api, "m.png", png_bytes(gray_image()), value_mapping=OTHER_TOOL_MAPPING)
    assert response.status_code == 400
    assert "Only used with a label map" in response.json()["value_mapping"][0]
    assert_nothing_left(media_root)


def test_same_file_again_with_labels_imports_them_onto_the_existing_mosaic_once(admin_api, media_root,
                                                                                 eager_celery) -> None:
    data = png_bytes(gray_image(300, 200))
    mosaic_id = post(admin_api, "m.png", data, um_per_px=1.0).json()["id"]
    labels = ("m_labels.png", png_bytes(other_tool_labels()))
    bad = post(admin_api, "m.png", data, labels=("m_labels.png", png_bytes(other_tool_labels()[:-1])),
               value_mapping=OTHER_TOOL_MAPPING)
    assert bad.status_code == 400 and "must match the mosaic" in bad.json()["labels"][0]
    assert not LabelLayer.objects.exists()
    again = post(admin_api, "m.png", data, labels=labels, value_mapping=OTHER_TOOL_MAPPING)
    assert again.status_code == 200, again.content
    assert again.json()["id"] == mosaic_id and again.json()["labels"]["created"] is True
    layer = LabelLayer.objects.get()
    np.testing.assert_array_equal(read_raster(layer.raster_path), expected_working())
    assert AuditEvent.objects.get(verb="labels.import").details["duplicate_upload"] is True
    third = post(admin_api, "m.png", data, labels=labels, value_mapping=OTHER_TOOL_MAPPING)
    assert third.status_code == 200
    assert third.json()["labels"] == {**again.json()["labels"], "created": False}
    assert LabelLayer.objects.count() == 1 and Mosaic.objects.count() == 1 and Job.objects.count() == 1


def test_schema_describes_the_label_fields_of_the_upload(admin_api) -> None:
    schema = admin_api.get("/api/schema/", {"format": "json"}).json()
    body = schema["paths"]["/api/mosaics/"]["post"]["requestBody"]["content"]["multipart/form-data"]["schema"]
    fields = schema["components"]["schemas"][body["$ref"].rsplit("/", 1)[-1]]["properties"]
    assert fields["labels"]["format"] == "binary"
    assert "working resolution" in fields["labels"]["description"]
    assert "255 unlabelled" in fields["value_mapping"]["description"]
    assert "labels_name" in fields
    created = schema["paths"]["/api/mosaics/"]["post"]["responses"]["201"]["content"]["application/json"]["schema"]
    result = schema["components"]["schemas"][created["$ref"].rsplit("/", 1)[-1]]["properties"]
    assert "labels" in result


def test_labels_sent_with_a_mosaic_whose_ingest_failed_are_refused(admin_api, media_root) -> None:
    data = png_bytes(gray_image(300, 200))
    mosaic_id = post(admin_api, "m.png", data, um_per_px=1.0).json()["id"]  # no worker: the ingest waits
    Mosaic.objects.filter(pk=mosaic_id).update(status=Mosaic.Status.FAILED, failure_reason="disk full")
    response = post(admin_api, "m.png", data, labels=("m_labels.png", png_bytes(expected_working())))
    assert response.status_code == 400
    assert f"already mosaic {mosaic_id}" in response.json()["labels"][0]
    assert "disk full" in response.json()["labels"][0]
    assert not LabelLayer.objects.exists()
