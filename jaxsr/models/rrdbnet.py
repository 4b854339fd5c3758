"""RRDBNet, the ESRGAN / Real-ESRGAN generator, in Flax (NHWC).

Module and parameter names mirror the PyTorch state dict (`body.3.rdb1.conv2.weight` lives at
`params["body_3"]["rdb1"]["conv2"]["kernel"]`), so weight conversion is a rename plus an
OIHW -> HWIO transpose and nothing else.
"""

from __future__ import annotations

import functools
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp

from jaxsr.models import conv_gradients
from jaxsr.models import winograd as winograd_lib

Dtype = Any

LEAKY_SLOPE = 0.2
RESIDUAL_SCALE = 0.2


def _scaled_kaiming_normal(scale: float):
  """Kaiming-normal (fan-in, leaky-relu gain as PyTorch's default a=0) scaled down, as BasicSR does."""
  base = nn.initializers.variance_scaling(2.0, "fan_in", "normal")

  def init(key, shape, dtype=jnp.float32):
    return base(key, shape, dtype) * scale

  return init


def pixel_unshuffle(x: jax.Array, factor: int) -> jax.Array:
  """Space-to-depth with PyTorch's channel order `c * r * r + i * r + j`, in NHWC."""
  b, h, w, c = x.shape
  if h % factor or w % factor:
    raise ValueError(f"pixel_unshuffle needs H and W divisible by {factor}, got {h}x{w}")
  x = x.reshape(b, h // factor, factor, w // factor, factor, c)
  x = x.transpose(0, 1, 3, 5, 2, 4)  # b, h', w', c, i, j
  return x.reshape(b, h // factor, w // factor, c * factor * factor)


def upsample_nearest_2x(x: jax.Array) -> jax.Array:
  return jnp.repeat(jnp.repeat(x, 2, axis=1), 2, axis=2)


class _ConvParameters(nn.Module):
  """The kernel and bias of a 3x3 nn.Conv (same names, shapes and initialisation), unapplied."""

  features: int
  in_features: int

  @nn.compact
  def __call__(self):
    kernel = self.param("kernel", _scaled_kaiming_normal(0.1),
                        (3, 3, self.in_features, self.features), jnp.float32)
    return kernel, self.param("bias", nn.initializers.zeros, (self.features,), jnp.float32)


def _conv3x3(x, kernel):
  return jax.lax.conv_general_dilated(x, kernel, (1, 1), ((1, 1), (1, 1)),
                                      dimension_numbers=("NHWC", "HWIO", "NHWC"),
                                      preferred_element_type=jnp.float32)


# Feature maps of at least this many pixels take the stacked form (see ResidualDenseBlock).
STACKED_MIN_PIXELS = 32 * 32


def _dense_concatenated(x, convs, dtype):
  """The five convs as PyTorch writes them: conv_i reads the concatenation of all earlier maps.

  Differentiated with `_dense_concatenated_vjp`'s kernel gradients (see there); same values.
  """
  kernels, biases = zip(*convs)
  return _dense_concatenated_vjp(x, tuple(kernels), tuple(biases), jnp.dtype(dtype))


def _dense_forward(x, kernels, biases, offsets, dtype):
  """(conv5's output, the concatenation of all five maps that conv5 reads).

  `offsets[i]` is added to conv_i's output: zeros, there so that a vjp with respect to them
  yields each conv's output gradient.
  """
  features = [x]
  for kernel, bias, offset in zip(kernels[:4], biases[:4], offsets[:4]):
    y = _conv3x3(jnp.concatenate(features, axis=-1), kernel.astype(dtype)) + bias + offset
    features.append(nn.leaky_relu(y, LEAKY_SLOPE).astype(dtype))
  stack = jnp.concatenate(features, axis=-1)
  return _conv3x3(stack, kernels[4].astype(dtype)) + biases[4] + offsets[4], stack


def _dense_kernel_gradients(stack, output_grads, in_widths):
  """All five kernels' gradients from one matmul.

  conv_i reads the first `in_widths[i]` channels of `stack`, so its kernel gradient is the
  product of its output gradient with the 3x3 patches of that prefix. Stacking the five output
  gradients gives one [sum(out) x N*H*W] x [N*H*W x 9*C] product, from which each kernel's
  gradient is a slice (38 % more multiply-adds than the five separate products need).
  """
  n, h, w, channels = stack.shape
  patches = conv_gradients.image_patches(stack, 3, 3, 1)
  grads = jnp.concatenate(output_grads, axis=-1).astype(stack.dtype)
  product = jnp.dot(grads.reshape(n * h * w, -1).T, patches.reshape(n * h * w, 9 * channels),
                    preferred_element_type=jnp.float32).reshape(-1, 3, 3, channels)
  kernel_grads, row = [], 0
  for grad, width in zip(output_grads, in_widths):
    kernel_grads.append(jnp.transpose(product[row:row + grad.shape[-1], :, :, :width],
                                      (1, 2, 3, 0)))
    row += grad.shape[-1]
  return kernel_grads


@functools.partial(jax.custom_vjp, nondiff_argnums=(3,))
def _dense_concatenated_vjp(x, kernels, biases, dtype):
  """`_dense_forward` whose kernel gradients come from `_dense_kernel_gradients`.

  Autodiff's kernel gradient of each conv is a convolution with the batch and channel roles
  swapped, which XLA's CPU backend runs at about half the rate of the forward on the 16x16 maps
  of CPU training crops (30-37 vs 60 GFLOP/s on a Zen 3 core; 280 ms of a 1.9 s x4plus GAN step
  per device). One matmul per block runs at matmul speed: the step took 1.57 s instead of 1.63 s
  (2 CPU devices, both compiled in one process and run alternately, 10 rounds, 9 won). Input and
  bias gradients are autodiff's.
  """
  return _dense_forward(x, kernels, biases, (0.0,) * 5, dtype)[0]


def _dense_concatenated_fwd(x, kernels, biases, dtype):
  offsets = tuple(jnp.zeros(x.shape[:3] + (k.shape[-1],), jnp.float32) for k in kernels)
  out, backward, stack = jax.vjp(
      lambda x, offsets: _dense_forward(x, kernels, biases, offsets, dtype), x, offsets,
      has_aux=True)
  return out, (backward, stack)  # The vjp closure is a pytree, so it can be a residual.


def _dense_concatenated_bwd(dtype, residuals, out_grad):
  del dtype
  backward, stack = residuals
  x_grad, output_grads = backward(out_grad)
  grown = [g.shape[-1] for g in output_grads[:4]]  # conv_i reads x and conv_1..conv_(i-1).
  in_widths = [stack.shape[-1] - sum(grown) + sum(grown[:i]) for i in range(5)]
  kernel_grads = _dense_kernel_gradients(stack, output_grads, in_widths)
  bias_grads = tuple(g.sum(axis=(0, 1, 2)) for g in output_grads)
  return x_grad, tuple(kernel_grads), bias_grads


_dense_concatenated_vjp.defvjp(_dense_concatenated_fwd, _dense_concatenated_bwd)


def _dense_stacked(x, convs, dtype):
  """The same five convs without concatenations.

  conv_i of a concatenation is the sum of each map's convolution with its slice of conv_i's
  kernel. So each map is convolved once, as soon as it exists, with the slices of every conv that
  reads it stacked along the output channels, and conv_i's output is the sum of its pieces.
  """
  widths = [kernel.shape[-1] for kernel, _ in convs]  # conv1..conv5 output channels
  partial = [None] * 5  # conv_i's output so far (float32, no bias)
  feature, lo = x, 0  # map j and its first input channel in the convs that read it
  for j in range(5):
    hi = lo + feature.shape[-1]
    kernel = jnp.concatenate([kernel[:, :, lo:hi, :] for kernel, _ in convs[j:]], axis=-1)
    pieces = _conv3x3(feature, kernel.astype(dtype))
    offset = 0
    for i in range(j, 5):
      piece = pieces[..., offset:offset + widths[i]]
      offset += widths[i]
      partial[i] = piece if partial[i] is None else partial[i] + piece
    if j < 4:
      feature = nn.leaky_relu(partial[j] + convs[j][1], LEAKY_SLOPE).astype(dtype)
    lo = hi
  return partial[4] + convs[4][1]


class ResidualDenseBlock(nn.Module):
  """Five densely connected 3x3 convs; output is `0.2 * conv5(...) + x`.

  Two forms of the same convs (same weights, same FLOPs, float32 accumulation whatever the
  compute dtype): concatenated (PyTorch's) for small maps, stacked (`_dense_stacked`) for maps of
  STACKED_MIN_PIXELS or more. On XLA's CPU backend the concatenated copies took about a fifth of
  an x4plus forward on 96x96 windows; the stacked form's forward was 8-22 % faster from 32x32 up
  (96x96 windows, 64x64 LR crops), but 25 % slower on 16x16 and its backward 10 % slower there,
  the CPU training crop, where many small convs cost more than the copies they save. The
  concatenated form's kernel gradients come from one matmul per block (`_dense_concatenated_vjp`).

  `winograd=True` (CPU inference, `generators.for_inference`) computes the float32 convs of
  maps of at least `winograd.MIN_PIXELS` whose sides are multiples of 4 by Winograd F(4x4, 3x3)
  (`winograd.dense_convs`): 4x fewer multiply-adds; tiled x4plus upscaling on a 2-core Zen 3
  went from 1.03-1.08x PyTorch's throughput to 1.33x (96x96 windows) and 1.82x (304x304).
  """

  num_feat: int = 64
  num_grow_ch: int = 32
  dtype: Dtype = jnp.float32
  winograd: bool = False

  @nn.compact
  def __call__(self, x):
    grow, feat = self.num_grow_ch, self.num_feat
    convs = [_ConvParameters(out, feat + grow * i, name=f"conv{i + 1}")()
             for i, out in enumerate([grow] * 4 + [feat])]
    height, width = x.shape[1:3]
    if height * width < STACKED_MIN_PIXELS:
      x5 = _dense_concatenated(x, convs, self.dtype)
    elif (self.winograd and jnp.dtype(self.dtype) == jnp.float32
          and height * width >= winograd_lib.MIN_PIXELS and winograd_lib.fits(height, width)):
      x5 = winograd_lib.dense_convs(x, convs, LEAKY_SLOPE)
    else:
      x5 = _dense_stacked(x, convs, self.dtype)
    x5 = x5.astype(self.dtype)
    return x5 * RESIDUAL_SCALE + x


class RRDB(nn.Module):
  """Residual-in-residual dense block: three RDBs and a scaled skip."""

  num_feat: int = 64
  num_grow_ch: int = 32
  dtype: Dtype = jnp.float32
  winograd: bool = False

  @nn.compact
  def __call__(self, x):
    out = x
    for i in range(1, 4):
      out = ResidualDenseBlock(self.num_feat, self.num_grow_ch, self.dtype, self.winograd,
                               name=f"rdb{i}")(out)
    return out * RESIDUAL_SCALE + x


def _scan_blocks(block: nn.Module, params: list, x: jax.Array) -> jax.Array:
  """`block` applied with each of `params` in turn, as one `lax.scan` over their stack.

  The same ops per block in the same order, so the same values (bit-identical here) as the
  unrolled chain; the parameters keep their per-block names (`body_N`, the state dict's `body.N`)
  and only the forward stacks them (one 67 MB copy per call for x4plus, next to seconds of convs).
  """
  stacked = jax.tree.map(lambda *leaves: jnp.stack(leaves), *params)

  def one_block(carry, block_params):
    return block.apply({"params": block_params}, carry), None

  return jax.lax.scan(one_block, x, stacked)[0]


class RRDBNet(nn.Module):
  """ESRGAN generator. Input NHWC RGB in [0, 1]; output (N, H*s, W*s, 3), not clamped.

  `scale` is the overall upscaling factor. As in Real-ESRGAN, scale 2 and 1 models first
  pixel-unshuffle by 2 and 4, then run the same x4 body, so their input H and W must be
  divisible by 2 and 4 respectively.

  `scan_body=True` runs the RRDB blocks as one `lax.scan` (`_scan_blocks`): XLA compiles one
  block instead of `num_block`, so each new input shape compiles faster (x4plus forward, 2-core
  Zen 3, jax 0.10.2: 1.9 s instead of 6.7 s on a 112x112 window, 2.3 s instead of 5.8 s on
  32x32) and runs as fast (3.73 s against 3.75 s at 112x112, 4 alternating runs). Forward only:
  on XLA's CPU backend a gradient through the scan took 3.2x the unrolled time (x4plus, 16x16
  crop, one core: 1.57 s against 0.49 s), so training differentiates the unrolled form and
  inference (`jaxsr.models.generators.for_inference`) scans. Parameters are the same either way.

  `winograd=True`: the dense blocks' float32 convs by Winograd F(4x4, 3x3) where their maps allow
  (`ResidualDenseBlock`); forward only, set by `for_inference` on CPUs.
  """

  scale: int = 4
  num_in_ch: int = 3
  num_out_ch: int = 3
  num_feat: int = 64
  num_block: int = 23
  num_grow_ch: int = 32
  dtype: Dtype = jnp.float32
  scan_body: bool = False
  winograd: bool = False

  @nn.compact
  def __call__(self, x):
    if self.scale not in (1, 2, 4):
      raise ValueError(f"RRDBNet supports scale 1, 2 or 4, got {self.scale}")
    # nn.Conv's parameters and forward; on CPUs its kernel gradients as matmuls (conv_last's,
    # 64 -> 3 channels at 64x64, took 6 ms per training step by autodiff).
    conv = functools.partial(conv_gradients.Conv3x3, dtype=self.dtype)
    x = x.astype(self.dtype)
    if self.scale < 4:
      x = pixel_unshuffle(x, 4 // self.scale)
    feat = conv(self.num_feat, name="conv_first")(x)
    blocks = [RRDB(self.num_feat, self.num_grow_ch, self.dtype, self.winograd, name=f"body_{i}")
              for i in range(self.num_block)]
    if not self.scan_body or self.is_initializing() or self.num_block < 2:
      body = feat
      for block in blocks:
        body = block(body)
    else:
      # An unbound RRDB (parent=None): a pure function of the parameters it is applied with,
      # not a submodule of this network.
      body = _scan_blocks(RRDB(self.num_feat, self.num_grow_ch, self.dtype, self.winograd,
                               parent=None),
                          [self.variables["params"][block.name] for block in blocks], feat)
    feat = feat + conv(self.num_feat, name="conv_body")(body)
    feat = nn.leaky_relu(conv(self.num_feat, name="conv_up1")(upsample_nearest_2x(feat)), LEAKY_SLOPE)
    feat = nn.leaky_relu(conv(self.num_feat, name="conv_up2")(upsample_nearest_2x(feat)), LEAKY_SLOPE)
    feat = nn.leaky_relu(conv(self.num_feat, name="conv_hr")(feat), LEAKY_SLOPE)
    return conv(self.num_out_ch, name="conv_last")(feat)

  @property
  def input_multiple(self) -> int:
    """Input H and W must be multiples of this (pixel-unshuffle factor)."""
    return 4 // self.scale
