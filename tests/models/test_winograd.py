"""jaxsr.models.winograd: Winograd convolutions against PyTorch's."""

import jax.numpy as jnp
import numpy as np
import pytest
import torch
import torch.nn.functional as F

from convert import torch_networks as tn
from jaxsr.models import rrdbnet, winograd


@pytest.mark.parametrize("m", [2, 4])
def test_conv3x3_matches_pytorch_conv2d(m):
  rng = np.random.default_rng(m)
  x = rng.standard_normal((2, 8, 12, 5)).astype(np.float32)
  kernel = rng.standard_normal((3, 3, 5, 7)).astype(np.float32)  # HWIO
  expected = F.conv2d(torch.from_numpy(x.transpose(0, 3, 1, 2)),
                      torch.from_numpy(kernel.transpose(3, 2, 0, 1)), padding=1)
  got = winograd.conv3x3(jnp.asarray(x), jnp.asarray(kernel), m)
  np.testing.assert_allclose(np.asarray(got), expected.numpy().transpose(0, 2, 3, 1),
                             rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("m", [2, 4])
def test_dense_convs_match_the_pytorch_residual_dense_block(m):
  torch.manual_seed(m)
  block = tn.ResidualDenseBlock(num_feat=64, num_grow_ch=32).eval()
  convs = [(jnp.asarray(conv.weight.detach().numpy().transpose(2, 3, 1, 0)),
            jnp.asarray(conv.bias.detach().numpy())) for conv in block.children()]
  x = torch.rand(1, 64, 8, 12)
  with torch.no_grad():
    expected = block(x).numpy().transpose(0, 2, 3, 1)
  x5 = winograd.dense_convs(jnp.asarray(x.numpy().transpose(0, 2, 3, 1)), convs,
                            rrdbnet.LEAKY_SLOPE, m)
  got = x5 * rrdbnet.RESIDUAL_SCALE + x.numpy().transpose(0, 2, 3, 1)
  np.testing.assert_allclose(np.asarray(got), expected, rtol=1e-4, atol=1e-4)


def test_maps_that_do_not_tile_into_blocks_are_refused():
  assert winograd.fits(8, 12) and not winograd.fits(8, 10)
  with pytest.raises(ValueError, match="divisible by 4"):
    winograd.input_transform(jnp.zeros((1, 8, 10, 3)))
