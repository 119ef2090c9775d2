"""Class-area reports of a layer as CSV and as a bar chart PNG (matplotlib, no display needed)."""

from __future__ import annotations

import csv
import io
from collections.abc import Sequence

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from .layers import ClassArea  # noqa: E402

CHART_DPI = 110  # crisp on a normal screen and in a report, ~60 kB


def class_areas_csv(rows: Sequence[ClassArea], *, title: str) -> str:
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(["# " + title])
    writer.writerow(["value", "class", "pixels", "area_mm2", "share_of_labelled", "share_of_lesion"])
    for row in rows:
        writer.writerow([row.value, row.name, row.pixels, f"{row.area_mm2:.4f}", f"{row.share_of_labelled:.4f}",
                         "" if row.share_of_lesion is None else f"{row.share_of_lesion:.4f}"])
    return out.getvalue()


def class_areas_png(rows: Sequence[ClassArea], *, title: str) -> bytes:
    fig, (left, right) = plt.subplots(1, 2, figsize=(9, 3.4), dpi=CHART_DPI)
    names = [row.name.split(" (")[0] for row in rows]
    colours = [row.colour for row in rows]
    bars = left.barh(names, [row.area_mm2 for row in rows], color=colours, edgecolor="#333", linewidth=0.5)
    left.bar_label(bars, labels=[f"{row.area_mm2:.2f}" for row in rows], padding=3, fontsize=8)
    left.set_xlabel("area (mm²)")
    left.invert_yaxis()
    left.set_title("Area per class", fontsize=10)
    lesion = [row for row in rows if row.share_of_lesion is not None]
    bars = right.barh([r.name for r in lesion], [100 * (r.share_of_lesion or 0) for r in lesion],
                      color=[r.colour for r in lesion], edgecolor="#333", linewidth=0.5)
    right.bar_label(bars, labels=[f"{100 * (r.share_of_lesion or 0):.1f} %" for r in lesion], padding=3, fontsize=8)
    right.set_xlim(0, 110)
    right.set_xlabel("share of the lesion (%)")
    right.invert_yaxis()
    right.set_title("Pattern share of the lesion", fontsize=10)
    fig.suptitle(title, fontsize=11)
    fig.tight_layout()
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png")
    plt.close(fig)
    return buffer.getvalue()
