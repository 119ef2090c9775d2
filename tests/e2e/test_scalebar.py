"""The scale bar's choice of a round length (scalebar.js), run in the browser."""

from __future__ import annotations

import pytest

pytestmark = pytest.mark.e2e

CHOOSE = """async (cases) => {
  const {chooseScale} = await import('/static/frontend/js/scalebar.js');
  return cases.map(([umPerPx, maxPx]) => chooseScale(umPerPx, maxPx));
}"""


@pytest.mark.parametrize(("um_per_screen_px", "label", "px"), [
    (0.5, "50 µm", 100.0),     # 80 µm fit → 50
    (1.0, "100 µm", 100.0),    # 160 µm fit → 100
    (1.25, "200 µm", 160.0),   # exactly 200 µm fit: the bar may reach its maximum
    (3.0, "200 µm", 200 / 3),  # 480 µm fit → 200
    (4.0, "500 µm", 125.0),    # 640 µm fit → 500
    (8.0, "1 mm", 125.0),      # 1280 µm fit → 1000 µm, shown in mm
    (40.0, "5 mm", 125.0),
    (0.05, "5 µm", 100.0),
    (0.01, "1 µm", 100.0),
    (0.004, "0.5 µm", 125.0),
])
def test_choose_scale_picks_the_longest_round_length_that_fits(page, um_per_screen_px: float, label: str,
                                                               px: float) -> None:
    page.goto("/accounts/login/")  # any page of the site, for the module's origin
    [result] = page.evaluate(CHOOSE, [[um_per_screen_px, 160]])
    assert result["label"] == label
    assert result["px"] == pytest.approx(px)
    assert result["px"] <= 160 + 1e-9


def test_choose_scale_refuses_non_positive_input(page) -> None:
    page.goto("/accounts/login/")
    message = page.evaluate("""async () => {
      const {chooseScale} = await import('/static/frontend/js/scalebar.js');
      try { chooseScale(0); return 'no error'; } catch (error) { return error.message; }
    }""")
    assert message == "umPerScreenPx must be a positive number, got 0"
