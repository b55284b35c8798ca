"""Pictures people look at: prototype grid, label map, density maps, U-matrix, hit map, gallery thumbnails."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from matplotlib.colors import ListedColormap  # noqa: E402
from matplotlib.patches import Patch  # noqa: E402
from matplotlib.ticker import MaxNLocator  # noqa: E402

from skyqa.service.labels import LABEL_COLOURS, Label, LabelMap  # noqa: E402


def tile(images: np.ndarray, nx: int) -> np.ndarray:
    """Images (n, h, w) laid out row by row, nx to a row (image k at row k // nx), 1 px white gaps."""
    n, h, w = images.shape
    ny = -(-n // nx)
    mosaic = np.ones((ny * (h + 2), nx * (w + 2)), np.float32)
    for k, image in enumerate(images.astype(np.float32)):
        y, x = divmod(k, nx)
        mosaic[y * (h + 2) + 1 : y * (h + 2) + 1 + h, x * (w + 2) + 1 : x * (w + 2) + 1 + w] = image
    return mosaic


def prototype_grid(prototypes: np.ndarray, grid: tuple[int, int], path: Path) -> Path:
    """Decoded prototypes (K, 32, 32) tiled as the map: what each DESOM-1 node has learnt a source looks like."""
    nx, ny = grid
    fig, ax = plt.subplots(figsize=(10, 10 * ny / nx))
    ax.imshow(tile(prototypes, nx), cmap="gray_r", interpolation="nearest")
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
    return _grid_image(histovector, grid, title, "sources", path)


def umatrix(distances: np.ndarray, grid: tuple[int, int], title: str, path: Path) -> Path:
    """Per node, the mean latent distance to its grid neighbours: ridges are borders between clusters."""
    return _grid_image(distances, grid, title, "mean distance to neighbours", path, cmap="bone_r")


def hit_map(hits: np.ndarray, grid: tuple[int, int], title: str, path: Path) -> Path:
    """Members per node; empty nodes are left white so unused parts of the map stand out."""
    return _grid_image(np.ma.masked_equal(hits, 0), grid, title, "members", path, cmap="viridis")


def _grid_image(values: np.ndarray, grid: tuple[int, int], title: str, colour_label: str, path: Path,
                cmap: str = "viridis") -> Path:
    """One value per map node (k = y * nx + x) drawn on the grid, y up."""
    colours = plt.get_cmap(cmap).with_extremes(bad="white")
    fig, ax = plt.subplots(figsize=(5, 5))
    image = ax.imshow(np.ma.asarray(values).reshape(grid[1], grid[0]), cmap=colours, origin="lower")
    fig.colorbar(image, ax=ax, shrink=0.8, label=colour_label)
    for axis in (ax.xaxis, ax.yaxis):
        axis.set_major_locator(MaxNLocator(integer=True))
    ax.set(xlabel="x", ylabel="y")
    ax.set_title(title, fontsize=9)
    return _save(fig, path)


def cutout_mosaic(cutouts: np.ndarray, path: Path, nx: int = 4) -> Path:
    """A few of an exposure's cutouts (n, 32, 32) as one small PNG (no figure: fast enough for galleries)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    plt.imsave(path, tile(cutouts, nx), cmap="gray_r", vmin=0.0, vmax=1.0)
    return path


def ccd_preview(image: np.ndarray, path: Path, size: int = 256) -> Path:
    """One CCD block-averaged down to about `size` px on its long side.

    Stretched from sky - 2 sigma to sky + 30 sigma (robust sky and sigma): faint sources and background
    structure stay visible however bright the brightest star or bleed trail is.
    """
    factor = max(1, -(-max(image.shape) // size))
    h, w = image.shape[0] // factor * factor, image.shape[1] // factor * factor
    small = image[:h, :w].reshape(h // factor, factor, w // factor, factor).mean(axis=(1, 3))
    sky = float(np.median(small))
    sigma = max(1.4826 * float(np.median(np.abs(small - sky))), 1e-6)
    path.parent.mkdir(parents=True, exist_ok=True)
    plt.imsave(path, small, cmap="gray", vmin=sky - 2 * sigma, vmax=sky + 30 * sigma, origin="lower")
    return path


def _save(fig: plt.Figure, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110, bbox_inches="tight")
    plt.close(fig)
    return path
