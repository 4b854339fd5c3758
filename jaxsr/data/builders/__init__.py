"""TFDS builders for the paper's data sets; importing this package registers them with TFDS.

  stare                        train  397 retinal fundus images (RGB, 8-bit)
  shenzhen/{original,multiscale} train  662 / 3,310 chest X-rays (gray, stored 16-bit)
  drive                        test   40 retinal fundus images (RGB, 8-bit)
  nih_chest_xray14/random40_seed0  test  a seeded subset of ChestX-ray14 (gray, stored 16-bit)

All read an unpacked official download from `manual_dir`; see each builder's
`MANUAL_DOWNLOAD_INSTRUCTIONS`.
"""

from jaxsr.data.builders.drive import Drive
from jaxsr.data.builders.nih import NihChestXray14
from jaxsr.data.builders.nih import NihSubsetConfig
from jaxsr.data.builders.shenzhen import Shenzhen
from jaxsr.data.builders.shenzhen import ShenzhenConfig
from jaxsr.data.builders.stare import Stare

__all__ = ["Drive", "NihChestXray14", "NihSubsetConfig", "Shenzhen", "ShenzhenConfig", "Stare"]
