"""The paper's evaluation protocols: how a test image becomes a (GT, LR) pair.

Aghelan & Rouhani evaluate with two synthetic protocols (REFERENCE.md section 6):

* `retina-x2`: GT = Lanczos rescale to 512x512; LR = bicubic x2 down, then Gaussian blur; x2.
* `chest-x4`: GT = 1024x1024 (Lanczos resize if needed); LR = bicubic x4 down, then blur; x4.

The paper does not state the blur's sigma and kernel size, the colour space of PSNR/SSIM, the border
crop, or which bicubic it used. Every such choice is an explicit field of the protocol's ConfigDict,
and `run.evaluate` writes the whole ConfigDict into every result file, so a number never travels
without the options that produced it.

Resampling is PIL's, on float32 ('F' mode) planes, one channel at a time:

* bicubic is Keys' cubic with a = -0.5 (MATLAB's and PIL's; PyTorch uses a = -0.75), antialiased on
  downscaling (the kernel support grows with the factor, like MATLAB's `imresize`);
* Lanczos is PIL's Lanczos-3, also antialiased.

Working in 'F' mode keeps the arithmetic in floating point; `quantize_8bit` then rounds GT and LR
to 8-bit levels, as if they had been saved as PNG files (which is what a paper's pipeline does).
"""

from __future__ import annotations

import ml_collections
import numpy as np
from PIL import Image

PROTOCOL_NAMES = ("retina-x2", "chest-x4", "custom")

# PIL's filters by the names the config uses.
_PIL_FILTERS = {
    "bicubic": Image.Resampling.BICUBIC,
    "lanczos": Image.Resampling.LANCZOS,
    "bilinear": Image.Resampling.BILINEAR,
    "nearest": Image.Resampling.NEAREST,
}
# numpy.pad modes by the border names used here (OpenCV's names where they differ).
_NUMPY_PAD_MODES = {"reflect101": "reflect", "symmetric": "symmetric", "edge": "edge",
                    "constant": "constant"}


def get_protocol(name: str, **overrides) -> ml_collections.ConfigDict:
  """Returns the ConfigDict of protocol `name` ('retina-x2', 'chest-x4' or 'custom').

  Args:
    name: one of `PROTOCOL_NAMES`.
    **overrides: top-level fields to replace (e.g. `blur_sigma=1.5`); the nested groups `metrics`
      and `report` are better changed on the returned ConfigDict (`config.metrics.color_space =
      'y'`). A key the protocol does not have raises, so a typo cannot pass silently.
  """
  if name not in PROTOCOL_NAMES:
    raise ValueError(f"Unknown protocol {name!r}; expected one of {PROTOCOL_NAMES}")
  config = ml_collections.ConfigDict()
  config.name = name
  # Ground truth: (height, width) to resize to, or None to keep the image's size (cropped at the
  # bottom/right to a multiple of `scale`, like BasicSR's mod_crop).
  config.scale = {"retina-x2": 2, "chest-x4": 4, "custom": 4}[name]
  config.gt_size = {"retina-x2": (512, 512), "chest-x4": (1024, 1024), "custom": None}[name]
  config.gt_resample = "lanczos"  # PIL Lanczos-3 (a = 3), antialiased.
  # LR = downsample (PIL bicubic, Keys a = -0.5, antialiased), then a Gaussian blur.
  config.downsample = "bicubic"
  config.bicubic_a = -0.5  # What PIL implements; recorded, not a knob (PIL has no other a).
  # Not stated in the paper. sigma 1.0 with a 7x7 kernel is what OpenCV's GaussianBlur(ksize=0)
  # chooses for sigma 1 on 8-bit images; the border is OpenCV's default (reflect-101).
  config.blur_sigma = 1.0
  config.blur_kernel_size = 7
  config.blur_border = "reflect101"
  # Round GT and LR (and every model's output, see metrics) to 8-bit levels, as saved PNGs are.
  config.quantize_8bit = True
  # The baseline every table contains: PIL bicubic upsampling of LR.
  config.baseline = "bicubic"

  config.metrics = ml_collections.ConfigDict()
  # Real-ESRGAN's own (commented-out) validation block in finetune_realesrgan_x4plus.yml measures
  # PSNR on RGB (test_y_channel: false) with crop_border 4 (= its scale); we follow it, with
  # crop_border = scale (set below, after the overrides). 'y' is the BT.601 luma of MATLAB's rgb2ycbcr (range 16..235 / 255), the usual choice
  # of SR papers.
  config.metrics.color_space = "rgb"
  config.metrics.crop_border = 0
  config.metrics.data_range = 1.0
  config.metrics.ssim_window = 11  # Gaussian window (dm-pix), as Wang et al. 2004.
  config.metrics.ssim_sigma = 1.5
  config.metrics.hfen_sigma = 1.5  # Laplacian-of-Gaussian sigma of HFEN.
  config.metrics.lpips_net = "alex"  # 'alex', 'vgg' or '' (skip LPIPS).
  # Texture preservation (radiographs): the gradient-energy ratio inside GT's texture areas
  # (metrics.texture_areas), where lung texture lives; the whole-image ratio mostly weighs edges.
  config.metrics.texture = name == "chest-x4"
  # Vessel preservation (fundus only): Frangi vesselness of the green channel.
  config.metrics.vessel = name == "retina-x2"
  config.metrics.vessel_sigmas = (1.0, 2.0, 3.0, 4.0)  # Vessel radii of a 512 px fundus image.
  config.metrics.vessel_quantile = 0.9  # Vessels = top 10 % of GT vesselness (see metrics).
  config.metrics.vessel_fov_threshold = 0.1  # Field of view = GT brightest channel above this ...
  config.metrics.vessel_fov_erosion = 8  # ... eroded by this many pixels (drops the FOV rim).

  config.report = ml_collections.ConfigDict()
  config.report.n_bootstrap = 2000
  config.report.seed = 0
  config.report.figure_images = 3  # How many images the comparison figure shows.
  config.report.inset_size = 0  # Side of the magnified region in GT pixels; 0 = min(H, W) // 6.
  config.report.dark_threshold = 0.05  # Auto-picked regions avoid pixels darker than this.

  for key, value in overrides.items():
    if key not in config:
      raise KeyError(f"Protocol {name!r} has no option {key!r}")
    setattr(config, key, value)
  # A plain copy, not a FieldReference: assigning to a referencing field would rewrite `scale`.
  config.metrics.crop_border = config.scale
  _validate(config)
  return config


def _validate(config: ml_collections.ConfigDict) -> None:
  if config.scale < 1:
    raise ValueError(f"scale must be >= 1, got {config.scale}")
  if config.blur_kernel_size % 2 != 1:
    raise ValueError(f"blur_kernel_size must be odd, got {config.blur_kernel_size}")
  if config.blur_border not in _NUMPY_PAD_MODES:
    raise ValueError(f"blur_border must be one of {sorted(_NUMPY_PAD_MODES)}")
  for key in ("gt_resample", "downsample"):
    if config[key] not in _PIL_FILTERS:
      raise ValueError(f"{key} must be one of {sorted(_PIL_FILTERS)}, got {config[key]!r}")
  if config.gt_size is not None:
    height, width = config.gt_size
    if height % config.scale or width % config.scale:
      raise ValueError(f"gt_size {config.gt_size} is not a multiple of scale {config.scale}")
  if config.metrics.color_space not in ("rgb", "y"):
    raise ValueError(f"metrics.color_space must be 'rgb' or 'y', got {config.metrics.color_space}")


def pil_resize(image: np.ndarray, size: tuple[int, int], method: str) -> np.ndarray:
  """Resizes an HxWxC float image to `size` = (height, width) with PIL, in float32.

  Each channel goes through PIL as an 'F' (32-bit float) image, so nothing is rounded to 8 bits.
  """
  image = np.asarray(image, np.float32)
  height, width = size
  channels = [
      np.asarray(Image.fromarray(np.ascontiguousarray(image[..., c])).resize(
          (width, height), _PIL_FILTERS[method]))
      for c in range(image.shape[-1])
  ]
  return np.stack(channels, axis=-1)


def gaussian_kernel_1d(sigma: float, size: int) -> np.ndarray:
  """Sampled Gaussian exp(-x^2 / (2 sigma^2)), x = -(size//2)..size//2, normalised to sum 1."""
  x = np.arange(size, dtype=np.float64) - size // 2
  kernel = np.exp(-0.5 * (x / sigma) ** 2)
  return kernel / kernel.sum()


def gaussian_blur(image: np.ndarray, sigma: float, kernel_size: int,
                  border: str = "reflect101") -> np.ndarray:
  """Separable Gaussian blur of an HxWxC image (OpenCV's GaussianBlur for the same sigma/size)."""
  if sigma <= 0:
    return np.asarray(image, np.float32)
  kernel = gaussian_kernel_1d(sigma, kernel_size)
  radius = kernel_size // 2
  padded = np.pad(np.asarray(image, np.float64), ((radius, radius), (radius, radius), (0, 0)),
                  mode=_NUMPY_PAD_MODES[border])
  height, width = image.shape[:2]
  # Rows then columns; the kernel is symmetric, so correlation and convolution agree.
  rows = sum(kernel[i] * padded[i:i + height] for i in range(kernel_size))
  out = sum(kernel[i] * rows[:, i:i + width] for i in range(kernel_size))
  return out.astype(np.float32)


def quantize_8bit(image: np.ndarray) -> np.ndarray:
  """Clips to [0, 1] and rounds to the 256 levels of an 8-bit file."""
  return (np.round(np.clip(image, 0.0, 1.0) * 255.0) / 255.0).astype(np.float32)


def to_rgb(image: np.ndarray) -> np.ndarray:
  """HxW, HxWx1, HxWx3 or HxWx4 float image -> HxWx3 float32 (gray repeated, alpha dropped)."""
  image = np.asarray(image, np.float32)
  if image.ndim == 2:
    image = image[..., None]
  if image.ndim != 3 or image.shape[-1] not in (1, 3, 4):
    raise ValueError(f"Expected an HxW, HxWx1, HxWx3 or HxWx4 image, got shape {image.shape}")
  if image.shape[-1] == 1:
    image = np.repeat(image, 3, axis=-1)
  return image[..., :3]


def make_ground_truth(image: np.ndarray, config: ml_collections.ConfigDict) -> np.ndarray:
  """Source image ([0, 1] float) -> GT: resized to `gt_size` or mod-cropped to the scale."""
  image = to_rgb(image)
  if config.gt_size is not None:
    if tuple(image.shape[:2]) != tuple(config.gt_size):
      image = pil_resize(image, tuple(config.gt_size), config.gt_resample)
  else:
    height = image.shape[0] - image.shape[0] % config.scale
    width = image.shape[1] - image.shape[1] % config.scale
    if height == 0 or width == 0:
      raise ValueError(f"Image {image.shape[:2]} is smaller than the scale {config.scale}")
    image = image[:height, :width]
  return quantize_8bit(image) if config.quantize_8bit else image


def degrade(gt: np.ndarray, config: ml_collections.ConfigDict) -> np.ndarray:
  """GT -> LR: PIL bicubic down by `scale`, then Gaussian blur (the paper's order)."""
  height, width = gt.shape[:2]
  lr_size = (height // config.scale, width // config.scale)
  lr = pil_resize(gt, lr_size, config.downsample)
  lr = gaussian_blur(lr, config.blur_sigma, config.blur_kernel_size, config.blur_border)
  return quantize_8bit(lr) if config.quantize_8bit else lr


def make_pair(image: np.ndarray,
              config: ml_collections.ConfigDict) -> tuple[np.ndarray, np.ndarray]:
  """Source image -> (gt, lr) under the protocol."""
  gt = make_ground_truth(image, config)
  return gt, degrade(gt, config)


def scored_output(sr: np.ndarray, config: ml_collections.ConfigDict) -> np.ndarray:
  """A model's output as the protocol scores it: what a saved 8-bit file would hold, or (without
  8-bit quantisation) the output clipped to [0, 1]."""
  return quantize_8bit(sr) if config.quantize_8bit else np.clip(sr, 0.0, 1.0)


def bicubic_upscale(lr: np.ndarray, scale: int) -> np.ndarray:
  """The baseline 'model': PIL bicubic (a = -0.5) upsampling by `scale`."""
  height, width = lr.shape[:2]
  return pil_resize(lr, (height * scale, width * scale), "bicubic")


def protocol_summary(config: ml_collections.ConfigDict) -> dict:
  """The protocol as plain JSON-able data (tuples become lists), for result files."""
  return _jsonable(config.to_dict())


def _jsonable(value):
  if isinstance(value, dict):
    return {key: _jsonable(item) for key, item in value.items()}
  if isinstance(value, (tuple, list)):
    return [_jsonable(item) for item in value]
  if isinstance(value, np.generic):
    return value.item()
  return value


TEXTURE_NOTE = "; texture-area gradient ratio on the calm half of GT (Gaussian sigma 4)"


def describe(config: ml_collections.ConfigDict) -> str:
  """One line for a README: what GT and LR are and how the metrics are taken."""
  gt = (f"{config.gt_size[0]}x{config.gt_size[1]} (PIL Lanczos)" if config.gt_size is not None
        else "source size cropped to a multiple of the scale")
  m = config.metrics
  return (f"Protocol `{config.name}`: GT {gt}; LR = PIL bicubic (a=-0.5) x{config.scale} down, "
          f"then Gaussian blur sigma {config.blur_sigma}, {config.blur_kernel_size}x"
          f"{config.blur_kernel_size}, {config.blur_border} border"
          f"{'; 8-bit quantised' if config.quantize_8bit else ''}. Metrics on "
          f"{'RGB' if m.color_space == 'rgb' else 'Y (BT.601)'}, {m.crop_border} px border "
          f"cropped; SSIM Gaussian window {m.ssim_window}, sigma {m.ssim_sigma}"
          f"{TEXTURE_NOTE if m.get('texture') else ''}.")
