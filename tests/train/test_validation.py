"""Which validation score counts as better, and the bookkeeping of the best one in run.json."""

import pytest

from jaxsr.train import run_record
from jaxsr.train import validation


def test_higher_psnr_and_ssim_are_better_lower_hfen_is():
  assert validation.is_better("psnr", 30.0, None)
  assert validation.is_better("psnr", 30.1, 30.0) and not validation.is_better("psnr", 30.0, 30.0)
  assert validation.is_better("ssim", 0.9, 0.8) and not validation.is_better("ssim", 0.7, 0.8)
  assert validation.is_better("hfen", 0.1, 0.2) and not validation.is_better("hfen", 0.3, 0.2)
  with pytest.raises(ValueError, match="best_metric"):
    validation.is_better("lpips", 0.1, None)


def test_the_best_validation_is_kept_in_run_json_until_a_new_run_starts(tmp_path):
  arch = dict(scale=4)
  config = {"total_steps": 10}
  run_record.record_start(tmp_path, generator_arch=arch, config=config, start_step=0)
  assert run_record.best_validation(tmp_path) is None
  run_record.record_best_validation(tmp_path, step=4, metric="psnr", value=31.5)
  run_record.record_start(tmp_path, generator_arch=arch, config=config, start_step=4)  # Resume.
  assert run_record.best_validation(tmp_path) == {"step": 4, "metric": "psnr", "value": 31.5}
  run_record.record_start(tmp_path, generator_arch=arch, config=config, start_step=0)  # New run.
  assert run_record.best_validation(tmp_path) is None
