"""Fine-tune Real-ESRGAN x4plus on the Shenzhen chest X-rays (the paper's chest model).

    python -m jaxsr.data.builders shenzhen/multiscale --manual_dir ~/downloads/ChinaSet_AllFiles
    python -m jaxsr.train --config configs/shenzhen.py --workdir runs/shenzhen

Expects models/RealESRGAN_x4plus, models/RealESRGAN_x4plus_netD and models/vgg19 converted with
`python -m jaxsr.convert`, and the TFDS `shenzhen/multiscale` dataset (662 radiographs + Lanczos
0.75, 0.5, 1/3 and shortest-edge-400 copies = 3,310 images). Batch 10, 16,600 iterations
(~50 epochs); random 400x400 GT windows feed the degradation; GT crops 256, LR 64.
"""

from jaxsr.train.config import base_config


def get_config():
  config = base_config()
  config.total_steps = 16_600
  config.batch_size = 10
  config.data.source = "tfds:shenzhen/multiscale"
  return config
