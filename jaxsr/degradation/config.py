"""Every number of Real-ESRGAN's second-order degradation, as one ConfigDict.

The defaults are those of Real-ESRGAN v0.3.0's `finetune_realesrgan_x4plus.yml` and
`realesrgan_dataset.py` (which the medical fine-tuning paper keeps unchanged). The original option
name is given in a comment where ours differs. Training configs override fields of this dict, e.g.

  config = degradation.default_config()
  config.scale = 2           # lq_size follows: gt_size // scale
  config.stage2.blur_prob = 0.0
"""

from __future__ import annotations

import math

import ml_collections

# Odd kernel sizes 7, 9, ..., 21 (`kernel_range`); every kernel is zero padded to the largest.
KERNEL_SIZES = tuple(range(7, 22, 2))
# Order of the mixed kernel types; `kernel_probs` below follows it.
KERNEL_KINDS = ("iso", "aniso", "generalized_iso", "generalized_aniso", "plateau_iso",
                "plateau_aniso")
RESIZE_MODES = ("area", "bilinear", "bicubic")


def _blur_kernel_config(sigma_range: tuple[float, float]) -> ml_collections.ConfigDict:
  """Options of one random blur kernel (kernel1 or kernel2 of the original)."""
  return ml_collections.ConfigDict({
      "sizes": KERNEL_SIZES,  # kernel_range
      "kinds": KERNEL_KINDS,  # kernel_list
      "kind_probs": (0.45, 0.25, 0.12, 0.03, 0.12, 0.03),  # kernel_prob
      "sigma_range": sigma_range,  # blur_sigma / blur_sigma2
      "rotation_range": (-math.pi, math.pi),
      "betag_range": (0.5, 4.0),  # generalized Gaussian shape
      "betap_range": (1.0, 2.0),  # plateau shape
      # The original draws beta as U(lo, 1) or U(1, hi) with p=0.5 each, also for the plateau
      # range (1, 2), so half of the plateau kernels get beta = 1 exactly. True keeps that quirk;
      # False draws beta from U(lo, hi).
      "beta_split_at_one": True,
      "sinc_prob": 0.1,
      # The sinc cutoff range depends on the drawn size: small kernels get no very low cutoffs.
      "sinc_small_size_below": 13,
      "sinc_omega_range_small": (math.pi / 3, math.pi),
      "sinc_omega_range_large": (math.pi / 5, math.pi),
  })


def _noise_stage_config(resize_prob, resize_range, noise_range, poisson_scale_range):
  """Options of the resize -> noise -> JPEG part of one degradation stage."""
  return ml_collections.ConfigDict({
      "resize_prob": resize_prob,  # up / down / keep
      "resize_range": resize_range,  # up draws U(1, hi), down draws U(lo, 1)
      "resize_modes": RESIZE_MODES,  # drawn uniformly
      "gaussian_noise_prob": 0.5,  # else Poisson
      "noise_range": noise_range,  # Gaussian sigma, in 8-bit levels
      "poisson_scale_range": poisson_scale_range,
      "gray_noise_prob": 0.4,
      "jpeg_range": (30, 95),  # integer quality, both ends included
  })


def default_config() -> ml_collections.ConfigDict:
  """Returns the degradation options with the original Real-ESRGAN values."""
  config = ml_collections.ConfigDict()
  config.scale = 4  # 1, 2 or 4
  config.gt_size = 256  # GT crop; the LR crop is gt_size // scale
  config.lq_size = config.get_ref("gt_size") // config.get_ref("scale")
  config.use_hflip = True  # p = 0.5; the fine-tuning recipe uses no rotations
  # How noise is kept within [0, 1]: "clip" (the original) biases bright regions darker and dark
  # ones brighter; "symmetric" keeps every pixel's expected value (ops.bound_noise).
  config.noise_clip = "clip"

  # Unsharp masking of the GT; stage 1 starts from the sharpened image, and the L1 and
  # perceptual losses compare against it. 51x51 Gaussian with sigma 8 is what
  # cv2.getGaussianKernel(51, 0) gives for BasicSR's USMSharp(radius=50, sigma=0).
  config.usm = ml_collections.ConfigDict({
      "kernel_size": 51,
      "sigma": 8.0,
      "weight": 0.5,
      "threshold": 10.0,  # on |img - blur| in 8-bit levels
  })

  config.kernel1 = _blur_kernel_config(sigma_range=(0.2, 3.0))
  config.kernel2 = _blur_kernel_config(sigma_range=(0.2, 1.5))
  config.final_sinc = ml_collections.ConfigDict({
      "prob": 0.8,  # final_sinc_prob; otherwise a 21x21 delta (identity)
      "sizes": KERNEL_SIZES,
      "omega_range": (math.pi / 3, math.pi),
  })

  config.stage1 = _noise_stage_config(
      resize_prob=(0.2, 0.7, 0.1),
      resize_range=(0.15, 1.5),
      noise_range=(1.0, 30.0),
      poisson_scale_range=(0.05, 3.0),
  )
  config.stage2 = _noise_stage_config(
      resize_prob=(0.3, 0.4, 0.3),  # resize_prob2; relative to GT / scale
      resize_range=(0.3, 1.2),
      noise_range=(1.0, 25.0),
      poisson_scale_range=(0.05, 2.5),
  )
  config.stage2.blur_prob = 0.8  # second_blur_prob

  # Final step: with p = 0.5 [resize to GT / scale -> sinc -> JPEG], else
  # [JPEG -> resize to GT / scale -> sinc].
  config.final = ml_collections.ConfigDict({
      "resize_then_jpeg_prob": 0.5,
      "resize_modes": RESIZE_MODES,
  })
  return config
