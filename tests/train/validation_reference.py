"""An independent re-implementation of the held-out crops' scoring, and test images and stand-in
networks for the validation tests.

Plain NumPy, SciPy, PIL and scikit-image, written from the description in
`jaxsr.train.validation` rather than from its code: which GT grid cells are picked, how a network
output becomes what is scored, and the PSNR and bias of one crop. Only the protocols' pair
construction (`protocols.make_pair`, the definition of a protocol) is shared with the code.
"""

import numpy as np
from PIL import Image
from scipy import ndimage
from skimage.metrics import peak_signal_noise_ratio

LUMA = (0.299, 0.587, 0.114)


def windows(gt: np.ndarray, cell: int, count: int, border: int,
            dark: float = 0.05) -> list[tuple[int, int]]:
  """(top, left) of the `count` cells of a top-left-anchored grid whose insides (`border` pixels
  off each side) have the most Sobel energy, among those brighter than `dark` on average
  (darker cells only after all brighter ones; flat cells never)."""
  cells = [(mean <= dark, -energy, top, left)
           for top, left, mean, energy in _cells(gt, cell, border) if energy > 0]
  return [(top, left) for _, _, top, left in sorted(cells)[:count]]


def _cells(gt: np.ndarray, cell: int, border: int):
  """(top, left, mean, Sobel energy) of each cell's inside, in raster order."""
  for i in range(gt.shape[0] // cell):
    for j in range(gt.shape[1] // cell):
      inside = np.asarray(gt, np.float64)[i * cell + border:(i + 1) * cell - border,
                                          j * cell + border:(j + 1) * cell - border]
      energy = 0.0
      for c in range(inside.shape[2]):  # scipy's 'reflect' is half-sample symmetric.
        energy += np.mean(ndimage.sobel(inside[..., c], axis=0, mode="reflect") ** 2
                          + ndimage.sobel(inside[..., c], axis=1, mode="reflect") ** 2)
      yield i * cell, j * cell, inside.mean(), energy


def strata_windows(gt: np.ndarray, cell: int, count: int, border: int,
                   dark: float = 0.05) -> list[tuple[int, int]]:
  """(top, left) of one cell per intensity stratum: the non-flat cells brighter than `dark`, in
  order of their insides' mean (ties: raster order), dealt into `count` runs whose lengths differ
  by at most one (longer runs first), and from each run the cell with the most Sobel energy (ties:
  the earlier in that order)."""
  cells = sorted((mean, top, left, energy) for top, left, mean, energy in _cells(gt, cell, border)
                 if energy > 0 and mean > dark)
  runs = min(count, len(cells))
  picked, start = [], 0
  for r in range(runs):
    length = len(cells) // runs + (1 if r < len(cells) % runs else 0)
    run = cells[start:start + length]
    start += length
    best = max(range(len(run)), key=lambda k: (run[k][3], -k))
    picked.append((run[best][1], run[best][2]))
  return picked


def pil(image: np.ndarray, size: tuple[int, int], method) -> np.ndarray:
  """Each channel resized to (height, width) by PIL in 'F' mode."""
  return np.stack([np.asarray(Image.fromarray(np.ascontiguousarray(image[..., c], np.float32))
                              .resize((size[1], size[0]), method))
                   for c in range(image.shape[2])], axis=-1)


def as_scored(sr: np.ndarray, size: tuple[int, int], gray: bool) -> np.ndarray:
  """A network output as jaxsr.evaluate scores it: clipped, luma for gray, Lanczos to `size`,
  8-bit levels."""
  sr = np.clip(np.asarray(sr, np.float32), 0, 1)
  if gray:
    luma = sr[..., 0] * LUMA[0] + sr[..., 1] * LUMA[1] + sr[..., 2] * LUMA[2]
    sr = np.repeat(luma[..., None], 3, axis=-1)
  if sr.shape[:2] != tuple(size):
    sr = pil(sr, size, Image.Resampling.LANCZOS)
  return np.round(np.clip(sr, 0, 1) * 255) / 255


def psnr_and_bias(sr: np.ndarray, gt: np.ndarray, border: int) -> tuple[float, float]:
  """scikit-image PSNR and mean(SR) - mean(GT) in 8-bit levels, `border` pixels cropped."""
  sr = np.asarray(sr, np.float64)[border:-border, border:-border]
  gt = np.asarray(gt, np.float64)[border:-border, border:-border]
  return (float(peak_signal_noise_ratio(gt, sr, data_range=1.0)),
          float((sr.mean() - gt.mean()) * 255))


# ---- test images and a stand-in network.


def texture(rng, size, channels, low=0.15, high=0.8):
  """Smooth random texture in [low, high] (8-bit levels), so nothing clips when offset."""
  small = rng.uniform(low, high, (size // 8, size // 8, channels)).astype(np.float32)
  return np.clip(pil(small, (size, size), Image.Resampling.BICUBIC), low, high)


def save(folder, name, image):
  """Saves a float [H, W, 1 or 3] image as an 8-bit PNG; returns the float image read back."""
  folder.mkdir(parents=True, exist_ok=True)
  levels = np.round(np.clip(image, 0, 1) * 255).astype(np.uint8)
  Image.fromarray(levels[..., 0] if levels.shape[2] == 1 else levels).save(folder / name)
  return np.repeat(levels, 3 // levels.shape[2], axis=-1).astype(np.float32) / 255


def bicubic_x4_plus(offset_levels):
  """A stand-in x4 network: PIL bicubic x4 of each LR crop, plus a constant."""
  def forward(lq):
    return np.stack([pil(x, (4 * x.shape[0], 4 * x.shape[1]), Image.Resampling.BICUBIC)
                     for x in lq]) + offset_levels / 255
  return forward
