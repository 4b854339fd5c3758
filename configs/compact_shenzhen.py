"""Fine-tune the compact Real-ESRGAN generator (SRVGGNetCompact) on the Shenzhen chest X-rays.

    python -m jaxsr.convert realesr-general-x4v3.pth -o models/realesr-general-x4v3
    python -m jaxsr.data.builders shenzhen/multiscale --manual_dir ~/downloads/ChinaSet_AllFiles
    python -m jaxsr.train --config configs/compact_shenzhen.py --workdir runs/compact_shenzhen

The paper's chest recipe (configs/shenzhen.py: the same data, losses, optimiser and
degradation) with the x4plus generator swapped for realesr-general-x4v3: 32 convolutions of 64
features at the input resolution, about 1/20 of x4plus's FLOPs per pixel, so a clinic without a
GPU can run the fine-tuned model (`python -m jaxsr.upscale` picks its exact tile pad itself). The
discriminator and VGG19 are the paper's (models/RealESRGAN_x4plus_netD, models/vgg19).
"""

from jaxsr.train.config import COMPACT_ARCH, base_config


def get_config():
  config = base_config()
  config.total_steps = 16_600
  config.batch_size = 10
  config.generator.init = "models/realesr-general-x4v3"
  config.generator.arch = dict(COMPACT_ARCH, num_conv=32)
  config.data.source = "tfds:shenzhen/multiscale"
  return config
