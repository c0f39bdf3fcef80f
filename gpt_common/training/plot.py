"""The book's loss plot (chapter 5): training and validation loss against epochs, tokens seen on a second axis.

Framework-neutral: both twins' ``train.py`` re-export ``plot_losses``. It needs
matplotlib (``pip install gpt-twins[train]``), imported only when a plot is drawn.
"""

from __future__ import annotations

import os
from pathlib import Path

__all__ = ["plot_losses"]


def plot_losses(epochs_seen, tokens_seen, train_losses, val_losses, path: str | os.PathLike = "loss-plot.png"):
    """Draw the book's figure 5.12 and save it as a PNG at ``path``; returns the matplotlib Figure.

    The book's ``plot_losses(epochs_seen, tokens_seen, train_losses, val_losses)``,
    with the file name as an argument instead of a fixed "loss-plot.pdf", and
    no window shown (the Agg backend), so it runs on a machine with no display.
    """
    try:
        from matplotlib.figure import Figure
        from matplotlib.ticker import MaxNLocator
    except ImportError as error:  # an optional dependency: say how to get it
        raise ValueError("plot_losses needs matplotlib: pip install matplotlib") from error
    if not (len(epochs_seen) == len(tokens_seen) == len(train_losses) == len(val_losses)):
        raise ValueError(f"plot_losses needs one value per evaluation in each list, got lengths "
                         f"{[len(epochs_seen), len(tokens_seen), len(train_losses), len(val_losses)]}")
    fig = Figure(figsize=(5, 3))
    ax1 = fig.add_subplot()
    ax1.plot(epochs_seen, train_losses, label="Training loss")
    ax1.plot(epochs_seen, val_losses, linestyle="-.", label="Validation loss")
    ax1.set_xlabel("Epochs")
    ax1.set_ylabel("Loss")
    ax1.legend(loc="upper right")
    ax1.xaxis.set_major_locator(MaxNLocator(integer=True))  # only integer labels on the x-axis
    ax2 = ax1.twiny()  # a second x-axis sharing the y-axis, for tokens seen
    ax2.plot(tokens_seen, train_losses, alpha=0)  # invisible: it only aligns the ticks
    ax2.set_xlabel("Tokens seen")
    fig.tight_layout()
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    return fig
