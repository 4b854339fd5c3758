"""Full-reference image-quality metrics for super-resolution: SR output vs ground truth (GT).

All functions take HxWxC float images in [0, 1] (NumPy or JAX arrays) and return Python floats.

* `psnr`, `ssim`: dm-pix. SSIM uses a Gaussian window (11 taps, sigma 1.5), K1 = 0.01, K2 = 0.03,
  the biased (population) variance and the "valid" part of the map, averaged over channels, as
  Wang et al. 2004 and BasicSR do. `data_range` is the peak value (1.0 for [0, 1] images).
* `hfen`: high-frequency error norm (Ravishankar & Bresler 2011): ||LoG(sr) - LoG(gt)||_2 /
  ||LoG(gt)||_2 with a Laplacian-of-Gaussian of sigma 1.5. Lower is better; 0 = identical edges.
* `gradient_energy_ratio`: mean squared Sobel gradient magnitude of SR over that of GT. Below 1 the
  SR is blurrier than GT; above 1 it has more (possibly invented) texture than GT.
* `texture_ratio`: the gradient-energy ratio inside GT's texture areas only: the half of the image
  (brighter than `dark_threshold`) with the least coarse-scale structure, i.e. the lowest Sobel
  gradient energy of GT blurred with a Gaussian of sigma 4 (see `texture_areas`). The whole-image
  ratio is dominated by the strong edges of ribs, organs and the collimator; lung texture lives in
  these areas, so a model can meet GT's whole-image gradient energy with sharp edges while
  smoothing the texture away (the demo's fine-tuned x4plus on RG1: whole 0.90, texture areas 0.39).
* `mean_bias`: mean(SR) - mean(GT) in levels of 255, signed: a global brightness drift, which PSNR
  punishes without saying so (+8 levels alone caps PSNR at about 30 dB). Best at 0.
* `vessel_scores`: for fundus images, Frangi vesselness of the green channel, SR vs GT: Pearson
  correlation and the F1 score of the maps thresholded at GT's `quantile` (see the function).
* LPIPS lives in `lpips.py`; `ImageMetrics` gathers everything a protocol asks for.

The filters for HFEN and gradients are separable correlations in JAX with the border mode that
scipy.ndimage calls 'reflect' (half-sample symmetric), so they agree with scipy to float32
precision.
"""

from __future__ import annotations

import dataclasses
import functools
from typing import Callable, Optional

import dm_pix
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np

from jaxsr.evaluate.lpips import LPIPSMetric

# How each metric reads: 'higher' / 'lower' is better, 'one' = best at 1 (a ratio to GT), 'zero' =
# best at 0 (a signed error).
METRIC_DIRECTIONS = {
    "psnr": "higher",
    "ssim": "higher",
    "lpips": "lower",
    "hfen": "lower",
    "grad_ratio": "one",
    "texture_ratio": "one",
    "bias": "zero",
    "vessel_r": "higher",
    "vessel_f1": "higher",
}


def distance_from_best(value: float, direction: str) -> float:
  """How far `value` is from the best a metric of `direction` can be: smaller is better, whatever
  the direction (so one comparison ranks models on any metric)."""
  return {"higher": -value, "lower": value, "one": abs(value - 1.0),
          "zero": abs(value)}[direction]


def rgb_to_y(image) -> jax.Array:
  """BT.601 luma as MATLAB's rgb2ycbcr: Y = (16 + 65.481 R + 128.553 G + 24.966 B) / 255.

  Input RGB in [0, 1]; output HxWx1 in [16/255, 235/255] (the convention of SR papers' "Y PSNR").
  """
  image = jnp.asarray(image, jnp.float32)
  weights = jnp.array([65.481, 128.553, 24.966], jnp.float32) / 255.0
  return (image @ weights + 16.0 / 255.0)[..., None]


def crop_border(image, border: int):
  """Drops `border` pixels on every side (SR papers skip the borders the network pads)."""
  if border <= 0:
    return image
  if 2 * border >= min(image.shape[0], image.shape[1]):
    raise ValueError(f"crop_border {border} leaves nothing of a {image.shape[:2]} image")
  return image[border:-border, border:-border]


def psnr(sr, gt, data_range: float = 1.0) -> float:
  """Peak signal-to-noise ratio in dB: 10 log10(data_range^2 / MSE); inf for equal images."""
  sr, gt = _check_pair(sr, gt)
  return float(dm_pix.psnr(sr / data_range, gt / data_range))


# dm-pix's SSIM runs eagerly; jitted it is several times faster on CPU.
_ssim = jax.jit(dm_pix.ssim, static_argnames=("max_val", "filter_size", "filter_sigma"))


def ssim(sr, gt, data_range: float = 1.0, window: int = 11, sigma: float = 1.5) -> float:
  """Mean SSIM with a Gaussian window (valid region, channels averaged)."""
  sr, gt = _check_pair(sr, gt)
  return float(_ssim(sr, gt, max_val=data_range, filter_size=window, filter_sigma=sigma))


def _check_pair(sr, gt):
  sr = jnp.asarray(sr, jnp.float32)
  gt = jnp.asarray(gt, jnp.float32)
  if sr.shape != gt.shape or sr.ndim != 3:
    raise ValueError(f"Expected two HxWxC images of equal shape, got {sr.shape} and {gt.shape}")
  return sr, gt


def _separable_correlate(image: jax.Array, kernel_rows: np.ndarray,
                         kernel_cols: np.ndarray) -> jax.Array:
  """Correlates each channel of HxWxC `image` with kernel_rows (along H) then kernel_cols (W).

  Borders are extended by half-sample symmetry (scipy.ndimage's 'reflect', NumPy's 'symmetric').
  The kernels are short (<= 13 taps), so shifted sums are as fast as a convolution call and exact.
  """
  height, width = image.shape[:2]
  pad_rows, pad_cols = len(kernel_rows) // 2, len(kernel_cols) // 2
  padded = jnp.pad(image, ((pad_rows, pad_rows), (pad_cols, pad_cols), (0, 0)), mode="symmetric")
  rows = sum(float(k) * padded[i:i + height] for i, k in enumerate(kernel_rows))
  return sum(float(k) * rows[:, j:j + width] for j, k in enumerate(kernel_cols))


def _gaussian_kernels(sigma: float, truncate: float = 4.0) -> tuple[np.ndarray, np.ndarray]:
  """Sampled Gaussian (normalised to sum 1) and its second derivative, radius int(truncate*s+.5)."""
  radius = int(truncate * sigma + 0.5)
  x = np.arange(-radius, radius + 1, dtype=np.float64)
  gaussian = np.exp(-0.5 * (x / sigma) ** 2)
  gaussian /= gaussian.sum()
  # d^2/dx^2 exp(-x^2 / 2s^2) = (x^2 / s^4 - 1 / s^2) exp(-x^2 / 2s^2).
  second_derivative = gaussian * (x**2 / sigma**4 - 1.0 / sigma**2)
  return gaussian, second_derivative


@functools.partial(jax.jit, static_argnames="sigma")
def laplacian_of_gaussian(image, sigma: float = 1.5) -> jax.Array:
  """LoG of each channel of an HxWxC image: d2/dy2 + d2/dx2 of its Gaussian smoothing."""
  image = jnp.asarray(image, jnp.float32)
  gaussian, second = _gaussian_kernels(sigma)
  return (_separable_correlate(image, second, gaussian)
          + _separable_correlate(image, gaussian, second))


def hfen(sr, gt, sigma: float = 1.5) -> float:
  """||LoG(sr) - LoG(gt)||_2 / ||LoG(gt)||_2 over all pixels and channels."""
  sr, gt = _check_pair(sr, gt)
  log_sr = laplacian_of_gaussian(sr, sigma)
  log_gt = laplacian_of_gaussian(gt, sigma)
  return float(jnp.linalg.norm(log_sr - log_gt) / jnp.linalg.norm(log_gt))


_SOBEL_DERIVATIVE = np.array([-1.0, 0.0, 1.0])
_SOBEL_SMOOTHING = np.array([1.0, 2.0, 1.0])


@jax.jit
def sobel_gradient_energy_map(image) -> jax.Array:
  """Squared Sobel gradient magnitude gy^2 + gx^2 of each channel of an HxWxC image."""
  image = jnp.asarray(image, jnp.float32)
  grad_y = _separable_correlate(image, _SOBEL_DERIVATIVE, _SOBEL_SMOOTHING)
  grad_x = _separable_correlate(image, _SOBEL_SMOOTHING, _SOBEL_DERIVATIVE)
  return grad_y**2 + grad_x**2


def gradient_energy(image) -> float:
  """Mean squared Sobel gradient magnitude over pixels and channels."""
  return float(jnp.mean(sobel_gradient_energy_map(image)))


def gradient_energy_ratio(sr, gt) -> float:
  """gradient_energy(sr) / gradient_energy(gt): < 1 blurrier than GT, > 1 added texture."""
  sr, gt = _check_pair(sr, gt)
  return gradient_energy(sr) / gradient_energy(gt)


@functools.partial(jax.jit, static_argnames="sigma")
def _coarse_gradient_energy(gray, sigma: float) -> jax.Array:
  gaussian, _ = _gaussian_kernels(sigma)
  return sobel_gradient_energy_map(_separable_correlate(gray, gaussian, gaussian))[..., 0]


def texture_areas(gt, coarse_sigma: float = 4.0, fraction: float = 0.5,
                  dark_threshold: float = 0.05) -> np.ndarray:
  """HxW mask of GT's texture areas: of the pixels whose channel mean exceeds `dark_threshold`
  (background and collimator black excluded), the `fraction` with the lowest coarse-scale gradient
  energy (Sobel of the channel mean blurred with a Gaussian of `coarse_sigma`, borders reflected
  as everywhere here). The blur makes the choice depend on the structure around a pixel (an edge
  within about 2 sigma), not on the fine texture that the ratio then measures."""
  gt = jnp.asarray(gt, jnp.float32)
  if gt.ndim != 3:
    raise ValueError(f"Expected an HxWxC image, got shape {gt.shape}")
  gray = jnp.mean(gt, axis=-1, keepdims=True)
  coarse = np.asarray(_coarse_gradient_energy(gray, float(coarse_sigma)))
  foreground = np.asarray(gray[..., 0]) > dark_threshold
  if not foreground.any():
    raise ValueError(f"GT has no pixel brighter than {dark_threshold}: no texture areas")
  return foreground & (coarse <= np.quantile(coarse[foreground], fraction))


def texture_ratio(sr, gt, areas: np.ndarray) -> float:
  """Gradient energy of SR over GT's, both averaged over `areas` (an HxW mask, e.g.
  `texture_areas(gt)`) and channels: < 1 smoother than GT's texture, > 1 more texture."""
  sr, gt = _check_pair(sr, gt)
  if np.shape(areas) != gt.shape[:2]:
    raise ValueError(f"Texture areas are {np.shape(areas)}, the image {gt.shape[:2]}")
  weights = jnp.asarray(areas, jnp.float32)[..., None]
  return float(jnp.sum(sobel_gradient_energy_map(sr) * weights)
               / jnp.sum(sobel_gradient_energy_map(gt) * weights))


def mean_bias(sr, gt) -> float:
  """mean(sr) - mean(gt), in levels of 255 (images in [0, 1])."""
  sr, gt = _check_pair(sr, gt)
  return float((jnp.mean(jnp.asarray(sr, jnp.float32)) - jnp.mean(jnp.asarray(gt, jnp.float32)))
               * 255.0)


def frangi_gamma(green: np.ndarray, sigma: float) -> float:
  """The structureness constant skimage.filters.frangi picks for `green` when given none.

  skimage sets gamma = max over pixels of ||Hessian eigenvalues||_2 / 2 at the first (smallest)
  sigma and keeps it for every scale. Filtering SR and GT each with its own gamma would make the
  maps incomparable (a noisier SR gets a larger gamma, hence weaker vessels), so both are filtered
  with GT's.
  """
  from skimage.feature import hessian_matrix, hessian_matrix_eigvals

  eigenvalues = hessian_matrix_eigvals(
      hessian_matrix(np.asarray(green, np.float64), sigma, mode="reflect",
                     use_gaussian_derivatives=True))
  norm = float(np.sqrt((eigenvalues**2).sum(0)).max())
  return norm / 2 if norm > 0 else 1.0  # skimage's fallback for a flat image.


def vesselness(green: np.ndarray, sigmas, gamma: float) -> np.ndarray:
  """Frangi vesselness of dark ridges (vessels in a fundus green channel), max over `sigmas`."""
  from skimage.filters import frangi

  return frangi(np.asarray(green, np.float64), sigmas=sigmas, gamma=gamma, black_ridges=True,
                mode="reflect")


def field_of_view(gt: np.ndarray, threshold: float, erosion: int) -> np.ndarray:
  """Fundus field of view: pixels whose brightest channel exceeds `threshold`, eroded.

  The erosion (with the outside counted as background) drops the bright rim of the fundus disc and
  the image borders, where Frangi answers to the edge rather than to vessels.
  """
  from scipy import ndimage

  mask = np.asarray(gt).max(axis=-1) > threshold
  if erosion > 0:
    mask = ndimage.binary_erosion(mask, iterations=erosion, border_value=0)
  return mask


@dataclasses.dataclass(frozen=True)
class VesselReference:
  """What the vessel scores need from GT, computed once per image and reused for every model."""

  sigmas: tuple[float, ...]
  gamma: float
  vesselness: np.ndarray  # GT's Frangi map inside the field of view (1-D, masked).
  mask: np.ndarray  # Field of view, HxW bool.
  threshold: float  # GT's vesselness quantile: the binarisation threshold of both maps.

  @classmethod
  def from_ground_truth(cls, gt, sigmas=(1.0, 2.0, 3.0, 4.0), quantile: float = 0.9,
                        fov_threshold: float = 0.1, fov_erosion: int = 8) -> "VesselReference":
    gt = _as_rgb_float64(gt)
    sigmas = tuple(float(s) for s in sigmas)
    gamma = frangi_gamma(gt[..., 1], sigmas[0])
    mask = field_of_view(gt, fov_threshold, fov_erosion)
    values = vesselness(gt[..., 1], sigmas, gamma)[mask]
    threshold = float(np.quantile(values, quantile)) if values.size else float("nan")
    return cls(sigmas, gamma, values, mask, threshold)

  def score(self, sr) -> dict[str, float]:
    sr = _as_rgb_float64(sr)
    if sr.shape[:2] != self.mask.shape:
      raise ValueError(f"SR is {sr.shape[:2]}, GT was {self.mask.shape}")
    if self.vesselness.size < 2:
      return {"vessel_r": float("nan"), "vessel_f1": float("nan")}
    sr_values = vesselness(sr[..., 1], self.sigmas, self.gamma)[self.mask]
    gt_vessels = self.vesselness > self.threshold
    sr_vessels = sr_values > self.threshold
    true_positives = np.sum(gt_vessels & sr_vessels)
    errors = np.sum(gt_vessels ^ sr_vessels)  # FP + FN
    f1 = 2 * true_positives / (2 * true_positives + errors) if true_positives + errors else 1.0
    return {"vessel_r": _pearson(sr_values, self.vesselness), "vessel_f1": float(f1)}


def vessel_scores(sr, gt, sigmas=(1.0, 2.0, 3.0, 4.0), quantile: float = 0.9,
                  fov_threshold: float = 0.1, fov_erosion: int = 8) -> dict[str, float]:
  """Fine-vessel preservation of a fundus SR image, from Frangi maps of the green channels.

  GT's map is skimage.filters.frangi(gt_green, sigmas) as is; SR's uses the same gamma (see
  `frangi_gamma`). The maps are compared inside GT's field of view (`field_of_view`):

  * `vessel_r`: Pearson correlation of the SR and GT vesselness maps.
  * `vessel_f1`: both maps are binarised with one threshold, the `quantile` of GT's vesselness in
    the field of view (0.9: the top 10 %, about the vessel fraction of a fundus image), and scored
    F1 = 2 TP / (2 TP + FP + FN) with GT's map as the truth. A blurred SR has weaker responses and
    loses thin vessels (FN); invented texture shows up as FP.

  Needs scikit-image. Returns NaN for both when the field of view is (almost) empty.
  """
  return VesselReference.from_ground_truth(gt, sigmas, quantile, fov_threshold,
                                           fov_erosion).score(sr)


def _as_rgb_float64(image) -> np.ndarray:
  image = np.asarray(image, np.float64)
  if image.ndim != 3 or image.shape[-1] != 3:
    raise ValueError(f"Expected an HxWx3 image, got shape {image.shape}")
  return image


def _pearson(a: np.ndarray, b: np.ndarray) -> float:
  a = a - a.mean()
  b = b - b.mean()
  denominator = np.sqrt(np.sum(a * a) * np.sum(b * b))
  return float(np.sum(a * b) / denominator) if denominator > 0 else float("nan")


class ImageMetrics:
  """Every metric a protocol's `metrics` ConfigDict asks for, on one (SR, GT) pair.

  Colour space and border crop apply to PSNR, SSIM, HFEN and the gradient ratios; LPIPS and the
  vessel scores always see the cropped RGB image (LPIPS is defined on RGB; vessels are read from
  the green channel).
  """

  def __init__(self, config: ml_collections.ConfigDict):
    self.config = config
    self._lpips: Optional[object] = None
    if config.lpips_net:
      self._lpips = LPIPSMetric(config.lpips_net)

  @property
  def names(self) -> list[str]:
    names = ["psnr", "ssim", "hfen", "grad_ratio", "bias"]
    if self.config.get("texture", False):
      names.insert(4, "texture_ratio")
    if self._lpips is not None:
      names.insert(2, "lpips")
    if self.config.vessel:
      names += ["vessel_r", "vessel_f1"]
    return names

  def against(self, gt: np.ndarray) -> Callable[[np.ndarray], dict[str, float]]:
    """Returns `score(sr) -> {metric: value}` for this GT; GT-only work is done once, here."""
    c = self.config
    gt_rgb = crop_border(np.asarray(gt, np.float32), c.crop_border)
    gt_m = rgb_to_y(gt_rgb) if c.color_space == "y" else jnp.asarray(gt_rgb)
    areas = texture_areas(gt_m) if c.get("texture", False) else None
    vessels = None
    if c.vessel:
      vessels = VesselReference.from_ground_truth(gt_rgb, tuple(c.vessel_sigmas),
                                                  c.vessel_quantile, c.vessel_fov_threshold,
                                                  c.vessel_fov_erosion)

    def score(sr: np.ndarray) -> dict[str, float]:
      if np.shape(sr) != np.shape(gt):
        raise ValueError(f"SR has shape {np.shape(sr)}, GT {np.shape(gt)}")
      sr_rgb = crop_border(np.asarray(sr, np.float32), c.crop_border)
      sr_m = rgb_to_y(sr_rgb) if c.color_space == "y" else jnp.asarray(sr_rgb)
      values = {
          "psnr": psnr(sr_m, gt_m, c.data_range),
          "ssim": ssim(sr_m, gt_m, c.data_range, c.ssim_window, c.ssim_sigma),
          "hfen": hfen(sr_m, gt_m, c.hfen_sigma),
          "grad_ratio": gradient_energy_ratio(sr_m, gt_m),
          "bias": mean_bias(sr_m, gt_m),
      }
      if areas is not None:
        values["texture_ratio"] = texture_ratio(sr_m, gt_m, areas)
      if self._lpips is not None:
        values["lpips"] = self._lpips(sr_rgb, gt_rgb)
      if vessels is not None:
        values.update(vessels.score(sr_rgb))
      return {name: values[name] for name in self.names}

    return score

  def __call__(self, sr: np.ndarray, gt: np.ndarray) -> dict[str, float]:
    return self.against(gt)(sr)
