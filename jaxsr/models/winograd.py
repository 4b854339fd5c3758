"""Winograd F(m x m, 3 x 3) convolutions, for RRDBNet's dense blocks in CPU inference.

F(m x m, 3 x 3) computes each m x m output block of a 3x3 'same' convolution from the
(m+2) x (m+2) input block around it with (m+2)^2 products over the channels instead of 9 m^2
(Lavin & Gray, "Fast Algorithms for Convolutional Neural Networks", 2016): F(4x4) does 4x fewer
multiply-adds than the direct convolution, at the cost of a transform of every input and output
block. Both transforms are plain jax.numpy slices and adds, which XLA fuses.

Why only there: x4plus's dense blocks are 92 % of its FLOPs, and on XLA's CPU backend the direct
convolutions already run at 82-84 % of the FMA peak, as PyTorch's do, so fewer multiply-adds is
the only way past PyTorch (`benchmarks/winograd_probe.py` times one block both ways; the
upscale benchmark the whole network). Forward only, float32 only (the transforms' factors, up to
8 and 1/24, would cost bfloat16 most of its 8 mantissa bits), and not on GPUs, where cuDNN
chooses its own algorithms.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

# (B^T, G, A^T) with Lavin & Gray's interpolation points: 0, 1, -1 for m = 2, and 0, 1, -1, 2, -2
# for m = 4 (plus the point at infinity).
_TRANSFORMS = {
    2: ([[1, 0, -1, 0], [0, 1, 1, 0], [0, -1, 1, 0], [0, 1, 0, -1]],
        [[1, 0, 0], [1 / 2, 1 / 2, 1 / 2], [1 / 2, -1 / 2, 1 / 2], [0, 0, 1]],
        [[1, 1, 1, 0], [0, 1, -1, -1]]),
    4: ([[4, 0, -5, 0, 1, 0], [0, -4, -4, 1, 1, 0], [0, 4, -4, -1, 1, 0], [0, -2, -1, 2, 1, 0],
         [0, 2, -1, -2, 1, 0], [0, 4, 0, -5, 0, 1]],
        [[1 / 4, 0, 0], [-1 / 6, -1 / 6, -1 / 6], [-1 / 6, 1 / 6, -1 / 6],
         [1 / 24, 1 / 12, 1 / 6], [1 / 24, -1 / 12, 1 / 6], [0, 0, 1]],
        [[1, 1, 1, 1, 1, 0], [0, 1, -1, 2, -2, 0], [0, 1, 1, 4, 4, 0], [0, 1, -1, 8, -8, 1]]),
}

# The block size RRDBNet's dense blocks use: F(2x2) saves too little to pay for its transforms.
BLOCK = 4
# The smallest map RRDBNet's dense blocks take it for: the tile-64 windows of the upscale
# benchmark. Winograd's transforms make XLA compile longer (an x4plus forward on a 96x96 window:
# 5.3 s against 1.2 s on a Zen 3 core, for 0.6 s less per run), which only pays on large maps
# or shapes run many times; below this, an image run once would spend more compiling.
MIN_PIXELS = 96 * 96


def fits(height: int, width: int, m: int = BLOCK) -> bool:
  """Whether H x W maps tile into m x m output blocks."""
  return height % m == 0 and width % m == 0


def _combine(coefficients, arrays):
  """sum(c * a), skipping zero coefficients and multiplying only where |c| != 1."""
  total = None
  for c, a in zip(coefficients, arrays):
    if c == 0:
      continue
    term = a if c == 1 else -a if c == -1 else c * a
    total = term if total is None else total + term
  return total


def input_transform(x: jax.Array, m: int = BLOCK) -> jax.Array:
  """NHWC -> [(m+2)^2, N * H/m * W/m, C]: B^T d B of every (m+2)-block at stride m, the map
  zero-padded by 1 as the 'same' convolution pads it."""
  if not fits(x.shape[1], x.shape[2], m):
    raise ValueError(f"Winograd F({m}x{m}, 3x3) needs H and W divisible by {m}, got "
                     f"{x.shape[1]}x{x.shape[2]}")
  b_t = _TRANSFORMS[m][0]
  n, h, w, c = x.shape
  padded = jnp.pad(x, ((0, 0), (1, 1), (1, 1), (0, 0)))
  rows = [padded[:, k:k + h:m] for k in range(m + 2)]  # Row k of every block.
  out = []
  for row in (_combine(b, rows) for b in b_t):
    cols = [row[:, :, k:k + w:m] for k in range(m + 2)]
    out += [_combine(b, cols) for b in b_t]
  return jnp.stack(out).reshape((m + 2) ** 2, n * (h // m) * (w // m), c)


def kernel_transform(kernel: jax.Array, m: int = BLOCK) -> jax.Array:
  """HWIO 3x3 kernel -> [(m+2)^2, I, O]: G g G^T."""
  g = np.asarray(_TRANSFORMS[m][1], np.float32)
  u = jnp.einsum("ah,hwio,bw->abio", g, kernel.astype(jnp.float32), g)
  return u.reshape((m + 2) ** 2, *kernel.shape[2:])


def output_transform(products: jax.Array, shape: tuple[int, int, int],
                     m: int = BLOCK) -> jax.Array:
  """[(m+2)^2, N * H/m * W/m, O] -> N x H x W x O: A^T M A of every block, tiled back in place."""
  a_t = _TRANSFORMS[m][2]
  n, h, w = shape
  blocks = products.reshape(m + 2, m + 2, n, h // m, w // m, products.shape[-1])
  rows = [_combine(a, list(blocks)) for a in a_t]  # m arrays [m+2, n, h/m, w/m, O]
  tiled = [jnp.stack([_combine(a, list(row)) for a in a_t], axis=3) for row in rows]
  return jnp.stack(tiled, axis=2).reshape(n, h, w, products.shape[-1])


def _products(transformed: jax.Array, kernel: jax.Array, m: int) -> jax.Array:
  return jnp.einsum("tpc,tco->tpo", transformed, kernel_transform(kernel, m),
                    preferred_element_type=jnp.float32)


def conv3x3(x: jax.Array, kernel: jax.Array, m: int = BLOCK) -> jax.Array:
  """The 3x3 stride-1 'same' convolution (NHWC, HWIO kernel, no bias), float32."""
  return output_transform(_products(input_transform(x, m), kernel, m), x.shape[:3], m)


def dense_convs(x: jax.Array, convs, leaky_slope: float, m: int = BLOCK) -> jax.Array:
  """A Residual Dense Block's five convs (`convs`: (HWIO kernel, bias) pairs; conv_i reads the
  concatenation of x and the leaky-ReLU'd outputs of conv_1..conv_(i-1)); conv_5's output.

  Each map is transformed once: the transform is linear and per channel, so the transform of a
  concatenation is the concatenation of the transforms, and conv_i multiplies those.
  """
  x = x.astype(jnp.float32)
  transforms = [input_transform(x, m)]
  for i, (kernel, bias) in enumerate(convs):
    stacked = jnp.concatenate(transforms, axis=-1) if i else transforms[0]
    y = output_transform(_products(stacked, kernel, m), x.shape[:3], m) + bias
    if i < len(convs) - 1:
      transforms.append(input_transform(jax.nn.leaky_relu(y, leaky_slope), m))
  return y
