"""benchmarks/winograd_probe.py: its dense block and its multiply-add counts against PyTorch's."""

import sys
from pathlib import Path

import jax.numpy as jnp
import numpy as np
import pytest
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))
import winograd_probe  # pylint: disable=wrong-import-position
from convert import torch_networks as tn  # pylint: disable=wrong-import-position


def _params(block):
  return {name: {"kernel": jnp.asarray(conv.weight.detach().numpy().transpose(2, 3, 1, 0)),
                 "bias": jnp.asarray(conv.bias.detach().numpy())}
          for name, conv in block.named_children()}


def test_dense_block_is_the_pytorch_residual_dense_block():
  torch.manual_seed(0)
  block = tn.ResidualDenseBlock(num_feat=64, num_grow_ch=32).eval()
  x = torch.rand(1, 64, 8, 8)
  with torch.no_grad():
    expected = block(x).numpy().transpose(0, 2, 3, 1)
  got = winograd_probe.dense_block(jnp.asarray(x.numpy().transpose(0, 2, 3, 1)), _params(block), 4)
  np.testing.assert_allclose(np.asarray(got), expected, rtol=1e-4, atol=1e-4)


def test_multiply_adds_follow_the_pytorch_block_s_weights():
  block = tn.ResidualDenseBlock(num_feat=64, num_grow_ch=32)
  weights = sum(conv.weight.numel() for conv in block.children())  # 9 * I * O per conv
  params = _params(block)
  assert winograd_probe.multiply_adds_per_pixel(params, None) == weights
  assert winograd_probe.multiply_adds_per_pixel(params, 2) == pytest.approx(weights / 9 * 16 / 4)
  assert winograd_probe.multiply_adds_per_pixel(params, 4) == pytest.approx(weights / 9 * 36 / 16)
