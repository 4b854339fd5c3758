"""Comparison figures in the style of the paper's Fig. 5-8: LR | model 1 | model 2 | ... | GT.

Each image takes two rows: the whole picture with the magnified region outlined, and the region
itself magnified. The region is given, or picked automatically where GT has the most local
gradient energy (fine vessels in a fundus image, texture in a radiograph), avoiding dark
background so that the black surround of a fundus or the collimator edge of a radiograph is not
what gets magnified.

Drawn with matplotlib's object API (`matplotlib.figure.Figure`, Agg canvas): no pyplot, so no
global backend state and nothing ever opens a window.
"""

from __future__ import annotations

import dataclasses
from typing import Mapping, Optional, Sequence

import numpy as np

from jaxsr.evaluate.metrics import sobel_gradient_energy_map

# A region in GT pixels: (top, left, size) of a square.
Region = tuple[int, int, int]


@dataclasses.dataclass
class ComparisonRow:
  """One image of a comparison figure: its LR input, every model's output, and GT."""

  name: str
  lr: np.ndarray
  outputs: Mapping[str, np.ndarray]  # model name -> SR image, GT-sized; figure columns in order.
  gt: np.ndarray
  region: Optional[Region] = None  # None: picked by `pick_region`.
  captions: Mapping[str, str] = dataclasses.field(default_factory=dict)  # model -> e.g. "32.1 dB"


def default_region_size(gt_shape: Sequence[int]) -> int:
  return max(8, min(gt_shape[0], gt_shape[1]) // 6)


def pick_region(gt: np.ndarray, size: int, dark_threshold: float = 0.05, multiple_of: int = 1,
                cap_quantile: float = 0.95) -> Region:
  """The size x size square of GT with the most detail: largest mean (capped) Sobel energy.

  The per-pixel squared gradient is capped at its `cap_quantile` over the image first, so a square
  full of moderate detail (vessels, lung texture, trabecular bone) beats one crossed by a single
  strong edge (the fundus rim, a collimator border, a burnt-in letter). Squares containing a pixel
  darker than `dark_threshold` (mean over channels) are skipped unless every square does. `top`,
  `left` and `size` are multiples of `multiple_of` (the scale), so the region covers whole LR
  pixels.
  """
  gt = np.asarray(gt, np.float32)
  height, width = gt.shape[:2]
  size = min(size, height, width)
  size = max(multiple_of, size - size % multiple_of)
  energy = np.asarray(sobel_gradient_energy_map(gt), np.float64).mean(axis=-1)
  energy = np.minimum(energy, np.quantile(energy, cap_quantile))
  dark = (gt.mean(axis=-1) < dark_threshold).astype(np.float64)
  tops = np.arange(0, height - size + 1, multiple_of)
  lefts = np.arange(0, width - size + 1, multiple_of)
  energy_sums = _window_sums(energy, size)[np.ix_(tops, lefts)]
  bright = _window_sums(dark, size)[np.ix_(tops, lefts)] < 0.5
  if bright.any():
    energy_sums = np.where(bright, energy_sums, -np.inf)
  i, j = np.unravel_index(np.argmax(energy_sums), energy_sums.shape)
  return int(tops[i]), int(lefts[j]), int(size)


def _window_sums(values: np.ndarray, size: int) -> np.ndarray:
  """Sum over every size x size window (integral image); result[i, j] is the window at (i, j)."""
  integral = np.pad(values, ((1, 0), (1, 0))).cumsum(axis=0).cumsum(axis=1)
  return (integral[size:, size:] - integral[:-size, size:] - integral[size:, :-size]
          + integral[:-size, :-size])


def comparison_figure(rows: Sequence[ComparisonRow], path: str, scale: int, inset_size: int = 0,
                      dark_threshold: float = 0.05, panel_inches: float = 2.6,
                      dpi: int = 150) -> list[Region]:
  """Draws the figure for `rows` into the PNG `path`; returns the region used for each row.

  Args:
    rows: the images, top to bottom; columns are LR, each entry of `outputs`, GT.
    path: output PNG file.
    scale: LR -> GT factor (places the region on the LR image).
    inset_size: side of auto-picked regions in GT pixels; 0 = min(H, W) // 6.
    dark_threshold: see `pick_region`.
    panel_inches: width and height of one panel.
    dpi: resolution of the PNG.
  """
  from matplotlib.figure import Figure
  from matplotlib.patches import Rectangle

  if not rows:
    raise ValueError("A comparison figure needs at least one image")
  n_columns = 2 + len(rows[0].outputs)
  figure = Figure(figsize=(panel_inches * n_columns, 2 * panel_inches * len(rows)), dpi=dpi)
  axes = figure.subplots(2 * len(rows), n_columns, squeeze=False)
  regions = []
  for r, row in enumerate(rows):
    height, width = row.gt.shape[:2]
    region = row.region or pick_region(
        row.gt, inset_size or default_region_size(row.gt.shape), dark_threshold, scale)
    regions.append(region)
    top, left, size = region
    panels = [("LR", row.lr, True)] + [(name, image, False) for name, image in row.outputs.items()]
    panels.append(("GT", row.gt, False))
    for c, (label, image, is_lr) in enumerate(panels):
      whole, zoom = axes[2 * r, c], axes[2 * r + 1, c]
      image = np.clip(np.asarray(image, np.float32), 0.0, 1.0)
      # LR is drawn over GT's extent, pixel-replicated, so one rectangle fits every panel.
      whole.imshow(image, extent=(0, width, height, 0),
                   interpolation="nearest" if is_lr else "antialiased")
      whole.add_patch(Rectangle((left, top), size, size, fill=False, edgecolor="red",
                                linewidth=1.2))
      if is_lr:
        crop = image[top // scale:(top + size) // scale, left // scale:(left + size) // scale]
      else:
        crop = image[top:top + size, left:left + size]
      zoom.imshow(crop, extent=(0, size, size, 0), interpolation="nearest")
      caption = row.captions.get(label, "")
      whole.set_title(label + (f"\n{caption}" if caption else ""), fontsize=8)
      if c == 0:
        whole.set_ylabel(row.name, fontsize=8)
      for axis in (whole, zoom):
        axis.set_xticks([])
        axis.set_yticks([])
  figure.tight_layout()
  figure.savefig(path)
  return regions
