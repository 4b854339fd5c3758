"""A seeded random subset of NIH ChestX-ray14 (the paper's chest test set).

ChestX-ray14 holds 112,120 frontal chest radiographs, 1024x1024 8-bit PNG (a few RGBA), shipped
as `images_001.tar.gz` .. `images_012.tar.gz` that each unpack to `images/`. The paper tests on
40 random images without saying which; the config names the count and the seed so a subset can
be reproduced and reported.
"""

from __future__ import annotations

import dataclasses
import pathlib

import numpy as np
import tensorflow_datasets as tfds

from jaxsr.data.builders import base


@dataclasses.dataclass(eq=False)
class NihSubsetConfig(tfds.core.BuilderConfig):
  """`num_images` drawn without replacement with `np.random.default_rng(seed)`; 0 takes all."""

  num_images: int = 40
  seed: int = 0


def choose_subset(
    paths: list[pathlib.Path], num_images: int, seed: int) -> list[pathlib.Path]:
  """`num_images` of `paths` (sorted by name first), drawn by seed, returned in name order."""
  paths = sorted(paths, key=lambda p: p.name)
  if not num_images:
    return paths
  if num_images > len(paths):
    raise ValueError(f"asked for {num_images} images but only {len(paths)} were found")
  chosen = np.random.default_rng(seed).choice(len(paths), size=num_images, replace=False)
  return [paths[i] for i in sorted(chosen)]


def _in_images_folder(path: pathlib.Path) -> bool:
  return any(part.lower().startswith("images") for part in path.parent.parts)


class NihChestXray14(base.ManualImageBuilder):
  """NIH ChestX-ray14, a seeded subset in split `test` (default: 40 images, seed 0)."""

  SPLIT = "test"
  CHANNELS = 1
  DTYPE = np.uint16
  BUILDER_CONFIGS = [
      NihSubsetConfig(name="random40_seed0", num_images=40, seed=0,
                      description="40 random images (seed 0), the size of the paper's test set."),
      NihSubsetConfig(name="all", num_images=0, description="All 112,120 images."),
  ]
  DESCRIPTION = "NIH ChestX-ray14: frontal chest radiographs, 1024x1024 PNG (Wang et al.)."
  HOMEPAGE = "https://nihcc.app.box.com/v/ChestXray-NIHCC"
  CITATION = """@inproceedings{wang2017chestx,
  title={ChestX-ray8: Hospital-scale chest X-ray database and benchmarks on weakly-supervised
         classification and localization of common thorax diseases},
  author={Wang, X. and Peng, Y. and Lu, L. and Lu, Z. and Bagheri, M. and Summers, R. M.},
  booktitle={CVPR}, year={2017}}"""
  MANUAL_DOWNLOAD_INSTRUCTIONS = """\
  Download the image archives `images_001.tar.gz` .. `images_012.tar.gz` (all or some) from
  https://nihcc.app.box.com/v/ChestXray-NIHCC and unpack them into `manual_dir`: the PNGs
  (`00000001_000.png`, ...) must sit in a folder whose name starts with `images`, e.g.
  `images/` or Kaggle's `images_001/images/`. The subset is drawn from the files found, so
  the same files and the same seed give the same subset.
  """

  def find_sources(self, manual_dir: pathlib.Path) -> list[pathlib.Path]:
    paths = base.find_files(
        manual_dir, "*.png", self.MANUAL_DOWNLOAD_INSTRUCTIONS,
        keep=lambda p: _in_images_folder(p.relative_to(manual_dir)))
    return choose_subset(paths, self.builder_config.num_images, self.builder_config.seed)
