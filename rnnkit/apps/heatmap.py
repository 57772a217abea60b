"""Attention weights as a heat map (translate predict --attention-plot): where each word of
a translation looked in its source."""
from __future__ import annotations

from pathlib import Path

import numpy as np

from rnnkit.errors import RnnkitError


def plot_attention(path: Path, source: list, target: list, weights: np.ndarray) -> None:
    """A heat map of the weights (target words down, source words across)."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    weights = np.asarray(weights)[:len(target), :len(source)]
    fig, ax = plt.subplots(figsize=(1.5 + 0.42 * len(source), 1.2 + 0.36 * len(target)))
    image = ax.imshow(weights, cmap="viridis", vmin=0.0, vmax=1.0, aspect="auto")
    ax.set_xticks(range(len(source)), source, rotation=60, ha="right")
    ax.set_yticks(range(len(target)), target)
    ax.set_xlabel("source")
    ax.set_ylabel("translation")
    fig.colorbar(image, ax=ax, fraction=0.04)
    fig.tight_layout()
    try:
        fig.savefig(path, dpi=110)
    except OSError as e:
        raise RnnkitError(f"attention_plot: expected a PNG path that can be written, got "
                          f"{str(path)!r} ({e.strerror})") from None
    finally:
        plt.close(fig)
