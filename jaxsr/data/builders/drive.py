"""DRIVE retinal fundus images (the paper's retina test set).

40 colour fundus photographs, 565x584, 8-bit TIFF: `training/images/21_training.tif` ..
`40_training.tif` and `test/images/01_test.tif` .. `20_test.tif` as the official zip unpacks.
The paper evaluates on all 40, so they form one `test` split (`file_name` tells them apart).
"""

from __future__ import annotations

import pathlib

import numpy as np

from jaxsr.data.builders import base


class Drive(base.ManualImageBuilder):
  """DRIVE fundus images, training and test halves together in split `test`."""

  SPLIT = "test"
  CHANNELS = 3
  DTYPE = np.uint8
  EXPECTED_COUNT = 40
  DESCRIPTION = "DRIVE: 40 colour retinal fundus images, 565x584 (Staal et al.)."
  HOMEPAGE = "https://drive.grand-challenge.org/"
  CITATION = """@article{staal2004drive,
  title={Ridge-based vessel segmentation in color images of the retina},
  author={Staal, J. and Abramoff, M. D. and Niemeijer, M. and Viergever, M. A. and
          van Ginneken, B.},
  journal={IEEE Transactions on Medical Imaging}, volume={23}, number={4}, year={2004}}"""
  MANUAL_DOWNLOAD_INSTRUCTIONS = """\
  Download DRIVE (`DRIVE.zip`, registration required) from https://drive.grand-challenge.org/
  and unpack it into `manual_dir`. The fundus images must be in `training/images/*.tif` and
  `test/images/*.tif` (any parent folder, e.g. `DRIVE/training/images/21_training.tif`); the
  masks and manual segmentations are not used.
  """

  def find_sources(self, manual_dir: pathlib.Path) -> list[pathlib.Path]:
    paths = base.find_files(
        manual_dir, "*.tif", self.MANUAL_DOWNLOAD_INSTRUCTIONS,
        keep=lambda p: p.parent.name == "images" and p.parent.parent.name in ("training", "test"))
    base.warn_if_unexpected_count("DRIVE", paths, self.EXPECTED_COUNT)
    return paths
