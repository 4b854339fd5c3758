"""STARE retinal fundus images (training set of the paper's retina model).

397 colour fundus photographs `im0001` .. `im0402` (five numbers are missing), 700x605, 8-bit
PPM, usually distributed gzipped (`im0001.ppm.gz`).
"""

from __future__ import annotations

import pathlib
import re

import numpy as np

from jaxsr.data.builders import base

_NAME = re.compile(r"im\d{4}\.ppm(\.gz)?", re.IGNORECASE)


class Stare(base.ManualImageBuilder):
  """STARE fundus images, split `train`."""

  SPLIT = "train"
  CHANNELS = 3
  DTYPE = np.uint8
  EXPECTED_COUNT = 397
  DESCRIPTION = "STARE: 397 colour retinal fundus images, 700x605 (Hoover et al.)."
  HOMEPAGE = "https://cecas.clemson.edu/~ahoover/stare/"
  CITATION = """@article{hoover2000stare,
  title={Locating blood vessels in retinal images by piecewise threshold probing of a matched
         filter response},
  author={Hoover, A. and Kouznetsova, V. and Goldbaum, M.},
  journal={IEEE Transactions on Medical Imaging}, volume={19}, number={3}, year={2000}}"""
  MANUAL_DOWNLOAD_INSTRUCTIONS = """\
  Download the full STARE image set (all 397 images) from
  https://cecas.clemson.edu/~ahoover/stare/ and unpack it into `manual_dir`, in any sub-folder.
  The files must keep their official names, `im0001.ppm.gz` .. `im0402.ppm.gz` (gzipped or not).
  """

  def find_sources(self, manual_dir: pathlib.Path) -> list[pathlib.Path]:
    paths = base.find_files(
        manual_dir, "im*", self.MANUAL_DOWNLOAD_INSTRUCTIONS,
        keep=lambda p: _NAME.fullmatch(p.name) is not None)
    base.warn_if_unexpected_count("STARE", paths, self.EXPECTED_COUNT)
    return paths
