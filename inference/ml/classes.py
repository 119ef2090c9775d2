"""Label classes of the paper (section 4), in the order used everywhere, and the unlabelled value.

The database's ``LabelClass`` table is seeded from ``CLASSES`` so the UI, exports and metrics agree.
"""

from __future__ import annotations

from dataclasses import dataclass

UNLABELLED = 255  # value of a pixel nobody labelled; ignored by the loss and the metrics


@dataclass(frozen=True)
class ClassInfo:
    value: int
    key: str
    name: str
    colour: str  # default overlay colour, ``#rrggbb``


CLASSES: tuple[ClassInfo, ...] = (
    ClassInfo(0, "background", "Background (non-lesion)", "#7f7f7f"),
    ClassInfo(1, "artifact", "Artifact", "#f2e600"),
    ClassInfo(2, "meshwork", "Meshwork", "#1f77b4"),
    ClassInfo(3, "ring", "Ring", "#2ca02c"),
    ClassInfo(4, "nested", "Nested", "#d62728"),
    ClassInfo(5, "aspecific", "Aspecific", "#9467bd"),
)
NUM_CLASSES = len(CLASSES)
CLASS_KEYS: tuple[str, ...] = tuple(c.key for c in CLASSES)
