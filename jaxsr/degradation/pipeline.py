"""Real-ESRGAN's high-order degradation of one GT image into an (lq, gt, gt_usm) training triple.

`degrade(gt, seed, config)` is the interface the input pipeline uses, inside
`tf.data.Dataset.map`; it is a pure graph of TF ops (no py_function) and a pure function of
(gt, seed). Steps, with every number from `config.default_config()`:

  h-flip (p 0.5) -> USM sharpening = gt_usm
  stage 1: blur(kernel1) -> resize (up/down/keep) -> Gaussian or Poisson noise -> clip -> JPEG
  stage 2: blur(kernel2, p 0.8) -> resize relative to GT / scale -> noise -> clip
  final, random order: [resize to GT / scale -> sinc -> JPEG] or [JPEG -> resize -> sinc]
  quantise lq to 8 bits -> paired random crop (gt_size and gt_size // scale)

Where this knowingly differs from the original (Real-ESRGAN v0.3.0 `realesrgan_model.py`):

* Per-sample draws. The original draws the resize direction/factor/mode, the noise type, the
  second-blur decision, the final order and the crop position once per batch on the GPU and then
  decorrelates batches through a 180-sample queue; here every sample draws all of them itself, so
  no queue is needed and every batch mixes all degradation paths.
* Real JPEG. libjpeg at an integer quality drawn uniformly from 30..95 (both ends included), on
  the 8-bit-rounded image, with 4:2:0 chroma, instead of DiffJPEG's differentiable approximation
  at a continuous quality. The decoded image is on 8-bit levels.
* Resize. `ops.resize` reproduces PyTorch's `F.interpolate` (no antialiasing, bicubic a = -0.75,
  area = adaptive average pooling), including stage 1's `scale_factor` coordinate mapping, so
  there is no intended difference; `tf.image.resize` is avoided because it differs.
* Kernels of random size live on a 21x21 grid (same values as the original's zero padding); the
  final sinc kernel draws its size from 7..21 too, as the original does.
* Stateless TF random numbers: streams differ from NumPy/PyTorch, distributions do not.
* The original's plateau-beta quirk (beta = 1 for half of the plateau kernels) is kept, behind
  `beta_split_at_one`.
* Noise is clipped as in the original (`noise_clip="clip"`). Clipping removes the part of the noise
  that would leave [0, 1], so it darkens bright regions and brightens dark ones: on radiographs
  mean(LR) - mean(GT) is about -5 levels of 255, and a network trained on such pairs learns to
  brighten. `noise_clip="symmetric"` keeps the noise's mean at zero instead (`ops.bound_noise`).

Reproducibility: one graph gives bit-identical samples for a seed, in any tf.data order and
with any num_parallel_calls. Another graph of the same code (eager, a different tf.function,
other grappler settings) can round floats differently; a value on an 8-bit boundary then flips a
level, which JPEG and Poisson noise spread locally (measured: ~98% of lq values bit-equal, mean
difference 0.03 levels).

Size limits: reflect padding of the 21x21 filters needs every intermediate image to be larger
than 10 pixels, so with the default ranges the GT must be at least 147 pixels per side at scale
4; `degrade` also needs H, W >= gt_size. `degrade` checks both when the shape is static.
"""

from __future__ import annotations

import ml_collections
import tensorflow as tf

from jaxsr.degradation import kernels
from jaxsr.degradation import ops
from jaxsr.degradation import sampling

_SEED_NAMES = ("flip", "kernel1", "kernel2", "final_sinc", "resize1", "noise1", "jpeg1",
               "blur2", "resize2", "noise2", "final_order", "final_resize", "jpeg2", "crop")


def _draw_resize_factor(seed: tf.Tensor, stage: ml_collections.ConfigDict) -> tf.Tensor:
  """Up U(1, hi), down U(lo, 1) or keep 1, with probabilities stage.resize_prob (that order)."""
  direction_seed, up_seed, down_seed = sampling.split(seed, 3)
  direction = sampling.choice(direction_seed, stage.resize_prob)
  lo, hi = stage.resize_range
  factors = tf.stack([sampling.uniform(up_seed, 1.0, hi), sampling.uniform(down_seed, lo, 1.0),
                      tf.constant(1.0)])
  return tf.gather(factors, direction)


def _resize_random_mode(img, seed, size, modes, scale_factor=None) -> tf.Tensor:
  """ops.resize with a mode drawn uniformly from `modes`."""
  mode = sampling.randint(seed, 0, len(modes) - 1)
  branches = [lambda m=m: ops.resize(img, size, m, scale_factor) for m in modes]
  return tf.switch_case(mode, branches)


def _random_noise(img: tf.Tensor, seed: tf.Tensor, stage: ml_collections.ConfigDict,
                  noise_clip: str = "clip"):
  """Gaussian (sigma in 8-bit levels) or Poisson noise, colour or gray, kept within [0, 1].

  `noise_clip` says how (see `ops.bound_noise`): "clip" clips the noisy image, as the original;
  "symmetric" bounds the noise symmetrically so that its mean stays zero near black and white.
  """
  type_seed, gray_seed, sigma_seed, scale_seed, noise_seed = sampling.split(seed, 5)
  gray = sampling.bernoulli(gray_seed, stage.gray_noise_prob)
  noise = tf.cond(
      sampling.bernoulli(type_seed, stage.gaussian_noise_prob),
      lambda: ops.gaussian_noise(
          tf.shape(img), noise_seed, sampling.uniform(sigma_seed, *stage.noise_range) / 255.0,
          gray),
      lambda: ops.poisson_noise(
          img, noise_seed, sampling.uniform(scale_seed, *stage.poisson_scale_range), gray),
  )
  return ops.bound_noise(img, noise, noise_clip)


def _floor_scaled(size, factor, divisor: int = 1) -> tf.Tensor:
  """int(size / divisor * factor) in float64, the original's size arithmetic."""
  scaled = tf.cast(size, tf.float64) / divisor * tf.cast(factor, tf.float64)
  return tf.cast(tf.floor(scaled), tf.int32)


def _check_static_size(gt: tf.Tensor, config: ml_collections.ConfigDict) -> None:
  """Raises early, with the reason, for inputs the original could not degrade either."""
  if gt.shape.rank != 3 or gt.shape[-1] != 3:
    raise ValueError(f"gt must be [H, W, 3], got shape {gt.shape}")
  if config.scale < 1 or config.gt_size % config.scale:
    raise ValueError(f"gt_size {config.gt_size} must be a multiple of scale {config.scale}")
  if config.lq_size * config.scale != config.gt_size:
    raise ValueError(f"lq_size {config.lq_size} must be gt_size // scale; leave it to follow them")
  for side in gt.shape[:2]:
    if side is None:
      continue
    if side < config.gt_size:
      raise ValueError(f"gt sides must be >= gt_size {config.gt_size}, got shape {gt.shape}")
    smallest = min(int(side * config.stage1.resize_range[0]),
                   int(side / config.scale * config.stage2.resize_range[0]))
    if smallest <= kernels.PAD_TO // 2:
      raise ValueError(
          f"a {side}-pixel side shrinks to {smallest} pixels, too small for the reflect padding "
          f"of {kernels.PAD_TO}x{kernels.PAD_TO} filters; use a larger GT")


# Plain graph code with explicit tf.cond: AutoGraph would only re-parse it (seconds per trace).
@tf.autograph.experimental.do_not_convert
def degrade(gt: tf.Tensor, seed: tf.Tensor, config: ml_collections.ConfigDict
            ) -> dict[str, tf.Tensor]:
  """Degrades one GT image into a training triple.

  Args:
    gt: float32 [H, W, 3] in [0, 1], H, W >= config.gt_size (400x400 in the recipe).
    seed: int32/int64 shape-[2] tensor; derive it per example from the run seed, e.g.
      `tf.random.experimental.stateless_fold_in(run_seed, index)`.
    config: `config.default_config()` or an override of it.

  Returns:
    {"lq": [lq_size, lq_size, 3] on 8-bit levels, "gt": [gt_size, gt_size, 3],
     "gt_usm": [gt_size, gt_size, 3]}, float32 with static shapes; gt and gt_usm are the crop
    that lines up with the lq crop.
  """
  gt = tf.convert_to_tensor(gt, tf.float32)
  _check_static_size(gt, config)
  scale, gt_size, lq_size = config.scale, config.gt_size, config.lq_size
  seeds = dict(zip(_SEED_NAMES, sampling.split(seed, len(_SEED_NAMES))))
  height, width = tf.shape(gt)[0], tf.shape(gt)[1]
  lq_height, lq_width = height // scale, width // scale

  if config.use_hflip:
    gt = tf.cond(sampling.bernoulli(seeds["flip"], 0.5), lambda: tf.reverse(gt, axis=[1]),
                 lambda: gt)
  gt_usm = ops.usm_sharpen(gt, **config.usm)
  kernel1, _ = kernels.sample_blur_kernel(seeds["kernel1"], config.kernel1)
  kernel2, _ = kernels.sample_blur_kernel(seeds["kernel2"], config.kernel2)
  sinc, _ = kernels.sample_final_sinc(seeds["final_sinc"], config.final_sinc)

  # Stage 1: starts from the sharpened GT, resizes relative to the current size.
  out = ops.filter2d(gt_usm, kernel1)
  mode_seed, factor_seed = sampling.split(seeds["resize1"], 2)
  factor = _draw_resize_factor(factor_seed, config.stage1)
  size = (_floor_scaled(height, factor), _floor_scaled(width, factor))
  out = _resize_random_mode(out, mode_seed, size, config.stage1.resize_modes, scale_factor=factor)
  out = _random_noise(out, seeds["noise1"], config.stage1, config.noise_clip)
  out = ops.jpeg(out, sampling.randint(seeds["jpeg1"], *config.stage1.jpeg_range))

  # Stage 2: sizes relative to the final LR size, H / scale (not floored first, as the original).
  out = tf.cond(sampling.bernoulli(seeds["blur2"], config.stage2.blur_prob),
                lambda: ops.filter2d(out, kernel2), lambda: out)
  mode_seed, factor_seed = sampling.split(seeds["resize2"], 2)
  factor = _draw_resize_factor(factor_seed, config.stage2)
  size = (_floor_scaled(height, factor, scale), _floor_scaled(width, factor, scale))
  out = _resize_random_mode(out, mode_seed, size, config.stage2.resize_modes)
  out = _random_noise(out, seeds["noise2"], config.stage2, config.noise_clip)

  # Final resize back to H / scale and sinc filter, with the JPEG either after or before them.
  # The resize + sinc is built once, between two conds, so the graph holds it only once.
  jpeg_last = sampling.bernoulli(seeds["final_order"], config.final.resize_then_jpeg_prob)
  jpeg_quality = sampling.randint(seeds["jpeg2"], *config.stage2.jpeg_range)
  out = tf.cond(jpeg_last, lambda: out, lambda: ops.jpeg(out, jpeg_quality))
  out = _resize_random_mode(out, seeds["final_resize"], (lq_height, lq_width),
                            config.final.resize_modes)
  out = ops.filter2d(out, sinc)
  out = tf.cond(jpeg_last, lambda: ops.jpeg(out, jpeg_quality), lambda: out)
  lq = ops.quantize_8bit(out)

  # Paired random crop: the GT window sits at scale x the LR window's corner.
  top_seed, left_seed = sampling.split(seeds["crop"], 2)
  top = sampling.randint(top_seed, 0, lq_height - lq_size)
  left = sampling.randint(left_seed, 0, lq_width - lq_size)
  lq = lq[top:top + lq_size, left:left + lq_size]
  gt_top, gt_left = top * scale, left * scale
  gt = gt[gt_top:gt_top + gt_size, gt_left:gt_left + gt_size]
  gt_usm = gt_usm[gt_top:gt_top + gt_size, gt_left:gt_left + gt_size]

  lq.set_shape([lq_size, lq_size, 3])
  gt.set_shape([gt_size, gt_size, 3])
  gt_usm.set_shape([gt_size, gt_size, 3])
  return {"lq": lq, "gt": gt, "gt_usm": gt_usm}
