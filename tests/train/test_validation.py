"""Which validation score counts as better, early stopping, the guard-rails, and the bookkeeping
of all three in run.json."""

import json

import ml_collections
import numpy as np
import pytest

from jaxsr.train import run_record
from jaxsr.train import validation
from tests.train import validation_reference as ref


def test_higher_psnr_and_ssim_are_better_lower_hfen_and_smaller_bias_are():
  assert validation.is_better("psnr", 30.0, None)
  assert validation.is_better("psnr", 30.1, 30.0) and not validation.is_better("psnr", 30.0, 30.0)
  assert validation.is_better("ssim", 0.9, 0.8) and not validation.is_better("ssim", 0.7, 0.8)
  assert validation.is_better("hfen", 0.1, 0.2) and not validation.is_better("hfen", 0.3, 0.2)
  # Bias: the smaller drift either way.
  assert validation.is_better("bias", -0.5, 1.0) and validation.is_better("bias", 0.5, -1.0)
  assert not validation.is_better("bias", -2.0, 1.0) and not validation.is_better("bias", 1.0, -1.0)
  # The gradient ratio is best at 1, not at an extreme: no "best so far" to select by.
  for name in ("lpips", "grad_ratio", "gradient_ratio"):
    with pytest.raises(ValueError, match="best_metric"):
      validation.is_better(name, 0.1, None)


@pytest.mark.parametrize("metric, values, patience, stops_at", [
    ("psnr", [30.0, 30.5, 30.4, 30.6, 30.6, 30.6], 2, 5),  # 30.6 twice more: no improvement.
    ("psnr", [30.0, 30.0, 30.0], 1, 1),  # A generator that does not change (lr = 0).
    ("hfen", [0.30, 0.20, 0.25, 0.19, 0.21, 0.22, 0.23], 3, 6),
    ("bias", [0.2, -0.1, 0.3, -0.3, 0.15], 2, 3),  # |bias|: -0.1 stays best.
    ("psnr", [30.0, 29.0, 28.0, 27.0], 0, None),  # Patience 0: never.
])
def test_early_stopping_counts_validations_without_a_new_best(metric, values, patience, stops_at):
  early = validation.EarlyStopping(metric, patience)
  decisions = [early.update(value, step=10 * i) for i, value in enumerate(values)]
  expected = [stops_at is not None and i >= stops_at for i in range(len(values))]
  assert decisions == expected


def test_early_stopping_tracks_the_best_and_resumes_from_what_run_json_kept():
  early = validation.EarlyStopping("psnr", 2)
  assert not early.update(30.0, step=0) and early.improved and early.best_step == 0
  assert not early.update(29.0, step=10) and not early.improved and early.since_best == 1
  assert not early.update(31.0, step=20) and early.improved
  assert (early.best, early.best_step, early.since_best) == (31.0, 20, 0)
  # A resume one validation after the best: one more without improvement stops it.
  resumed = validation.EarlyStopping("psnr", 2, best=31.0, best_step=20, since_best=1)
  assert resumed.update(30.9, step=40) and resumed.best_step == 20
  with pytest.raises(ValueError, match="early_stop_patience"):
    validation.EarlyStopping("psnr", -1)


def scores(bias, ratio):
  return {"val/psnr": 30.0, "val/bias": bias, "val/grad_ratio": ratio}


def warnings_for(sequence, **limits):
  """{step: warning lines} for a sequence of (bias, ratio) scores at steps 0, 1, 2, ..."""
  limits = {"warn_bias_levels": 1.0, "warn_gradient_ratio": 1.6, **limits}
  reference = scores(*sequence[0])
  return {step: validation.guard_rail_warnings(step, scores(*values), reference, **limits)
          for step, values in enumerate(sequence)}


def test_guard_rails_warn_of_a_growing_bias_and_gradient_ratio_only():
  # Bias growing 0 -> 0.8 -> 1.2 -> -2: warned once above 1 level and 0.5 level more than at
  # step 0 (negative drift too); its message names the step and both biases.
  got = warnings_for([(0.0, 1.0), (0.8, 1.0), (1.2, 1.0), (-2.0, 1.0)])
  assert [len(got[s]) for s in range(4)] == [0, 0, 1, 1]
  assert "step 2" in got[2][0] and "intensity drift" in got[2][0] and "+1.20" in got[2][0]
  assert "+0.00" in got[2][0] and "darker" in got[3][0] and "-2.00" in got[3][0]
  # A constant offset, however large, is not a drift; nor is growth of 0.5 level or less.
  assert not any(warnings_for([(3.0, 1.0)] * 4).values())
  assert not any(warnings_for([(-1.2, 1.0), (-1.5, 1.0), (1.7, 1.0)]).values())
  # Gradient ratio: above the limit and above step 0's; a generator that starts busy and stays
  # so, and one that gets blurrier, are left alone.
  got = warnings_for([(0.0, 1.2), (0.0, 1.5), (0.0, 1.7), (0.0, 2.5)])
  assert [len(got[s]) for s in range(4)] == [0, 0, 1, 1]
  assert "texture hallucination" in got[3][0] and "2.50" in got[3][0] and "1.20" in got[3][0]
  assert not any(warnings_for([(0.0, 1.9), (0.0, 1.9), (0.0, 1.8)]).values())
  assert not any(warnings_for([(0.0, 1.0), (0.0, 0.3)]).values())
  # Both at once; a limit of 0 turns a check off; no reference (a resume without one): nothing.
  assert len(warnings_for([(0.0, 1.0), (2.0, 2.0)])[1]) == 2
  (only,) = warnings_for([(0.0, 1.0), (2.0, 2.0)], warn_bias_levels=0)[1]
  assert "texture hallucination" in only
  assert not validation.guard_rail_warnings(5, scores(9.0, 9.0), None, warn_bias_levels=1.0,
                                            warn_gradient_ratio=1.6)


def test_guard_rails_fire_for_a_forward_whose_offset_grows_and_not_for_a_constant_one(tmp_path):
  """Real scores: a stand-in network (bicubic + a constant) on real held-out crops."""
  ref.save(tmp_path / "data", "colour.png", ref.texture(np.random.default_rng(3), 512, 3))
  config = ml_collections.ConfigDict(dict(data=str(tmp_path / "data"), max_images=1,
                                          protocol="auto", crop=48, crops_per_image=2))
  v = validation.Validation(config, gt_size=32, scale=4, local_batch=2)

  def run(offsets):
    values = [v(ref.bicubic_x4_plus(levels)) for levels in offsets]
    return [validation.guard_rail_warnings(step, value, values[0], warn_bias_levels=1.0,
                                           warn_gradient_ratio=1.6)
            for step, value in enumerate(values)]

  growing = run([0, 0.5, 3, 6])  # Levels added to bicubic's output.
  assert [len(w) for w in growing] == [0, 0, 1, 1]
  assert all("intensity drift" in w[0] for w in growing[2:])
  assert not any(run([3, 3, 3]))


def test_run_json_keeps_the_best_validation_until_a_new_run_starts(tmp_path):
  arch = dict(scale=4)
  config = {"total_steps": 10}
  run_record.record_start(tmp_path, generator_arch=arch, config=config, start_step=0)
  assert run_record.best_validation(tmp_path) is None
  assert run_record.validations_since_best(tmp_path) == 0
  assert run_record.first_validation(tmp_path) is None
  run_record.record_first_validation(tmp_path, {"val/bias": 0.25, "val/grad_ratio": 0.9})
  run_record.record_best_validation(tmp_path, step=4, metric="psnr", value=31.5)
  run_record.record_validations_since_best(tmp_path, 2)
  run_record.record_start(tmp_path, generator_arch=arch, config=config, start_step=4)  # Resume.
  assert run_record.best_validation(tmp_path) == {"step": 4, "metric": "psnr", "value": 31.5}
  assert run_record.validations_since_best(tmp_path) == 2
  assert run_record.first_validation(tmp_path) == {"val/bias": 0.25, "val/grad_ratio": 0.9}
  run_record.record_start(tmp_path, generator_arch=arch, config=config, start_step=0)  # New run.
  assert run_record.best_validation(tmp_path) is None
  assert run_record.first_validation(tmp_path) is None


def test_an_early_stop_is_final_for_the_same_total_steps_and_resumable_with_more(tmp_path):
  arch = dict(scale=4)
  run_record.record_start(tmp_path, generator_arch=arch, config={"total_steps": 10}, start_step=0)
  run_record.record_validations_since_best(tmp_path, 3)
  run_record.record_early_stop(tmp_path, step=6, best_step=2)
  assert json.loads((tmp_path / "run.json").read_text())["early_stopped"] == {"step": 6,
                                                                               "best_step": 2}
  assert run_record.early_stopped(tmp_path, 10) is None  # Its checkpoint is gone: start over.
  (tmp_path / "checkpoints" / "6").mkdir(parents=True)
  assert run_record.early_stopped(tmp_path, 10) == {"step": 6, "best_step": 2}
  assert run_record.early_stopped(tmp_path, 20) is None  # More steps asked for.
  # Resumed with more steps: a fresh patience, the early stop kept in the resume's entry.
  run_record.record_start(tmp_path, generator_arch=arch, config={"total_steps": 20}, start_step=6)
  record = json.loads((tmp_path / "run.json").read_text())
  assert "early_stopped" not in record and run_record.validations_since_best(tmp_path) == 0
  assert record["resumes"] == [{"step": 6, "changed": {"total_steps": [10, 20]},
                                "after_early_stop": {"step": 6, "best_step": 2}}]
  assert run_record.early_stopped(tmp_path, 20) is None
