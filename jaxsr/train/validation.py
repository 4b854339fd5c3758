"""Held-out scores of the EMA generator while it trains, and what the trainer does with them.

A 64x64 thumbnail of a radiograph has no radiograph texture left, so scores on thumbnails say
little about what fine-tuning does to fine detail. Instead each held-out image becomes the pair of
an evaluation protocol (`jaxsr.evaluate.protocols`) at that protocol's full resolution (chest-x4:
GT 1024, LR 256; retina-x2: GT 512, LR 256), and a few fixed windows of it are scored, chosen
among the non-overlapping grid cells of the GT, background excluded (`select_windows`). With
`windows="strata"` (the default) the cells are split by mean intensity into as many groups as
windows and each group gives its most textured cell, so the windows hold texture (where invented
texture, lost detail or smoothing show) across the image's intensity range; `"texture"` takes
the most textured cells wherever they are. The difference matters for the bias: the demo's
fine-tuned x4plus is +1.07 levels bright on the whole chest radiograph RG1, mostly in the lung
fields (+2.6 to +3.9 on 256-px cells over them); its two most textured 192-px cells (the top
corners) are -0.36, its two intensity strata +1.54. The windows are chosen once, at start, from
the GT alone, so every validation of a run scores the same pixels.

The network output of a crop is treated the way `jaxsr.evaluate` treats a network
(`jaxsr.evaluate.models`, `jaxsr.infer.upscaler`): clipped to [0, 1], for a gray image reduced to
its BT.601 luma, and, where the protocol's scale is not the network's (x4 network, retina-x2),
resized to the protocol's scale with PIL Lanczos-3. It is then quantised to 8 bits
(`protocols.scored_output`) and scored with the protocol's metrics (border of `scale` pixels
cropped; LPIPS and the fundus vessel scores are left to the final evaluation: LPIPS takes seconds
per call on a CPU, and the vessel scores need the whole field of view). The metrics include
`bias` = mean(SR) - mean(GT) over the scored pixels, in signed 8-bit levels: it shows intensity
drift, which PSNR mixes up with every other error.

The protocol "custom" keeps the old geometry: the whole image Lanczos-resized to the training GT
size, at the network's scale (fast, but a thumbnail); its output is treated like the crops' (a
gray image's luma is scored).

`GuardRails` turns the scores into console warnings (intensity drift, texture hallucination) and
`EarlyStopping` decides when the best score has stopped improving; both are pure bookkeeping so
they can be tested without training.
"""

from __future__ import annotations

import dataclasses
from typing import Callable, Iterator, Optional, Sequence

import jax
import ml_collections
import numpy as np

from jaxsr.data import source_specs
from jaxsr.evaluate import metrics, protocols

AUTO = "auto"
CUSTOM = "custom"
# "auto" picks per image: a gray image (all channels equal) is taken for a radiograph, a colour
# one for a fundus photograph, the two kinds the paper evaluates.
AUTO_PROTOCOLS = {True: "chest-x4", False: "retina-x2"}
# A crop window whose GT mean is at most this is background (the black surround of a fundus
# photograph, the collimation edge of a radiograph): scored only when nothing else is left.
BACKGROUND_MEAN = 0.05
# BT.601 luma weights: what `jaxsr.infer.upscaler` keeps of a network's output for a gray input
# (the same constant; repeated here so that importing validation does not load the upscaler).
LUMA_BT601 = np.array([0.299, 0.587, 0.114], np.float32)


def held_out_images(spec: str, max_images: int
                    ) -> Iterator[tuple[str, np.ndarray, Optional[str]]]:
  """(name, HxWx3 float32 in [0, 1], the source's protocol for it or None) of the first
  `max_images` images of a data source (any `source_specs` spec), read as evaluation reads them."""
  images = source_specs.open_source(spec, split="test")
  for index in range(min(len(images), max_images)):
    yield images.name(index), images.read_float(index), images.protocol(index)


def is_gray(image: np.ndarray) -> bool:
  """Whether an HxWx3 image has three equal channels (a gray image read as RGB)."""
  return bool(np.array_equal(image[..., 0], image[..., 1])
              and np.array_equal(image[..., 0], image[..., 2]))


def protocol_name(requested: str, image: np.ndarray, source_protocol: Optional[str] = None) -> str:
  """The protocol an image is validated under: `requested`; for "auto" the one its source names
  (`ImageSource.protocol`), else by its colour."""
  if requested == AUTO:
    return source_protocol or AUTO_PROTOCOLS[is_gray(image)]
  if requested not in protocols.PROTOCOL_NAMES:
    raise ValueError(f"validation.protocol must be 'auto' or one of {protocols.PROTOCOL_NAMES}, "
                     f"got {requested!r}")
  return requested


# `validation.windows`: how `select_windows` picks its cells.
WINDOW_CHOICES = ("strata", "texture")


def check_window_choice(choice: str) -> None:
  if choice not in WINDOW_CHOICES:
    raise ValueError(f"validation.windows must be one of {WINDOW_CHOICES}, got {choice!r}")


def select_windows(gt: np.ndarray, cell: int, count: int, border: int = 0,
                   choice: str = "texture") -> list[tuple[int, int]]:
  """(top, left) GT corners of the `count` grid cells of side `cell` to score.

  The GT is tiled from its top-left corner into non-overlapping `cell` x `cell` cells (a partial
  row or column at the bottom/right is left out). Each cell is judged by what the metrics will
  see of it, its inside without `border` pixels on each side: cells whose mean is above
  `BACKGROUND_MEAN` come first, each group ordered by mean squared Sobel gradient magnitude
  (`metrics.gradient_energy`), largest first; ties keep raster order. So the windows hold the
  most texture the image has, and background only if too little else is left. Flat cells are
  never picked (their gradient ratio would divide by zero), so an image may give fewer than
  `count` windows, or none.

  `choice="strata"`: the non-background, non-flat cells ordered by mean intensity (ties in raster
  order) are split into `count` consecutive groups as equal in size as `np.array_split` makes
  them, and each group gives its most textured cell (ties: the darker, then raster order), so the
  windows span the image's intensity range and an intensity drift of part of it shows in their
  mean bias. Fewer such cells than `count`: the texture order fills up the rest.

  Raises:
    ValueError: if not one cell fits into the image, or `choice` is not one of WINDOW_CHOICES.
  """
  check_window_choice(choice)
  rows, cols = gt.shape[0] // cell, gt.shape[1] // cell
  if rows == 0 or cols == 0 or cell <= 2 * border:
    raise ValueError(f"a {cell}x{cell} GT window does not fit into a {gt.shape[:2]} GT; lower "
                     "validation.crop")
  inside = np.asarray(gt[:rows * cell, :cols * cell], np.float32).reshape(
      rows, cell, cols, cell, -1).swapaxes(1, 2).reshape(rows * cols, cell, cell, -1)
  inside = inside[:, border:cell - border, border:cell - border]
  energy = np.asarray(jax.vmap(metrics.sobel_gradient_energy_map)(inside), np.float64).mean(
      axis=(1, 2, 3))
  mean = inside.mean(axis=(1, 2, 3), dtype=np.float64)
  bright = mean > BACKGROUND_MEAN
  index = np.arange(rows * cols)
  # np.lexsort sorts by its last key first: bright cells, then energy; the index breaks ties.
  order = np.lexsort((index, -energy, ~bright))
  order = order[energy[order] > 0]
  picked: list[int] = []
  if choice == "strata":
    candidates = index[bright & (energy > 0)]
    candidates = candidates[np.lexsort((candidates, mean[candidates]))]  # By intensity.
    if len(candidates):
      for group in np.array_split(candidates, min(count, len(candidates))):
        # The group is in intensity order, so argmax's first maximum is the darker cell.
        picked.append(int(group[np.argmax(energy[group])]))
  picked += [int(i) for i in order if int(i) not in picked][:count - len(picked)]
  return [(i // cols * cell, i % cols * cell) for i in picked]


@dataclasses.dataclass(frozen=True)
class Crop:
  """One scored window: where it lies in its image's protocol GT, and how it is scored."""

  image: str  # The held-out image's name.
  protocol: str  # The protocol of its pair.
  top: int  # GT window, in GT pixels of the protocol's pair.
  left: int
  height: int
  width: int
  gray: bool  # A gray image: the output's luma is scored (as jaxsr.evaluate does).


class Validation:
  """Fixed held-out (LR, GT) crops and their scorers; call with a forward function."""

  def __init__(self, config: ml_collections.ConfigDict, *, gt_size: int, scale: int,
               local_batch: int):
    """Makes the crops.

    Args:
      config: `config.validation`: `data` (a source spec), `max_images`, `protocol`, `crop`,
        `crops_per_image`, `windows` (see `jaxsr.train.config`; without `windows`, "texture").
      gt_size: the training GT size ("custom" only).
      scale: the generator's scale.
      local_batch: this host's rows of a training batch; the stacked crops are padded to a
        multiple of it, so they split evenly over this host's devices.
    """
    requested = config.protocol
    crop, per_image = config.crop, config.crops_per_image
    choice = config.get("windows", "texture")
    check_window_choice(choice)  # Before any image is read (the "custom" protocol never picks).
    if crop < 1 or per_image < 1:
      raise ValueError(f"validation.crop ({crop}) and crops_per_image ({per_image}) must be >= 1")
    self._protocols: dict[str, ml_collections.ConfigDict] = {}
    self._suites: dict[str, metrics.ImageMetrics] = {}
    self.crops: list[Crop] = []
    self.gts: list[np.ndarray] = []
    lrs, images = [], 0
    for name, image, source_protocol in held_out_images(config.data, config.max_images):
      images += 1
      gray = is_gray(image)
      protocol = self._protocol(protocol_name(requested, image, source_protocol), gt_size, scale)
      gt, lr = protocols.make_pair(image, protocol)
      if protocol.name == CUSTOM:  # The whole (thumbnail) image.
        windows, (height, width) = [(0, 0)], gt.shape[:2]
      else:
        height = width = crop * protocol.scale
        windows = select_windows(gt, height, per_image, border=protocol.metrics.crop_border,
                                 choice=choice)
      for top, left in windows:
        self.crops.append(Crop(name, protocol.name, top, left, height, width, gray))
        self.gts.append(gt[top:top + height, left:left + width])
        s = protocol.scale
        lrs.append(lr[top // s:(top + height) // s, left // s:(left + width) // s])
    if not images:
      raise ValueError(f"validation.data {config.data!r} holds no images")
    if not lrs:
      raise ValueError(f"the images of validation.data {config.data!r} are flat: nothing to score")
    self.num_images = images
    lrs = np.stack(lrs).astype(np.float32)  # All crops have one LR shape: one compile.
    # Whole multiples of the per-host batch: the padding rows are copies of crop 0.
    padded = -(-len(lrs) // local_batch) * local_batch
    self.lq = np.concatenate([lrs, np.repeat(lrs[:1], padded - len(lrs), axis=0)])
    self._scorers = [self._suites[c.protocol].against(gt) for c, gt in zip(self.crops, self.gts)]
    self.names = self._suites[self.crops[0].protocol].names
    self.baseline = self._mean_scores(
        [protocols.bicubic_upscale(lr, self._protocols[c.protocol].scale)
         for c, lr in zip(self.crops, lrs)], prefix="val_bicubic/")

  def _protocol(self, name: str, gt_size: int, scale: int) -> ml_collections.ConfigDict:
    if name not in self._protocols:
      if name == CUSTOM:
        protocol = protocols.get_protocol(CUSTOM, scale=scale, gt_size=(gt_size, gt_size))
      else:
        protocol = protocols.get_protocol(name)
      protocol.metrics.lpips_net = ""  # Seconds per call on a CPU; the final evaluation has it.
      protocol.metrics.vessel = False  # Needs the whole fundus (field of view), not a crop.
      # The texture areas are the calm half of a whole radiograph; a window picked for its
      # texture has few. The final evaluation scores it; here every protocol logs the same keys.
      protocol.metrics.texture = False
      self._protocols[name] = protocol
      self._suites[name] = metrics.ImageMetrics(protocol.metrics)
    return self._protocols[name]

  @property
  def protocol_names(self) -> list[str]:
    """The protocols of the crops, in order of first appearance."""
    return list(dict.fromkeys(c.protocol for c in self.crops))

  def __len__(self) -> int:
    """The number of scored crops."""
    return len(self.crops)

  def outputs(self, forward: Callable[[np.ndarray], np.ndarray]) -> list[np.ndarray]:
    """Each crop's output as `jaxsr.evaluate` would see it, before the 8-bit quantisation.

    `forward(lq [N, h, w, 3]) -> sr [N, s*h, s*w, 3]` (NumPy, this host's rows; s = the network's
    scale) runs once on all crops (`self.lq`). Each output is clipped to [0, 1], reduced to its
    luma for a gray image, and resized to its GT window with PIL Lanczos-3 where the protocol's
    scale is not the network's.
    """
    raw = np.asarray(forward(self.lq), np.float32)
    if raw.shape[0] != len(self.lq):
      raise ValueError(f"forward returned {raw.shape[0]} rows for {len(self.lq)} crops")
    return [self._as_evaluated(sr, crop) for sr, crop in zip(raw, self.crops)]

  @staticmethod
  def _as_evaluated(sr: np.ndarray, crop: Crop) -> np.ndarray:
    sr = np.clip(sr, 0.0, 1.0)
    if crop.gray:
      sr = np.sum(sr * LUMA_BT601, axis=-1, keepdims=True)
    if sr.shape[:2] != (crop.height, crop.width):
      sr = protocols.pil_resize(sr, (crop.height, crop.width), "lanczos")
    return np.repeat(sr, 3, axis=-1) if crop.gray else sr

  def __call__(self, forward: Callable[[np.ndarray], np.ndarray]) -> dict[str, float]:
    """Mean scores of `forward`'s outputs (see `outputs`) as {"val/<metric>": value}."""
    return self._mean_scores(self.outputs(forward), prefix="val/")

  def _mean_scores(self, outputs: Sequence[np.ndarray], prefix: str) -> dict[str, float]:
    """Per-crop scores, averaged over all crops (each crop weighs the same); with more than
    one protocol also per protocol, as "<prefix><protocol>/<metric>"."""
    per_crop = []
    for crop, score, sr in zip(self.crops, self._scorers, outputs):
      protocol = self._protocols[crop.protocol]
      scored = protocols.scored_output(sr, protocol)
      per_crop.append(score(scored))
    groups = {"": per_crop}
    if len(self.protocol_names) > 1:
      groups.update({f"{name}/": [s for c, s in zip(self.crops, per_crop) if c.protocol == name]
                     for name in self.protocol_names})
    return {prefix + group + name: float(np.mean([s[name] for s in scores]))
            for group, scores in groups.items() for name in self.names}


# ---- guard-rails.

# |bias| must also have grown by more than this many levels since step 0 before it is called a
# drift: a generator that starts with a constant offset has not drifted.
BIAS_GROWTH_LEVELS = 0.5


def guard_rail_warnings(step: int, values: dict[str, float], reference: Optional[dict[str, float]],
                        *, warn_bias_levels: float, warn_gradient_ratio: float) -> list[str]:
  """Warning lines for one validation's scores, compared with step 0's; [] if all is well.

  Args:
    step: the validation's step (step 0 is the reference, never warned about).
    values: its scores, with "val/bias" and "val/grad_ratio".
    reference: step 0's scores in the same form, or None when unknown (nothing is compared).
    warn_bias_levels: warn of intensity drift when |bias| exceeds this many 8-bit levels and has
      grown by more than `BIAS_GROWTH_LEVELS` since step 0; <= 0: no check.
    warn_gradient_ratio: warn of texture hallucination when the SR/GT gradient-energy ratio
      exceeds this and has grown since step 0; <= 0: no check. (A falling ratio, i.e.
      smoothing, costs PSNR/HFEN already; only the high side gets a warning.)
  """
  if step == 0 or reference is None:
    return []
  warnings = []
  bias, bias0 = values.get("val/bias"), reference.get("val/bias")
  if (warn_bias_levels > 0 and bias is not None and bias0 is not None
      and abs(bias) > warn_bias_levels and abs(bias) - abs(bias0) > BIAS_GROWTH_LEVELS):
    warnings.append(
        f"warning: step {step}: intensity drift: the held-out output is {bias:+.2f} levels "
        f"{'brighter' if bias > 0 else 'darker'} than the ground truth on average (step 0: "
        f"{bias0:+.2f}); limit validation.warn_bias_levels = {warn_bias_levels}")
  ratio, ratio0 = values.get("val/grad_ratio"), reference.get("val/grad_ratio")
  if (warn_gradient_ratio > 0 and ratio is not None and ratio0 is not None
      and ratio > warn_gradient_ratio and ratio > ratio0):
    warnings.append(
        f"warning: step {step}: texture hallucination: the held-out output has {ratio:.2f}x the "
        f"ground truth's gradient energy (step 0: {ratio0:.2f}x); limit "
        f"validation.warn_gradient_ratio = {warn_gradient_ratio}")
  return warnings


# ---- the best score, and early stopping.

# How a selectable best_metric ranks values: a larger key is better. The gradient ratio is best at
# 1, where neither blur (< 1) nor invented texture (> 1) wins, so "the best so far" is not a
# ranking of it and it cannot be selected.
_RANK_KEYS = {
    "psnr": lambda v: v,
    "ssim": lambda v: v,
    "hfen": lambda v: -v,
    "bias": lambda v: -abs(v),  # The smallest drift either way.
}
BEST_METRICS = tuple(_RANK_KEYS)


def check_best_metric(metric: str) -> None:
  if metric not in _RANK_KEYS:
    raise ValueError(f"validation.best_metric must be one of {sorted(_RANK_KEYS)} or '', "
                     f"got {metric!r}")


def is_better(metric: str, value: float, best: Optional[float]) -> bool:
  """Whether `value` of `metric` improves on `best` (None: nothing to beat yet)."""
  check_best_metric(metric)
  if best is None:
    return True
  return _RANK_KEYS[metric](value) > _RANK_KEYS[metric](best)


class EarlyStopping:
  """The best score of `metric` so far, and how many validations in a row did not beat it.

  Equal is not better, so a generator that stops changing (e.g. learning rate 0) runs out of
  patience. A resumed run passes in what run.json remembers (`best`, `best_step`, `since_best`).
  """

  def __init__(self, metric: str, patience: int = 0, *, best: Optional[float] = None,
               best_step: Optional[int] = None, since_best: int = 0):
    """`patience`: validations without improvement before `update` says stop; 0: never."""
    check_best_metric(metric)
    if patience < 0:
      raise ValueError(f"validation.early_stop_patience must be >= 0, got {patience}")
    self.metric, self.patience = metric, patience
    self.best, self.best_step, self.since_best = best, best_step, since_best

    self.improved = False  # Whether the last `update` set a new best.

  def update(self, value: float, step: Optional[int] = None) -> bool:
    """Takes one validation's score; True when training should stop."""
    self.improved = is_better(self.metric, value, self.best)
    if self.improved:
      self.best, self.best_step, self.since_best = value, step, 0
    else:
      self.since_best += 1
    return 0 < self.patience <= self.since_best
