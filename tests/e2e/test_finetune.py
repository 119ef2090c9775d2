"""Fine-tuning in a real browser: an admin picks the held-out set, launches a small round, watches it, compares the
candidate with its parent and promotes it; an expert then gets the new version's predictions.

No worker process runs here: the page's launch queues the job, and the test runs the same Celery task functions a
worker would (in a thread, so the page polls while it trains). Models and mosaics are tiny.
"""

from __future__ import annotations

import io
import threading
from collections.abc import Callable

import numpy as np
import pytest

from tests.conftest import PASSWORD, png_bytes, wait_for
from tests.e2e.conftest import TIMEOUT_MS, VIEWPORT, ingest_now, upload_png

pytestmark = pytest.mark.e2e

# Long enough for one tiny training round plus the held-out evaluation of both versions on 2 busy cores.
ROUND_TIMEOUT_S = 120


def labelled_mosaic(admin_user, *, name: str, seed: int, width: int = 640, height: int = 480):
    """A ready mosaic (1 µm/px, so 1/4 of its size at working resolution) with an imported label map: meshwork on
    the left, ring on the right, a strip unlabelled between them."""
    from annotations.models import Mosaic
    from annotations.services import label_layer_import

    mosaic = upload_png(admin_user, name=name, width=width, height=height, seed=seed, um_per_px=1.0)
    ingest_now(mosaic)
    assert mosaic.status == Mosaic.Status.READY, mosaic.failure_reason
    labels = np.full((mosaic.working_height, mosaic.working_width), 255, np.uint8)
    labels[:, : mosaic.working_width // 2] = 2
    labels[:, mosaic.working_width // 2 + 8:] = 3
    label_layer_import(mosaic=mosaic, source=io.BytesIO(png_bytes(labels)), filename=f"{name}.png", user=admin_user)
    return mosaic


def submitted_review(mosaic, expert):
    """The expert's review of ``mosaic``: meshwork painted over the top left, the model's labels accepted over the
    bottom right (boxes in working px, sent in full-resolution px at 1 µm/px), then submitted."""
    from annotations.reviews import review_edit, review_start, review_submit

    review, _ = review_start(mosaic=mosaic, user=expert)
    revision = review.layer.revision
    w, h = mosaic.working_width, mosaic.working_height
    for op, value, (x0, y0, x1, y1) in (("paint", 2, (2, 2, w // 2, h // 2)),
                                        ("accept", None, (w // 2 + 4, h // 2, w - 2, h - 2))):
        revision = review_edit(review=review, user=expert, revision=revision, op=op, class_value=value,
                               geometry={"type": "rectangle", "x0": 4 * x0, "y0": 4 * y0, "x1": 4 * x1,
                                         "y1": 4 * y1}).revision
    return review_submit(review=review, user=expert)


def run_queued(kind: str) -> None:
    """Run every queued job of ``kind`` here, as a worker would."""
    from inference.models import Job
    from inference.tasks import predict_mosaic, train_model

    task = {"predict": predict_mosaic, "train": train_model}[kind]
    for job_id in Job.objects.filter(kind=kind, state=Job.State.QUEUED).values_list("pk", flat=True):
        task(job_id)


def in_thread(work: Callable[[], None]) -> threading.Thread:
    """Run ``work`` in a thread with its own database connection (closed after), like a worker process."""
    from django.db import connection

    def target() -> None:
        try:
            work()
        finally:
            connection.close()

    thread = threading.Thread(target=target, daemon=True)
    thread.start()
    return thread


@pytest.fixture
def base_version(transactional_db, media_root, admin_user, tiny_weights):
    """Two labelled mosaics (one becomes held out in the test) and a tiny MUNet registered and active, with its
    predictions made."""
    from inference.services.models import model_version_register

    labelled_mosaic(admin_user, name="Lesion A", seed=11)
    labelled_mosaic(admin_user, name="Lesion B", seed=12)
    version, _ = model_version_register(weights_file=tiny_weights(seed=1), name="Tiny base", user=admin_user,
                                        activate=True)
    run_queued("predict")
    return version


def new_page(browser, live_server):
    context = browser.new_context(viewport=VIEWPORT, base_url=live_server.url, device_scale_factor=1)
    context.set_default_timeout(TIMEOUT_MS)
    other = context.new_page()
    other.js_errors = []
    other.on("pageerror", lambda error: other.js_errors.append(str(error)))
    return other


def log_in(page, username: str) -> None:
    page.goto("/accounts/login/")
    page.fill("#id_username", username)
    page.fill("#id_password", PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_url(lambda url: "/accounts/login/" not in url)


def test_admin_fine_tunes_compares_promotes_and_experts_get_the_new_version(
        page, login, browser, live_server, base_version, admin_user, expert_user, artifacts) -> None:
    from annotations.models import Mosaic
    from inference.models import Job, ModelVersion

    held, trained = Mosaic.objects.get(name="Lesion B"), Mosaic.objects.get(name="Lesion A")
    login("ada")
    page.goto("/models/")
    base_row = page.locator(f"tr.version-row[data-version-id='{base_version.pk}']")
    base_row.wait_for()
    assert base_row.get_attribute("data-status") == "active"
    assert "Tiny base" in page.inner_text("#active-summary")
    page.evaluate("() => { window.__sameDocument = true; }")  # gone if the page reloads

    # The held-out set: switch Lesion B on; the server records it.
    switch = page.locator(f"#held-out-{held.pk}")
    switch.check()
    wait_for(lambda: Mosaic.objects.get(pk=held.pk).held_out, timeout=10)
    page.wait_for_function("() => document.getElementById('held-out-count').textContent.startsWith('1 of 2')")
    assert page.is_checked(f"#held-out-{held.pk}") and not page.is_checked(f"#held-out-{trained.pk}")

    # An expert reviewed both mosaics against the base version's predictions and submitted the reviews.
    reviews = {mosaic.name: submitted_review(mosaic, expert_user) for mosaic in (held, trained)}

    # Launch a small round from the active version.
    assert page.input_value("#base-select") == str(base_version.pk)
    page.check("input[name=labels][value=imported]")
    page.fill("#epochs-input", "1")
    page.fill("#steps-input", "2")
    page.fill("#lr-input", "0.001")
    page.screenshot(path=artifacts / "models-launch-form.png", full_page=True)
    page.click("#launch-button")
    page.wait_for_function("() => document.getElementById('training').dataset.state === 'queued'")
    job = Job.objects.get(kind=Job.Kind.TRAIN)
    assert (job.params["epochs"], job.params["steps_per_epoch"], job.params["labels"]) == (1, 2, "imported")
    assert "Waiting for a training worker" in page.inner_text("#training-progress")
    assert page.is_disabled("#launch-button")  # one round at a time
    assert page.get_attribute("#models-page", "data-live") == "on"
    page.locator(f"tr.version-row[data-version-id='{job.params['candidate']}'] .status-training").wait_for()
    # the page brings the round into view
    page.wait_for_function("() => { const top = document.getElementById('training').getBoundingClientRect().top; "
                           "return top >= 0 && top < 40; }")
    page.screenshot(path=artifacts / "finetune-queued.png")

    # A worker takes the job; the page follows it to the end without reloading.
    worker = in_thread(lambda: run_queued("train"))
    page.wait_for_function("() => document.getElementById('training').dataset.state === 'succeeded'",
                           timeout=ROUND_TIMEOUT_S * 1000)
    worker.join(timeout=ROUND_TIMEOUT_S)
    job.refresh_from_db()
    assert job.state == Job.State.SUCCEEDED, job.error
    candidate = ModelVersion.objects.get(pk=job.params["candidate"])
    assert candidate.status == ModelVersion.Status.CANDIDATE
    steps = job.info["steps"]  # at most 2 a epoch; fewer when the data holds fewer batches
    assert 1 <= len(steps) <= 2
    assert page.get_attribute("#loss-chart", "data-steps") == str(len(steps))
    assert page.locator("#loss-chart .series-loss-raw circle").count() == len(steps)
    outcome = page.inner_text("#training-outcome")
    dice = candidate.metrics["held_out"]["mean_dice"]
    assert f"held-out mean Dice {100 * dice:.1f} %" in outcome
    assert page.inner_text("#training-state") == "Done"
    assert page.is_enabled("#launch-button")
    page.screenshot(path=artifacts / "finetune-done.png")

    # The comparison shows the candidate beside its parent on the held-out mosaic.
    comparison = page.locator("#comparison")
    page.wait_for_function(f"() => document.getElementById('comparison').dataset.versionId === '{candidate.pk}'")
    assert "Lesion B" in comparison.locator(".facts").inner_text()  # held out
    assert "Lesion A" in comparison.locator("dd[data-role=train]").inner_text()
    tiles = comparison.locator(".tile").all_inner_texts()
    parent_dice = candidate.metrics["parent_held_out"]["mean_dice"]
    assert f"{100 * dice:.1f} %" in tiles[0] and f"parent {100 * parent_dice:.1f} %" in tiles[0]
    rows = comparison.locator(".per-class-table tbody tr")
    assert rows.count() == 6
    meshwork = comparison.locator(".per-class-table tr[data-class-key=meshwork]").inner_text()
    assert "Meshwork" in meshwork and f"{100 * candidate.metrics['held_out']['dice']['meshwork']:.1f} %" in meshwork
    assert comparison.locator("#dice-chart rect.chart-bar-this").count() >= 2  # meshwork and ring occur in the labels
    assert comparison.locator("#dice-chart rect.chart-bar-parent").count() >= 2
    comparison.scroll_into_view_if_needed()
    comparison.screenshot(path=artifacts / "finetune-comparison.png")

    # Beside it, the agreement of both versions with the experts' reviews, split by held-out and trained-on mosaics.
    agreement = candidate.metrics["reviews"]
    assert [row["review"] for row in agreement["per_review"]] == [reviews["Lesion A"].pk, reviews["Lesion B"].pk]
    section = comparison.locator("#review-agreement")
    assert "Agreement with the experts’ reviews" in section.locator("h3").inner_text()
    assert "2 submitted reviews" in section.locator(".review-intro").inner_text()
    for split, name in (("held_out", "Held-out mosaics"), ("trained", "Trained-on mosaics")):
        pool = agreement["splits"][split]
        cells = section.locator(f".review-table tr[data-split={split}] td").all_inner_texts()
        row = section.locator(f".review-table tr[data-split={split}]").inner_text()
        assert name in row
        assert (cells[0], cells[1]) == ("1", f"{pool['labelled_pixels']:,}")
        # agreement: this version, then its parent
        assert cells[2].startswith(f"{100 * pool['candidate']['accuracy']:.1f} %")
        assert cells[3] == f"{100 * pool['parent']['accuracy']:.1f} %"
        assert cells[5] == f"{pool['parent']['kappa']:.3f}"
    assert "optimistic" in section.locator(".review-table tr[data-split=trained]").inner_text()
    assert section.locator("#review-chart rect.chart-bar-this").count() >= 4  # agreement and mean Dice at least
    assert section.locator("#review-chart rect.chart-bar-parent").count() >= 4
    section.locator(".review-details summary").first.click()
    assert section.locator(".per-review-table tbody tr").count() == 2
    section.scroll_into_view_if_needed()
    section.screenshot(path=artifacts / "finetune-review-agreement.png")

    # Promote: a confirmation, then every mosaic is predicted again with the candidate, live.
    page.click(f"tr.version-row[data-version-id='{candidate.pk}'] button[data-action=promote]")
    page.locator("#confirm-dialog[open]").wait_for()
    page.screenshot(path=artifacts / "promote-confirm.png")
    page.click("#confirm-ok")
    page.wait_for_function("() => document.getElementById('repredict').dataset.state === 'running'")
    candidate.refresh_from_db()
    assert candidate.status == ModelVersion.Status.ACTIVE
    assert Job.objects.filter(kind=Job.Kind.PREDICT, model_version=candidate).count() == 2
    assert "0 of 2 mosaics done" in page.inner_text("#repredict-sub")
    page.screenshot(path=artifacts / "promote-repredicting.png")
    run_queued("predict")
    page.wait_for_function("() => document.getElementById('repredict').dataset.state === 'done'")
    assert "2 of 2 mosaics predicted" in page.inner_text("#repredict-sub")
    assert page.locator(f"tr.version-row[data-version-id='{base_version.pk}']").get_attribute("data-status") == \
        "retired"
    page.screenshot(path=artifacts / "promote-done.png", full_page=True)
    assert page.evaluate("() => window.__sameDocument") is True
    assert page.js_errors == []

    # An expert now gets the new version's prediction first, and sees the page without admin actions.
    expert = new_page(browser, live_server)
    log_in(expert, "erin")
    expert.goto(f"/mosaics/{trained.pk}/")
    layers = expert.evaluate(f"() => fetch('/api/mosaics/{trained.pk}/layers/').then((r) => r.json())")
    predictions = [layer for layer in layers if layer["kind"] == "prediction"]
    assert predictions[0]["model_version"] == candidate.pk and predictions[0]["model_status"] == "active"
    assert predictions[1]["model_version"] == base_version.pk
    expert.goto("/models/")
    expert.locator(f"tr.version-row[data-version-id='{candidate.pk}'][data-status=active]").wait_for()
    assert expert.locator("button[data-action=promote], #launch-form, #training").count() == 0
    expert.screenshot(path=artifacts / "models-expert.png", full_page=True)
    assert expert.js_errors == []
    expert.context.close()


def test_running_round_draws_its_curve_live_and_can_be_cancelled(page, login, base_version, admin_user,
                                                                 artifacts) -> None:
    """The curve follows what the trainer reports through the job's progress reporter; Cancel stops the round."""
    from inference.models import Job, ModelVersion
    from inference.services.jobs import ProgressReporter, job_claim
    from inference.services.training import FinetuneParams, finetune_launch

    epochs, per_epoch = 3, 40
    job, created = finetune_launch(params=FinetuneParams(base_version=base_version.pk, epochs=epochs,
                                                         steps_per_epoch=per_epoch), user=admin_user)
    assert created
    job_claim(job_id=job.pk)
    report = ProgressReporter(job.pk)
    steps: list[dict] = []
    history: list[dict] = []
    rng = np.random.default_rng(0)
    total = epochs * per_epoch

    def train_epoch(epoch: int) -> None:
        """Report one epoch the way finetune_run does: every step, then the epoch's validation figures."""
        for step in range(1, per_epoch + 1):
            loss = 0.35 + 1.1 * 0.96 ** len(steps) + rng.normal(0, 0.05)
            steps.append({"epoch": epoch, "step": step, "loss": round(float(loss), 5)})
            report(0.85 * len(steps) / total, f"epoch {epoch}/{epochs} step {step}/{per_epoch} loss {loss:.4f}",
                   {"history": history, "steps": steps, "phase": "training"}, force=True)
        history.append({"epoch": epoch, "train_loss": float(np.mean([s["loss"] for s in steps[-per_epoch:]])),
                        "val_loss": 0.5 + 0.6 * 0.6 ** epoch, "val_mean_dice": 0.41 + 0.09 * epoch,
                        "val_accuracy": 0.62 + 0.07 * epoch})
        report(0.85 * len(steps) / total, f"epoch {epoch}/{epochs} done",
               {"history": history, "steps": steps, "phase": "training"}, force=True)

    train_epoch(1)
    login("ada")
    page.goto("/models/")
    page.wait_for_function(f"() => document.getElementById('loss-chart').dataset.steps === '{per_epoch}'")
    assert f"Epoch 1 of 3 · step {per_epoch} of {per_epoch}" in page.inner_text("#training-progress")
    assert page.locator("#loss-chart .series-val-dice circle").count() == 1
    train_epoch(2)
    page.wait_for_function(f"() => document.getElementById('loss-chart').dataset.steps === '{2 * per_epoch}'")
    assert page.locator("#loss-chart .series-val-dice circle").count() == 2
    assert page.locator("#loss-chart .series-loss path").count() == 1  # enough steps for a trend line
    assert page.get_attribute("#training-progress .bar", "aria-valuenow") == str(round(100 * 0.85 * 2 / 3))
    page.locator("#training").screenshot(path=artifacts / "finetune-running.png")

    page.click("#training-cancel")
    page.click("#confirm-ok")
    page.wait_for_function("() => document.getElementById('training').dataset.state === 'cancelled'")
    assert Job.objects.get(pk=job.pk).state == Job.State.CANCELLED
    assert ModelVersion.objects.get(pk=job.params["candidate"]).status == ModelVersion.Status.DISCARDED
    assert "candidate discarded" in page.inner_text("#training-outcome")
    assert page.is_enabled("#launch-button")
    assert page.js_errors == []


def test_a_failed_round_shows_its_reason(page, login, transactional_db, media_root, admin_user, tiny_weights) -> None:
    """A mosaic too small to cut training patches from makes the round fail; the page says why."""
    from inference.services.models import model_version_register

    labelled_mosaic(admin_user, name="Tiny lesion", seed=5, width=200, height=200)  # 50 working pixels
    model_version_register(weights_file=tiny_weights(), name="Tiny base", user=admin_user, activate=True)
    login("ada")
    page.goto("/models/")
    page.locator("tr.version-row").first.wait_for()
    page.fill("#epochs-input", "1")
    page.fill("#steps-input", "1")
    page.click("#launch-button")
    page.wait_for_function("() => document.getElementById('training').dataset.state === 'queued'")
    in_thread(lambda: run_queued("train")).join(timeout=ROUND_TIMEOUT_S)
    page.wait_for_function("() => document.getElementById('training').dataset.state === 'failed'")
    outcome = page.inner_text("#training-outcome")
    assert "The round failed." in outcome
    assert "A training mosaic is only 50 working pixels wide; at least 64 are needed." in outcome
    assert page.inner_text("#training-state") == "Failed"
    assert page.js_errors == []


def test_launch_errors_are_shown_with_the_form(page, login, transactional_db, media_root, admin_user,
                                               tiny_weights, artifacts) -> None:
    from inference.services.models import model_version_register

    model_version_register(weights_file=tiny_weights(), name="Tiny base", user=admin_user, activate=True)
    login("ada")
    page.goto("/models/")
    page.locator("tr.version-row").first.wait_for()

    page.fill("#epochs-input", "0")
    page.click("#launch-button")
    error = page.locator("[data-error-for=epochs]")
    error.wait_for()
    assert "greater than or equal to 1" in error.inner_text()
    assert page.get_attribute("#epochs-input", "aria-invalid") == "true"

    page.fill("#epochs-input", "1")
    page.click("#launch-button")
    page.wait_for_function("() => document.getElementById('launch-error').textContent.includes('No mosaic')")
    assert "No mosaic outside the held-out set has all labels yet" in page.inner_text("#launch-error")
    assert page.locator("[data-error-for=epochs]").is_hidden()
    page.locator("#launch").screenshot(path=artifacts / "finetune-launch-error.png")
    # the browser logs each 400 answer as a console error; the page itself raised nothing
    assert [e for e in page.js_errors if "status of 400" not in e] == []


def test_a_second_launch_shows_the_round_already_running(page, login, base_version, admin_user) -> None:
    """Another admin started a round after this page loaded: Start shows that round instead of a second one."""
    from inference.models import Job
    from inference.services.training import FinetuneParams, finetune_launch

    login("ada")
    page.goto("/models/")
    page.locator("tr.version-row").first.wait_for()
    assert page.is_hidden("#training")
    running, _ = finetune_launch(params=FinetuneParams(base_version=base_version.pk), user=admin_user)
    page.click("#launch-button")
    page.wait_for_function(f"() => document.getElementById('training').dataset.jobId === '{running.pk}'")
    assert f"A round was already running (#{running.pk})" in page.inner_text("#models-banner")
    assert Job.objects.filter(kind=Job.Kind.TRAIN).count() == 1
    assert page.is_disabled("#launch-button")
    assert page.js_errors == []
