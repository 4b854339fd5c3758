"""The fine-tuning study's plumbing: arms, held-out images, the write-up (training and evaluation
themselves are tested in tests/train and tests/evaluate)."""

import importlib.util
from pathlib import Path

import numpy as np
import pytest

from jaxsr.data import bundled
from jaxsr.evaluate import report
from jaxsr.study import runner, writeup
from jaxsr.train import config as config_lib

REPO = Path(__file__).resolve().parents[2]


def _study_config():
  spec = importlib.util.spec_from_file_location("finetune_study",
                                                REPO / "configs" / "finetune_study.py")
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  return module.get_config()


def test_arms_override_named_fields_and_typos_fail():
  study = _study_config()
  names = [arm["name"] for arm in study.arms]
  assert names[:3] == ["paper", "medical", "symmetric-only"]
  assert study.default_arms == "paper,symmetric-only"
  paper = runner.arm_config(study.train, study.arms[0]["overrides"])
  # The paper arm is the original degradation in every field the medical recipe changes.
  from jaxsr import degradation

  original = degradation.default_config()
  assert paper.data.degradation.noise_clip == "clip" == original.noise_clip
  assert paper.data.degradation.stage1.noise_range == original.stage1.noise_range
  assert paper.data.degradation.stage2.jpeg_range == original.stage2.jpeg_range
  medical = runner.arm_config(study.train, study.arms[1]["overrides"])
  assert medical.data.degradation.noise_clip == "symmetric"
  assert medical.data.degradation.stage1.noise_range == (1.0, 10.0)
  symmetric = runner.arm_config(study.train, study.arms[2]["overrides"])
  assert symmetric.data.degradation.noise_clip == "symmetric"
  assert symmetric.data.degradation.stage1.noise_range == original.stage1.noise_range
  assert study.train.data.degradation.stage1.noise_range == original.stage1.noise_range  # Unmodified.
  configs = {arm["name"]: runner.arm_config(study.train, arm.get("overrides", {}))
             for arm in study.arms}  # Every arm's fields exist.
  assert configs["no-perceptual"].perceptual.network == "none"
  # The override replaces the whole dict: the deep taps are gone, not kept at their old weights.
  assert dict(configs["shallow-perceptual"].perceptual.layer_weights) == {
      "conv1_2": 1.0, "conv2_2": 1.0, "conv3_4": 1.0}
  with pytest.raises(runner.StudyError, match="no field 'noise_clp'"):
    runner.arm_config(study.train, {"data.degradation.noise_clp": "clip"})
  assert [a["name"] for a in runner.select_arms(study.arms, "medical,paper")] == ["paper",
                                                                                "medical"]
  assert len(runner.select_arms(study.arms, "all")) == len(study.arms)
  with pytest.raises(runner.StudyError, match="unknown arm"):
    runner.select_arms(study.arms, "medical,nope")


def test_held_out_images_are_never_trained_on():
  train, heldout = bundled.BundledImages("train"), bundled.BundledImages("heldout")
  train_names = {train.name(i) for i in range(len(train))}
  assert not any("RG1" in name for name in train_names)  # The only chest radiograph.
  study = _study_config()
  named = [n for names in study.evaluation.protocols.values() for n in names]
  assert sorted(named) == sorted(heldout.name(i) for i in range(len(heldout)))
  # The two retina parts share no pixel: together they are the source image's rows, split.
  import importlib.resources

  from PIL import Image

  with Image.open(importlib.resources.files("skimage") / "data" / "retina.jpg") as image:
    full = np.asarray(image.convert("RGB"))
  top = train.read([train.name(i) for i in range(len(train))].index("retina.jpg[top]"))
  bottom = heldout.read(0)
  cut = top.shape[0]
  np.testing.assert_array_equal(top, full[:cut])
  left = (full.shape[1] - (full.shape[0] - cut)) // 2
  np.testing.assert_array_equal(bottom, full[cut:, left:left + full.shape[0] - cut])
  with pytest.raises(runner.StudyError, match="no image"):
    list(runner.held_out_images("bundled:heldout", ["RG9.dcm"]))


def test_writeup_tables_carry_the_evaluation_numbers(tmp_path):
  rows = []
  for image, offset in (("a", 0.0), ("b", 1.0)):
    for model, psnr, bias in (("bicubic", 30 + offset, 0.1), ("pretrained", 25 + offset, 5.0),
                              ("medical", 33 + offset, 0.4)):
      rows.append({"image": image, "model": model, "psnr": psnr, "ssim": 0.9, "hfen": 1.0,
                   "grad_ratio": 0.8, "bias": bias})
  summary = report.summarize(rows, ["psnr", "ssim", "hfen", "grad_ratio", "bias"], n_bootstrap=50)
  arms = [{"name": "medical", "overrides": {"ema_decay": 0.99}, "why": "because", "steps": 3,
           "validation": [{"step": 0, "val/psnr": 30.0, "val/bias": 5.0, "val/grad_ratio": 1.3},
                          {"step": 3, "val/psnr": 32.5, "val/bias": 0.5, "val/grad_ratio": 0.9}]}]
  readme = writeup.write(tmp_path, command="python -m jaxsr.study --config X", arms=arms,
                         summaries={"chest-x4": summary}, configs={"medical": {"seed": 0}},
                         seconds=120, machine={"cpu": "test", "cores": 2, "devices": "2 cpu"})
  text = readme.read_text()
  assert "| medical | 33.50 | 0.9000 | 1.0000 | 0.80 | +0.40 |" in text
  assert "| pretrained | 25.50 |" in text
  assert "- medical - pretrained: psnr +8.00" in text  # The paired difference, with its CI.
  assert "| medical | 3 | 30.00 -> 32.50 | +5.00 -> +0.50 | 1.30 -> 0.90 | 3 |" in text
  assert "`ema_decay=0.99`" in text and "python -m jaxsr.study --config X" in text
  assert (tmp_path / "config.json").exists() and (tmp_path / "results.json").exists()


def test_offline_recipe_names_its_departures():
  from jaxsr import degradation

  config = config_lib.offline_medical_config()
  assert config.discriminator.init == "" and config.perceptual.network == "vgg16-lpips"
  assert config.data.degradation.noise_clip == "symmetric" and config.ema_decay == 0.99
  # The light ranges are a named option (the study's "medical" arm), not the recipe's default.
  original = degradation.default_config()
  for field in config_lib.LIGHT_DEGRADATION:
    node = config
    for name in field.split("."):
      node = node[name]
    stage, leaf = field.split(".")[-2:]
    assert tuple(node) == tuple(original[stage][leaf])
