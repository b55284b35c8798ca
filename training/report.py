"""Pictures people look at: DESOM-1 prototype grid, DESOM-2 label map, an exposure's density map."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from matplotlib.colors import ListedColormap  # noqa: E402
from matplotlib.patches import Patch  # noqa: E402

from service.labels import Label, LabelMap  # noqa: E402

LABEL_COLOURS = {
    Label.UNLABELLED: "#ffffff",
    Label.GOOD: "#2ca02c",
    Label.RBT: "#d62728",
    Label.BT: "#ff7f0e",
    Label.BSEEING: "#1f77b4",
    Label.BGP: "#9467bd",
    Label.BADFOCUS: "#8c564b",
}


def prototype_grid(prototypes: np.ndarray, grid: tuple[int, int], path: Path) -> Path:
    """Decoded prototypes (K, 32, 32) tiled as the map: what each DESOM-1 node has learnt a source looks like."""
    nx, ny = grid
    size = prototypes.shape[1]
    mosaic = np.ones((ny * (size + 2), nx * (size + 2)), np.float32)
    for k, image in enumerate(prototypes.astype(np.float32)):
        y, x = divmod(k, nx)
        mosaic[y * (size + 2) + 1 : y * (size + 2) + 1 + size, x * (size + 2) + 1 : x * (size + 2) + 1 + size] = image
    fig, ax = plt.subplots(figsize=(10, 10 * ny / nx))
    ax.imshow(mosaic, cmap="gray_r", interpolation="nearest")
    ax.set_title(f"DESOM-1 prototypes ({nx} x {ny})")
    ax.axis("off")
    return _save(fig, path)


def label_map(labels: LabelMap, path: Path, occupancy: np.ndarray | None = None) -> Path:
    """DESOM-2 cells coloured by curated label, with member counts when known."""
    codes = np.array(labels.as_grid())
    cmap = ListedColormap([LABEL_COLOURS[label] for label in Label])
    fig, ax = plt.subplots(figsize=(8, 8))
    ax.imshow(codes, cmap=cmap, vmin=-0.5, vmax=len(Label) - 0.5, origin="lower", interpolation="nearest")
    counts = occupancy if occupancy is not None else np.array(
        [[labels.cells[y * labels.grid[0] + x].members if y * labels.grid[0] + x in labels.cells else 0
          for x in range(labels.grid[0])] for y in range(labels.grid[1])]
    )
    for (y, x), n in np.ndenumerate(counts):
        if n:
            ax.text(x, y, str(int(n)), ha="center", va="center", fontsize=6)
    ax.set_xticks(np.arange(-0.5, labels.grid[0]), minor=True)
    ax.set_yticks(np.arange(-0.5, labels.grid[1]), minor=True)
    ax.grid(which="minor", color="#cccccc", linewidth=0.5)
    ax.tick_params(which="both", length=0, labelsize=7)
    ax.legend(handles=[Patch(facecolor=LABEL_COLOURS[l], edgecolor="k", label=l.value) for l in Label],
              loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=8)
    ax.set_title("DESOM-2 curated label map (numbers: members)")
    return _save(fig, path)


def density_map(histovector: np.ndarray, grid: tuple[int, int], title: str, path: Path) -> Path:
    """An exposure's histo-vector as the 25 x 25 density map over DESOM-1 nodes."""
    fig, ax = plt.subplots(figsize=(5, 5))
    image = ax.imshow(np.asarray(histovector).reshape(grid[1], grid[0]), cmap="viridis", origin="lower")
    fig.colorbar(image, ax=ax, shrink=0.8, label="sources")
    ax.set_title(title, fontsize=9)
    return _save(fig, path)


def _save(fig: plt.Figure, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110, bbox_inches="tight")
    plt.close(fig)
    return path
