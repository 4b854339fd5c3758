"""Convolutions with matmul kernel gradients (`conv_gradients`) against PyTorch's autograd."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import torch
import torch.nn.functional as F

from jaxsr.models import conv_gradients


@pytest.mark.parametrize("kernel_size, stride, cin, cout, size, matmul", [
    (3, 1, 8, 5, (12, 16), True),    # 3x3 convs: the discriminator's and RRDBNet's head.
    (3, 1, 6, 1, (12, 16), True),    # The discriminator's last conv (64 -> 1).
    (4, 2, 5, 7, (12, 16), False),   # Its stride-2 4x4 convs keep autodiff.
])
def test_gradients_match_pytorch_autograd(kernel_size, stride, cin, cout, size, matmul):
  generator = torch.Generator().manual_seed(kernel_size * 10 + cout)
  x = torch.randn(2, cin, *size, generator=generator, dtype=torch.float64, requires_grad=True)
  weight = torch.randn(cout, cin, kernel_size, kernel_size, generator=generator,
                       dtype=torch.float64, requires_grad=True)
  out = F.conv2d(x, weight, stride=stride, padding=1)
  tap = torch.randn(out.shape, generator=generator, dtype=torch.float64)
  (out * tap).sum().backward()

  to_nhwc = lambda t: jnp.asarray(t.detach().numpy().transpose(0, 2, 3, 1), jnp.float32)
  kernel = jnp.asarray(weight.detach().numpy().transpose(2, 3, 1, 0), jnp.float32)
  loss = lambda x, k: jnp.sum(conv_gradients.conv(x, k, stride, 1) * to_nhwc(tap))
  assert jax.default_backend() == "cpu"  # The matmul kernel gradient's path where it applies.
  assert conv_gradients.uses_matmul(to_nhwc(x).shape, kernel.shape, stride) == matmul
  x_grad, kernel_grad = jax.jit(jax.grad(loss, argnums=(0, 1)))(to_nhwc(x), kernel)

  expected_kernel = weight.grad.numpy().transpose(2, 3, 1, 0)
  expected_x = x.grad.numpy().transpose(0, 2, 3, 1)
  np.testing.assert_allclose(kernel_grad, expected_kernel, atol=1e-5 * np.abs(expected_kernel).max())
  np.testing.assert_allclose(x_grad, expected_x, atol=1e-5 * np.abs(expected_x).max())


def test_conv3x3_module_has_nn_conv_parameters_and_forward():
  """A drop-in for nn.Conv(features, (3, 3), padding=1): same names, same initial values, same
  output (so checkpoints and the original's initialisation are unchanged)."""
  import flax.linen as nn  # pylint: disable=import-outside-toplevel
  x = jax.random.uniform(jax.random.key(0), (1, 9, 7, 4))
  ours = conv_gradients.Conv3x3(6)
  theirs = nn.Conv(6, (3, 3), padding=1)
  ours_vars, theirs_vars = ours.init(jax.random.key(1), x), theirs.init(jax.random.key(1), x)
  assert jax.tree.structure(ours_vars) == jax.tree.structure(theirs_vars)
  for a, b in zip(jax.tree.leaves(ours_vars), jax.tree.leaves(theirs_vars)):
    np.testing.assert_array_equal(a, b)
  theirs_vars = jax.tree.map(lambda v: v + 0.1, theirs_vars)  # A non-zero bias as well.
  np.testing.assert_allclose(ours.apply(theirs_vars, x), theirs.apply(theirs_vars, x), atol=1e-6)
