"""Real-ESRGAN's high-order degradation as TensorFlow ops for tf.data (host CPU only).

`degrade(gt, seed, config)` turns a GT image into an (lq, gt, gt_usm) training triple; see
`pipeline` for the steps and where they differ from the PyTorch original, `config` for every
number.
"""

import tensorflow as tf

# TF only feeds the input pipeline; the accelerators belong to JAX. Hiding them must happen
# before TF initialises its devices, so it is done on import; a process where TF is already
# initialised keeps its setting.
try:
  tf.config.set_visible_devices([], "GPU")
except RuntimeError:
  pass

# pylint: disable=g-import-not-at-top,wrong-import-position
from jaxsr.degradation.config import default_config
from jaxsr.degradation.pipeline import degrade

__all__ = ["default_config", "degrade"]
