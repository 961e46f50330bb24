"""PNG plots of a run (matplotlib, imported only here, with the file backend)."""

from __future__ import annotations

from pathlib import Path
from typing import Sequence


def pyplot():
    """matplotlib.pyplot with the file backend (no display needed)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    return plt


def save_figure(fig, path: str | Path, dpi: int = 120) -> Path:
    """Lay out, write and close ``fig``; returns the path written."""
    fig.tight_layout()
    fig.savefig(path, dpi=dpi)
    pyplot().close(fig)
    return Path(path)


def loss_curve(losses: Sequence[float], path: str | Path, title: str = "student fine-tuning") -> None:
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(6, 3.5))
    ax.plot(range(1, len(losses) + 1), losses, marker=".", linewidth=1)
    ax.set_xlabel("step")
    ax.set_ylabel("weighted cross-entropy")
    ax.set_title(title)
    ax.grid(alpha=0.3)
    save_figure(fig, path)


def scores_by_mode(scores: dict[str, Sequence[float]], path: str | Path, reference: float | None = None,
                   title: str = "candidate scores by mode") -> None:
    plt = pyplot()
    modes = [m for m, s in scores.items() if len(s)]
    fig, ax = plt.subplots(figsize=(7, 4))
    if modes:
        ax.boxplot([scores[m] for m in modes], showmeans=True)
        ax.set_xticks(range(1, len(modes) + 1), modes)
        for i, m in enumerate(modes, 1):
            ax.scatter([i] * len(scores[m]), scores[m], s=6, alpha=0.35)
    if reference is not None:
        ax.axhline(reference, color="grey", linestyle="--", label="original features")
        ax.legend(loc="lower right")
    ax.set_ylabel("search score")
    ax.set_title(title)
    ax.grid(alpha=0.3, axis="y")
    save_figure(fig, path)
