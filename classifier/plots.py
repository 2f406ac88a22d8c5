"""Confusion-matrix pictures for the model card (matplotlib, off-screen)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from classifier.training import Confusion

__all__ = ["write_confusion_png"]


def write_confusion_png(confusion: Confusion, path: Path, *, title: str) -> None:
    """Draw ``confusion`` (counts, rows = true labels) as a PNG at ``path``.

    Cells are shaded by the share of their row, so small classes read as clearly as
    large ones; the count is written in each cell.
    """
    labels = list(confusion.labels)
    counts = np.asarray(confusion.matrix, dtype=float)
    totals = counts.sum(axis=1, keepdims=True)
    shares = np.divide(counts, totals, out=np.zeros_like(counts), where=totals > 0)
    size = max(4.0, 0.55 * len(labels) + 2.0)
    # The object API with the Agg canvas: no pyplot, no global state, no display.
    figure = Figure(figsize=(size + 1.0, size))
    FigureCanvasAgg(figure)
    axes = figure.subplots()
    image = axes.imshow(shares, cmap="Blues", vmin=0.0, vmax=1.0)
    axes.set_xticks(range(len(labels)), labels, rotation=45, ha="right")
    axes.set_yticks(range(len(labels)), labels)
    axes.set_xlabel("predicted")
    axes.set_ylabel("true")
    correct = np.trace(counts) / max(1.0, counts.sum())
    axes.set_title(f"{title}: cross-validated, accuracy {correct:.2f}")
    for row in range(len(labels)):
        for column in range(len(labels)):
            axes.text(
                column, row, f"{int(counts[row, column])}", ha="center", va="center",
                color="white" if shares[row, column] > 0.5 else "black", fontsize=8,
            )  # fmt: skip
    figure.colorbar(image, ax=axes, fraction=0.046, pad=0.04, label="share of row")
    figure.tight_layout()
    figure.savefig(path, dpi=100)
