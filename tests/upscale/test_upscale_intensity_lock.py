"""The intensity lock (jaxsr.infer.intensity) against a SciPy / scikit-image reference."""

import numpy as np
import pytest
from scipy import ndimage

from jaxsr.infer import intensity
from jaxsr.infer.upscaler import Upscaler
from tests.upscale.reference import random_image, reference_lock, torch_sr


def _drifted_pair(seed=0, height=24, width=20, scale=4, drift=0.03):
  """LR, and an 'SR' of it: the LR's nearest-neighbour x4 plus fine texture and a brightness
  drift that grows from left to right (the kind of error the lock is for)."""
  rng = np.random.default_rng(seed)
  lr = ndimage.gaussian_filter(rng.random((height, width, 1)), (2, 2, 0)) * 0.6 + 0.2
  sr = np.repeat(np.repeat(lr, scale, 0), scale, 1)
  texture = 0.02 * rng.standard_normal(sr.shape)
  ramp = drift * np.linspace(0.5, 1.5, sr.shape[1])[None, :, None]
  return lr.astype(np.float32), np.clip(sr + texture + ramp, 0, 1).astype(np.float32), texture


@pytest.mark.parametrize("sigma", [1.0, 2.5])
def test_lock_matches_the_scipy_reference(sigma):
  lr, sr, _ = _drifted_pair(seed=1)
  expected = reference_lock(sr, lr, 4, sigma)
  out = intensity.lock_intensity(sr.copy(), lr, 4, sigma)
  np.testing.assert_allclose(out, expected, atol=2e-6)


def test_lock_removes_the_drift_and_keeps_the_texture(monkeypatch, tmp_path):
  lr, sr, texture = _drifted_pair(seed=2, height=32, width=28)
  before = sr.mean() - np.repeat(np.repeat(lr, 4, 0), 4, 1).mean()
  # A memmapped output, read and written in strips of a few rows: the same result.
  monkeypatch.setattr(intensity, "STRIP_PIXELS", 3 * sr.shape[1])
  mapped = np.lib.format.open_memmap(tmp_path / "sr.npy", "w+", np.float32, sr.shape)
  mapped[:] = sr
  out = intensity.lock_intensity(mapped, lr, 4, 2.0)
  assert out is mapped
  np.testing.assert_allclose(np.asarray(out), reference_lock(sr, lr, 4, 2.0), atol=2e-6)
  after = out.mean() - np.repeat(np.repeat(lr, 4, 0), 4, 1).mean()
  assert before * 255 > 7 and abs(after) * 255 < 0.3
  # What was added is smooth: the texture's correlation with the output's detail survives.
  change = np.asarray(out, np.float64) - sr
  assert np.abs(change - ndimage.gaussian_filter(change, (4, 4, 0))).max() < 0.01
  detail = np.asarray(out, np.float64) - ndimage.gaussian_filter(out, (4, 4, 0))
  assert np.corrcoef(detail.ravel(), texture.ravel())[0, 1] > 0.9


def test_lock_refuses_bad_arguments():
  lr, sr, _ = _drifted_pair()
  with pytest.raises(ValueError, match="sigma must be > 0"):
    intensity.lock_intensity(sr, lr, 4, 0.0)
  with pytest.raises(ValueError, match="not x4"):
    intensity.lock_intensity(sr[:-1], lr, 4, 2.0)
  with pytest.raises(ValueError, match="positive integer"):
    intensity.lock_intensity(sr, lr, 2.5, 2.0)


def test_upscaler_with_the_lock_is_the_reference_lock_of_the_network_output(models):
  nets, dirs = models
  image = random_image((14, 18, 3), seed=5).astype(np.float32) / 255
  locked = Upscaler(dirs[4], intensity_lock=1.5).upscale(image)
  network = np.clip(torch_sr(nets[4], image), 0, 1)
  np.testing.assert_allclose(locked, reference_lock(network, image, 4, 1.5), atol=2e-5)
  assert np.abs(locked - network).max() > 1e-3  # The lock did something.
  # With outscale, the lock comes first and Lanczos resizes the locked output.
  assert Upscaler(dirs[4], intensity_lock=1.5).upscale(image, outscale=2).shape == (28, 36, 3)
  with pytest.raises(ValueError, match="intensity_lock"):
    Upscaler(dirs[4], intensity_lock=-1.0)
