"""Metrics against independent implementations: scikit-image, SciPy filters, NumPy formulas."""

import ml_collections
import numpy as np
import pytest
from scipy import ndimage
from skimage import color, filters
from skimage import metrics as skmetrics
from skimage.feature import hessian_matrix, hessian_matrix_eigvals

from jaxsr.evaluate import metrics


def _pair(height=48, width=40, noise=0.05, seed=0):
  rng = np.random.default_rng(seed)
  gt = ndimage.gaussian_filter(rng.random((height, width, 3)), (1.5, 1.5, 0))
  gt = (gt - gt.min()) / (gt.max() - gt.min())
  sr = np.clip(gt + noise * rng.standard_normal(gt.shape), 0, 1)
  return sr.astype(np.float32), gt.astype(np.float32)


def test_psnr_matches_skimage():
  sr, gt = _pair()
  expected = skmetrics.peak_signal_noise_ratio(gt.astype(np.float64), sr.astype(np.float64),
                                               data_range=1.0)
  assert metrics.psnr(sr, gt) == pytest.approx(expected, abs=1e-4)
  expected_255 = skmetrics.peak_signal_noise_ratio(gt * 255.0, sr * 255.0, data_range=255.0)
  assert metrics.psnr(sr * 255, gt * 255, data_range=255.0) == pytest.approx(expected_255, abs=1e-3)
  assert metrics.psnr(gt, gt) == np.inf


@pytest.mark.parametrize("noise", [0.02, 0.2])
def test_ssim_matches_skimage_gaussian_window(noise):
  sr, gt = _pair(noise=noise, seed=1)
  # Wang et al.'s settings: Gaussian window sigma 1.5 (11 taps), population covariance; skimage
  # crops the (win_size - 1) / 2 border, i.e. keeps the same "valid" region dm-pix computes.
  expected = skmetrics.structural_similarity(
      gt.astype(np.float64), sr.astype(np.float64), data_range=1.0, channel_axis=-1,
      gaussian_weights=True, sigma=1.5, use_sample_covariance=False)
  assert metrics.ssim(sr, gt) == pytest.approx(expected, abs=2e-5)


def test_y_channel_is_matlab_bt601():
  _, gt = _pair()
  expected = color.rgb2ycbcr(gt.astype(np.float64))[..., 0] / 255.0  # Y in [16, 235] / 255.
  np.testing.assert_allclose(np.asarray(metrics.rgb_to_y(gt))[..., 0], expected, atol=1e-5)


def test_hfen_matches_scipy_gaussian_laplace():
  sr, gt = _pair(seed=2)

  def log(image):
    return np.stack([ndimage.gaussian_laplace(image[..., c].astype(np.float64), 1.5)
                     for c in range(3)], axis=-1)

  expected = np.linalg.norm(log(sr) - log(gt)) / np.linalg.norm(log(gt))
  assert metrics.hfen(sr, gt) == pytest.approx(expected, rel=1e-4)
  np.testing.assert_allclose(np.asarray(metrics.laplacian_of_gaussian(gt, 1.5)), log(gt),
                             atol=1e-5)
  assert metrics.hfen(gt, gt) == 0.0


def test_gradient_energy_ratio_matches_scipy_sobel():
  sr, gt = _pair(seed=3)

  def energy(image):
    # Per channel: on a 3-D array scipy's sobel would also smooth across the channel axis.
    channels = [image[..., c].astype(np.float64) for c in range(image.shape[-1])]
    return np.mean([ndimage.sobel(c, axis=0) ** 2 + ndimage.sobel(c, axis=1) ** 2
                    for c in channels])

  assert metrics.gradient_energy(gt) == pytest.approx(energy(gt), rel=1e-5)
  assert metrics.gradient_energy_ratio(sr, gt) == pytest.approx(energy(sr) / energy(gt), rel=1e-5)
  blurred = ndimage.gaussian_filter(gt, (1, 1, 0))
  assert metrics.gradient_energy_ratio(blurred, gt) < 1.0 < metrics.gradient_energy_ratio(sr, gt)


def _synthetic_fundus(size=96, seed=0):
  """A bright disc on black with dark curved 'vessels' of several widths and a little noise."""
  rng = np.random.default_rng(seed)
  y, x = np.mgrid[:size, :size].astype(np.float64)
  centre = size / 2
  disc = (np.hypot(y - centre, x - centre) < size * 0.45).astype(np.float64)
  vessels = np.zeros((size, size))
  for offset, width in [(-20, 1.0), (-5, 1.8), (10, 2.5), (25, 1.2)]:
    path = centre + offset + 6 * np.sin(x / 9.0 + offset)
    vessels = np.maximum(vessels, np.exp(-0.5 * ((y - path) / width) ** 2))
  green = disc * (0.6 - 0.35 * vessels) + 0.01 * rng.standard_normal((size, size))
  return np.clip(np.stack([disc * 0.9, green, disc * 0.3], axis=-1), 0, 1)


def _reference_vessel_scores(sr, gt, sigmas, quantile, fov_threshold, erosion):
  """skimage's Frangi + NumPy: GT map with skimage's default gamma, SR map with that same gamma."""
  gt_map = filters.frangi(gt[..., 1], sigmas=sigmas, black_ridges=True)
  # skimage's default gamma: half the largest Frobenius norm of the Hessian at the first sigma.
  eig = hessian_matrix_eigvals(hessian_matrix(gt[..., 1], sigmas[0], mode="reflect",
                                              use_gaussian_derivatives=True))
  gamma = np.sqrt((eig**2).sum(0)).max() / 2
  sr_map = filters.frangi(sr[..., 1], sigmas=sigmas, black_ridges=True, gamma=gamma)
  fov = ndimage.binary_erosion(gt.max(-1) > fov_threshold, iterations=erosion, border_value=0)
  a, b = sr_map[fov], gt_map[fov]
  r = np.corrcoef(a, b)[0, 1]
  t = np.quantile(b, quantile)
  tp = np.sum((a > t) & (b > t))
  fp = np.sum((a > t) & (b <= t))
  fn = np.sum((a <= t) & (b > t))
  return r, 2 * tp / (2 * tp + fp + fn)


def test_vessel_scores_match_skimage_frangi_and_numpy():
  gt = _synthetic_fundus()
  sr = ndimage.gaussian_filter(gt, (1.2, 1.2, 0)) + 0.01 * np.random.default_rng(5).standard_normal(
      gt.shape)
  sigmas = (1.0, 2.0, 3.0)
  scores = metrics.vessel_scores(sr, gt, sigmas, quantile=0.85, fov_threshold=0.1, fov_erosion=4)
  r, f1 = _reference_vessel_scores(sr, gt, sigmas, 0.85, 0.1, 4)
  assert scores["vessel_r"] == pytest.approx(r, abs=1e-9)
  assert scores["vessel_f1"] == pytest.approx(f1, abs=1e-9)
  assert 0.0 < scores["vessel_f1"] < 1.0


def test_vessel_scores_rank_blur_and_identity():
  gt = _synthetic_fundus(seed=1)
  identical = metrics.vessel_scores(gt, gt, (1.0, 2.0, 3.0), fov_erosion=4)
  assert identical == {"vessel_r": pytest.approx(1.0), "vessel_f1": 1.0}
  mild = metrics.vessel_scores(ndimage.gaussian_filter(gt, (0.7, 0.7, 0)), gt, (1.0, 2.0, 3.0),
                               fov_erosion=4)
  strong = metrics.vessel_scores(ndimage.gaussian_filter(gt, (2.5, 2.5, 0)), gt, (1.0, 2.0, 3.0),
                                 fov_erosion=4)
  assert strong["vessel_f1"] < mild["vessel_f1"] < 1.0
  assert strong["vessel_r"] < mild["vessel_r"]
  empty = metrics.vessel_scores(gt * 0, gt * 0, (1.0,))
  assert np.isnan(empty["vessel_r"]) and np.isnan(empty["vessel_f1"])


def _metrics_config(**changes):
  config = ml_collections.ConfigDict(dict(
      color_space="rgb", crop_border=0, data_range=1.0, ssim_window=11, ssim_sigma=1.5,
      hfen_sigma=1.5, lpips_net="", vessel=False, vessel_sigmas=(1.0, 2.0), vessel_quantile=0.9,
      vessel_fov_threshold=0.1, vessel_fov_erosion=4))
  config.update(changes)
  return config


def test_image_metrics_applies_crop_and_colour_space():
  sr, gt = _pair(seed=4)
  suite = metrics.ImageMetrics(_metrics_config(color_space="y", crop_border=3))
  values = suite(sr, gt)
  assert list(values) == ["psnr", "ssim", "hfen", "grad_ratio", "bias"]
  y_sr = color.rgb2ycbcr(sr[3:-3, 3:-3].astype(np.float64))[..., 0] / 255
  y_gt = color.rgb2ycbcr(gt[3:-3, 3:-3].astype(np.float64))[..., 0] / 255
  assert values["psnr"] == pytest.approx(
      skmetrics.peak_signal_noise_ratio(y_gt, y_sr, data_range=1.0), abs=1e-3)
  assert values["ssim"] == pytest.approx(skmetrics.structural_similarity(
      y_gt, y_sr, data_range=1.0, gaussian_weights=True, sigma=1.5,
      use_sample_covariance=False), abs=5e-5)


def test_image_metrics_with_vessels_reuses_gt_work_and_checks_shapes():
  gt = _synthetic_fundus(size=64).astype(np.float32)
  sr = ndimage.gaussian_filter(gt, (1, 1, 0))
  suite = metrics.ImageMetrics(_metrics_config(vessel=True, crop_border=2))
  score = suite.against(gt)
  values = score(sr)
  assert list(values) == ["psnr", "ssim", "hfen", "grad_ratio", "bias", "vessel_r", "vessel_f1"]
  assert values == suite(sr, gt)
  perfect = score(gt)
  assert perfect["psnr"] == np.inf and perfect["ssim"] == pytest.approx(1.0)
  assert perfect["hfen"] == 0.0 and perfect["grad_ratio"] == pytest.approx(1.0)
  with pytest.raises(ValueError):
    score(sr[:-2])


def _textured_radiograph(size=96, seed=0):
  """Mid-gray field with two bright blocks (strong edges, like ribs and the mediastinum), fine
  random texture everywhere and a black collimator strip on the left: (gt, texture)."""
  rng = np.random.default_rng(seed)
  base = np.full((size, size), 0.45)
  base[10:40, 20:80] = 0.85
  base[60:85, 50:70] = 0.75
  base[:, :8] = 0.0
  texture = 0.03 * ndimage.gaussian_filter(rng.standard_normal((size, size)), 0.7)
  texture[:, :8] = 0.0
  gt = np.clip(base + texture, 0, 1)
  return np.repeat(gt[..., None], 3, -1).astype(np.float32), texture


def _reference_texture_areas(gt, sigma=4.0, fraction=0.5, dark=0.05):
  gray = gt.astype(np.float64).mean(-1)
  coarse = ndimage.gaussian_filter(gray, sigma, mode="reflect", truncate=4.0)
  energy = ndimage.sobel(coarse, 0, mode="reflect")**2 + ndimage.sobel(coarse, 1, mode="reflect")**2
  foreground = gray > dark
  return foreground & (energy <= np.quantile(energy[foreground], fraction))


def _reference_gradient_energy(image, mask):
  image = image.astype(np.float64)
  energy = sum(ndimage.sobel(image, axis, mode="reflect")**2 for axis in (0, 1))
  return energy.sum(-1)[mask].sum()


def test_texture_ratio_sees_smoothed_texture_that_the_whole_image_ratio_misses():
  gt, texture = _textured_radiograph()
  # SR keeps the edges and halves the texture: gradient energy of the texture drops to about 1/4.
  sr = np.clip(gt - 0.5 * texture[..., None], 0, 1).astype(np.float32)
  areas = metrics.texture_areas(gt)
  expected_areas = _reference_texture_areas(gt)
  assert areas.shape == gt.shape[:2] and areas.dtype == bool
  # float32 against float64 may flip pixels whose energy sits at the quantile itself.
  assert np.mean(areas != expected_areas) < 0.002
  assert not areas[:, :8].any()  # The collimator black is never a texture area.
  assert abs(areas.sum() - 0.5 * (gt[..., 0] > 0.05).sum()) <= 2
  ratio = metrics.texture_ratio(sr, gt, areas)
  expected = (_reference_gradient_energy(sr, areas) / _reference_gradient_energy(gt, areas))
  assert ratio == pytest.approx(expected, rel=1e-4)
  assert 0.2 < ratio < 0.35
  # Over the whole image the block edges dominate, and the same SR looks nearly as sharp as GT.
  assert metrics.gradient_energy_ratio(sr, gt) > 0.8
  assert metrics.texture_ratio(gt, gt, areas) == pytest.approx(1.0)


def test_texture_areas_reject_bad_input():
  gt, _ = _textured_radiograph(size=32)
  with pytest.raises(ValueError, match="no pixel brighter"):
    metrics.texture_areas(np.zeros_like(gt))
  with pytest.raises(ValueError, match="HxWxC"):
    metrics.texture_areas(gt[..., 0])
  with pytest.raises(ValueError, match="Texture areas"):
    metrics.texture_ratio(gt, gt, np.ones((31, 32), bool))


def test_image_metrics_adds_the_texture_ratio_when_asked():
  gt, texture = _textured_radiograph(size=64, seed=2)
  sr = np.clip(gt - 0.5 * texture[..., None], 0, 1).astype(np.float32)
  values = metrics.ImageMetrics(_metrics_config(texture=True, crop_border=4))(sr, gt)
  assert list(values) == ["psnr", "ssim", "hfen", "grad_ratio", "texture_ratio", "bias"]
  crop = (slice(4, -4), slice(4, -4))
  areas = _reference_texture_areas(gt[crop])
  expected = (_reference_gradient_energy(sr[crop], areas)
              / _reference_gradient_energy(gt[crop], areas))
  assert values["texture_ratio"] == pytest.approx(expected, rel=2e-3)


def test_mean_bias_is_the_signed_mean_difference_in_8bit_levels():
  sr, gt = _pair(seed=5)
  brighter = np.clip(gt + 3 / 255, 0, 1)
  expected = (brighter.astype(np.float64).mean() - gt.astype(np.float64).mean()) * 255
  assert metrics.mean_bias(brighter, gt) == pytest.approx(expected, abs=1e-3)
  assert metrics.mean_bias(gt, brighter) == pytest.approx(-expected, abs=1e-3)
  values = metrics.ImageMetrics(_metrics_config(crop_border=2))(sr, gt)
  assert values["bias"] == pytest.approx(
      (sr[2:-2, 2:-2].astype(np.float64).mean() - gt[2:-2, 2:-2].astype(np.float64).mean()) * 255,
      abs=1e-3)
