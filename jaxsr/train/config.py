"""The fine-tuning recipe every config starts from (Real-ESRGAN's finetune_realesrgan_x4plus.yml).

`configs/*.py` call `base_config()` and override what their dataset needs. All values can also be
overridden on the command line: `--config.total_steps=100 --config.batch_size=4`.
"""

from __future__ import annotations

import ml_collections

from jaxsr.data import input_pipeline

PRETRAINED_HOWTO = (
    "download the official release files from https://github.com/xinntao/Real-ESRGAN/releases "
    "(RealESRGAN_x4plus.pth, RealESRGAN_x4plus_netD.pth) and either point the config at them "
    "(--config.generator.init=RealESRGAN_x4plus.pth; they are converted on first use) or convert "
    "them once with `python -m jaxsr.convert FILE -o models/NAME`")


def base_config() -> ml_collections.ConfigDict:
  config = ml_collections.ConfigDict()
  config.seed = 0
  config.total_steps = 3000
  config.batch_size = 10  # Global, over all devices and hosts.
  config.compute_dtype = "float32"  # "bfloat16" on GPU/TPU; params and optimiser stay float32.

  # Starting weights: a jaxsr model directory, a .pth/.param file (converted on first use), or ""
  # for a fresh initialisation with `arch`.
  config.generator = ml_collections.ConfigDict(dict(
      init="models/RealESRGAN_x4plus", howto=PRETRAINED_HOWTO,
      arch=dict(scale=4, num_feat=64, num_block=23, num_grow_ch=32)))
  config.discriminator = ml_collections.ConfigDict(dict(
      init="models/RealESRGAN_x4plus_netD", howto=PRETRAINED_HOWTO, num_feat=64))
  config.perceptual = ml_collections.ConfigDict(dict(
      network="vgg19", checkpoint="models/vgg19",
      layer_weights={"conv1_2": 0.1, "conv2_2": 0.1, "conv3_4": 1.0, "conv4_4": 1.0,
                     "conv5_4": 1.0}))
  config.loss = ml_collections.ConfigDict(dict(pixel_weight=1.0, perceptual_weight=1.0,
                                               gan_weight=0.1))
  config.optimizer = ml_collections.ConfigDict(dict(lr=1e-4, b1=0.9, b2=0.99, eps=1e-8))
  config.ema_decay = 0.999

  config.data = input_pipeline.default_config()
  config.data.source = ""  # "tfds:NAME[/CONFIG]" (prepared with data_dir) or an image folder.

  # Held-out scores of the EMA generator (PSNR, SSIM, HFEN, gradient ratio; bicubic as the
  # reference) every `every_steps` steps and at step 0; 0 turns it off. `data`: a source spec
  # ("tfds:drive", a folder, "bundled:heldout"); pairs at the training GT size (jaxsr.train.validation).
  # The EMA generator with the best `best_metric` ("psnr", "ssim", "hfen"; "" for none) so far is
  # exported to WORKDIR/export/generator_best (step 0's, the starting weights, competes too).
  config.validation = ml_collections.ConfigDict(dict(every_steps=0, data="", max_images=8,
                                                     best_metric="psnr"))

  config.log_every_steps = 20
  config.image_every_steps = 500
  config.checkpoint_every_steps = 500
  config.keep_checkpoints = 3
  # Multi-host only: how often the hosts compare stop signals (SIGTERM/SIGINT). The comparison
  # waits for the step in flight, so doing it every step would stall the input overlap.
  config.stop_check_every_steps = 10
  config.export_pth = True  # Also write the EMA generator as a PyTorch .pth (needs torch).
  return config
