"""PNG plots of a run (matplotlib, imported only here).

Figures are built with the object-oriented API (``matplotlib.figure.Figure``), never with
pyplot: ``Figure.savefig`` picks a file canvas for the format it writes, so plotting neither
switches the user's backend (a notebook keeps its inline or widget backend) nor leaves figures
in pyplot's global registry.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any, Sequence

if TYPE_CHECKING:
    from matplotlib.figure import Figure


def new_figure(figsize: tuple[float, float], nrows: int = 1, ncols: int = 1, **subplot_kw: Any) -> tuple["Figure", Any]:
    """A figure detached from pyplot, with its axes.

    Parameters
    ----------
    figsize : tuple of float
        Width and height in inches.
    nrows, ncols : int
        The grid of axes.
    **subplot_kw
        Passed to ``Figure.subplots`` (``sharex``, ``sharey``, ...).

    Returns
    -------
    fig : matplotlib.figure.Figure
    ax : Axes or ndarray of Axes
        One Axes for a 1 x 1 grid, else an array as ``Figure.subplots`` returns it.
    """
    # Imported here so that importing featteam does not import matplotlib (an optional dependency).
    from matplotlib.figure import Figure

    fig = Figure(figsize=figsize)
    return fig, fig.subplots(nrows, ncols, **subplot_kw)


def save_figure(fig: "Figure", path: str | Path, dpi: int = 120) -> Path:
    """Lay out and write ``fig``; returns the path written.

    Parameters
    ----------
    fig : matplotlib.figure.Figure
    path : str or Path
        The file; its suffix chooses the format.
    dpi : int

    Returns
    -------
    Path
    """
    fig.tight_layout()
    fig.savefig(path, dpi=dpi)
    # Nothing to close: a Figure made without pyplot is freed with its last reference.
    return Path(path)


def loss_curve(losses: Sequence[float], path: str | Path, title: str = "student fine-tuning") -> None:
    """Plot the student's fine-tuning loss per step into ``path``.

    Parameters
    ----------
    losses : sequence of float
    path : str or Path
    title : str
    """
    fig, ax = new_figure((6, 3.5))
    ax.plot(range(1, len(losses) + 1), losses, marker=".", linewidth=1)
    ax.set_xlabel("step")
    ax.set_ylabel("weighted cross-entropy")
    ax.set_title(title)
    ax.grid(alpha=0.3)
    save_figure(fig, path)


def scores_by_mode(scores: dict[str, Sequence[float]], path: str | Path, reference: float | None = None,
                   title: str = "candidate scores by mode") -> None:
    """Box plot of candidate search scores per mode into ``path``.

    Parameters
    ----------
    scores : dict of str to sequence of float
        Scores per mode; modes without a score are left out.
    path : str or Path
    reference : float, optional
        Drawn as a dashed line (the original features' score).
    title : str
    """
    modes = [m for m, s in scores.items() if len(s)]
    fig, ax = new_figure((7, 4))
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
