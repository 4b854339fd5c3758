"""Fine-tune Real-ESRGAN x4plus on STARE fundus photographs (the paper's retina model).

    python -m jaxsr.data.builders stare --manual_dir ~/downloads/stare   # once (see its instructions)
    python -m jaxsr.train --config configs/stare.py --workdir runs/stare

Expects models/RealESRGAN_x4plus, models/RealESRGAN_x4plus_netD and models/vgg19 converted with
`python -m jaxsr.convert` (or set --config.generator.init=RealESRGAN_x4plus.pth etc.), and the
TFDS `stare` dataset prepared in the default TFDS data dir (or --config.data.data_dir).
Batch 10, 3,000 iterations (~75 epochs of 397 images), GT crops 256, LR 64.
"""

from jaxsr.train.config import base_config


def get_config():
  config = base_config()
  config.total_steps = 3000
  config.batch_size = 10
  config.data.source = "tfds:stare"
  return config
