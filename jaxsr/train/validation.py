"""Held-out scores of the EMA generator while it trains (PSNR, SSIM, HFEN, gradient ratio).

The held-out pairs follow the evaluation's `custom` protocol (`jaxsr.evaluate.protocols`): each
image is Lanczos-resized to the training GT size, bicubic-downscaled by the network's scale and
blurred; the EMA output is clipped and quantised to 8 bits, and scored with
`jaxsr.evaluate.metrics` (border of `scale` pixels cropped). The pairs are made once, at start.

They are fed through the trainer's EMA forward in chunks of the per-host training batch, so
validation reuses the executable the image summaries already compiled (one compile for both), and
the scores do not depend on how many devices or hosts run it. Scores of the bicubic baseline on
the same pairs are returned once (`baseline`), so the curves have their reference.
"""

from __future__ import annotations

from typing import Callable, Iterator, Optional

import ml_collections
import numpy as np

from jaxsr.data import decode
from jaxsr.data import source as source_lib
from jaxsr.evaluate import metrics, protocols


def held_out_images(spec: str, max_images: int) -> Iterator[tuple[str, np.ndarray]]:
  """(name, HxWx3 float32 in [0, 1]) of the first `max_images` images of a data source."""
  images = source_lib.open_source(spec, split="test")
  for index in range(min(len(images), max_images)):
    yield images.name(index), decode.to_float_rgb(images.read(index))


class Validation:
  """Fixed held-out (LR, GT) pairs and their scorers; call with a forward function."""

  def __init__(self, config: ml_collections.ConfigDict, *, gt_size: int, scale: int,
               local_batch: int):
    """`config`: `data` (a source spec), `max_images`; pairs are `gt_size` GT at x`scale`."""
    self.protocol = protocols.get_protocol("custom", scale=scale, gt_size=(gt_size, gt_size))
    self.protocol.metrics.lpips_net = ""  # Seconds per call on a CPU; the final evaluation has it.
    suite = metrics.ImageMetrics(self.protocol.metrics)
    pairs = [protocols.make_pair(image, self.protocol)
             for _, image in held_out_images(config.data, config.max_images)]
    if not pairs:
      raise ValueError(f"validation.data {config.data!r} holds no images")
    self.names = suite.names
    self.gts = np.stack([gt for gt, _ in pairs])
    lrs = np.stack([lr for _, lr in pairs]).astype(np.float32)
    # Whole chunks of the training batch shape: the last one is filled with copies of image 0.
    padded = -(-len(lrs) // local_batch) * local_batch
    self.chunks = np.concatenate([lrs, np.repeat(lrs[:1], padded - len(lrs), axis=0)]).reshape(
        -1, local_batch, *lrs.shape[1:])
    self._scorers = [suite.against(gt) for gt in self.gts]
    self.baseline = self._mean_scores(
        [protocols.bicubic_upscale(lr, scale) for lr in lrs], prefix="val_bicubic/")

  def __len__(self) -> int:
    return len(self.gts)

  def __call__(self, forward: Callable[[np.ndarray], np.ndarray]) -> dict[str, float]:
    """`forward(lq [B, h, w, 3]) -> sr [B, H, W, 3]` (NumPy, this host's rows) -> mean scores."""
    outputs = np.concatenate([np.asarray(forward(chunk), np.float32) for chunk in self.chunks])
    return self._mean_scores(outputs[:len(self)], prefix="val/")

  def _mean_scores(self, outputs, prefix: str) -> dict[str, float]:
    scores = [score(protocols.scored_output(sr, self.protocol))
              for score, sr in zip(self._scorers, outputs)]
    return {prefix + name: float(np.mean([s[name] for s in scores])) for name in self.names}


# Which way is better, for the metrics a validation reports.
HIGHER_IS_BETTER = {"psnr": True, "ssim": True, "hfen": False}


def check_best_metric(metric: str) -> None:
  if metric not in HIGHER_IS_BETTER:
    raise ValueError(f"validation.best_metric must be one of {sorted(HIGHER_IS_BETTER)} or '', "
                     f"got {metric!r}")


def is_better(metric: str, value: float, best: Optional[float]) -> bool:
  """Whether `value` of `metric` improves on `best` (None: nothing to beat yet)."""
  check_best_metric(metric)
  if best is None:
    return True
  return value > best if HIGHER_IS_BETTER[metric] else value < best
