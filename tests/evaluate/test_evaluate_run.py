"""End to end: bundled images (small crops), a toy model, every result file, recomputed numbers."""

import csv
import json

import numpy as np
import pytest
from PIL import Image
from scipy import ndimage
from skimage import metrics as skmetrics

from jaxsr.data import source_specs
from jaxsr.evaluate import protocols, run


def _unsharp_bicubic(lr, scale):
  """Toy model: PIL bicubic, then unsharp masking (amount 1, sigma 1.5)."""
  up = np.stack([np.asarray(Image.fromarray(lr[..., c]).resize(
      (lr.shape[1] * scale, lr.shape[0] * scale), Image.Resampling.BICUBIC)) for c in range(3)], -1)
  return np.clip(2 * up - ndimage.gaussian_filter(up, (1.5, 1.5, 0)), 0, 1)


@pytest.fixture(scope="module")
def crops():
  fundus = source_specs.open_source("skimage")
  bundled = {fundus.short_name(i): fundus.read_float(i) for i in range(len(fundus))}
  # A 96x96 window on vessels near the optic disc, and the whole (102x102) microaneurysm image.
  return [("retina_crop", bundled["retina"][560:656, 260:356]),
          ("microaneurysms", bundled["microaneurysms"])]


def test_end_to_end_run_writes_every_file_with_recorded_options(tmp_path, crops):
  pytest.importorskip("matplotlib")
  config = protocols.get_protocol("custom", scale=2, gt_size=(96, 96))
  config.metrics.vessel = True
  config.metrics.vessel_sigmas = (1.0, 2.0)
  config.metrics.vessel_fov_erosion = 2
  config.report.n_bootstrap = 200
  config.report.figure_images = 2
  summary = run.evaluate(iter(crops), {"unsharp": _unsharp_bicubic}, config, str(tmp_path),
                         progress=False)

  expected_metrics = ["psnr", "ssim", "lpips", "hfen", "grad_ratio", "bias", "vessel_r", "vessel_f1"]
  with open(tmp_path / "per_image.csv") as f:
    rows = list(csv.DictReader(f))
  assert list(rows[0]) == ["image", "model", *expected_metrics, "seconds"]
  assert [(r["image"], r["model"]) for r in rows] == [
      ("retina_crop", "bicubic"), ("retina_crop", "unsharp"),
      ("microaneurysms", "bicubic"), ("microaneurysms", "unsharp")]

  # Recompute the bicubic row of the first image from scratch: PIL steps, SciPy blur, skimage PSNR.
  source = crops[0][1]
  gt = np.round(np.clip(np.stack([np.asarray(Image.fromarray(source[..., c]).resize(
      (96, 96), Image.Resampling.LANCZOS)) for c in range(3)], -1), 0, 1) * 255) / 255
  lr = np.stack([ndimage.gaussian_filter(np.asarray(Image.fromarray(gt[..., c].astype(np.float32))
                                                    .resize((48, 48), Image.Resampling.BICUBIC)),
                                         1.0, mode="mirror", truncate=3.0) for c in range(3)], -1)
  lr = np.round(np.clip(lr, 0, 1) * 255) / 255
  sr = np.stack([np.asarray(Image.fromarray(lr[..., c].astype(np.float32)).resize(
      (96, 96), Image.Resampling.BICUBIC)) for c in range(3)], -1)
  sr = np.round(np.clip(sr, 0, 1) * 255) / 255
  expected_psnr = skmetrics.peak_signal_noise_ratio(gt[2:-2, 2:-2], sr[2:-2, 2:-2], data_range=1)
  assert float(rows[0]["psnr"]) == pytest.approx(expected_psnr, abs=1e-3)
  assert float(rows[0]["bias"]) == pytest.approx(
      (sr[2:-2, 2:-2].mean() - gt[2:-2, 2:-2].mean()) * 255, abs=1e-3)

  saved = json.loads((tmp_path / "summary.json").read_text())
  assert saved["protocol"] == protocols.protocol_summary(config)
  assert saved["protocol"]["blur_sigma"] == 1.0 and saved["protocol"]["metrics"]["crop_border"] == 2
  assert saved["models"] == ["bicubic", "unsharp"] and saved["n_images"] == 2
  assert set(saved["paired_differences"]["unsharp - bicubic"]) == set(expected_metrics)
  assert saved["per_model"]["unsharp"]["psnr"]["mean"] == pytest.approx(
      np.mean([float(r["psnr"]) for r in rows if r["model"] == "unsharp"]))
  assert summary["figure"]["file"] == "comparison.png"
  assert set(summary["figure"]["regions"]) == {"retina_crop", "microaneurysms"}
  # Sharpening restores gradient energy that the protocol's blur removed.
  assert (saved["per_model"]["unsharp"]["grad_ratio"]["mean"]
          > saved["per_model"]["bicubic"]["grad_ratio"]["mean"])

  markdown = (tmp_path / "summary.md").read_text()
  assert "| bicubic |" in markdown and "| unsharp - bicubic |" in markdown
  assert "sigma 1.0, 7x7" in markdown
  with Image.open(tmp_path / "comparison.png") as figure:
    assert figure.size[0] > figure.size[1] / 2 > 0


def test_run_rejects_wrong_output_size_and_baseline_name(tmp_path, crops):
  config = protocols.get_protocol("custom", scale=2, gt_size=(32, 32))
  config.metrics.lpips_net = ""
  config.report.figure_images = 0
  with pytest.raises(ValueError, match="returned"):
    run.evaluate(crops[:1], {"x4": lambda lr, s: np.zeros((128, 128, 3), np.float32)}, config,
                 str(tmp_path), progress=False)
  with pytest.raises(ValueError, match="baseline"):
    run.evaluate(crops[:1], {"bicubic": protocols.bicubic_upscale}, config, str(tmp_path),
                 progress=False)


def test_run_with_no_figure_and_chest_settings_on_a_radiograph_crop(tmp_path):
  image = source_specs.open_source("pydicom-data:RG3_UNCR.dcm").read_float(0)[1300:1428, 600:728]
  config = protocols.get_protocol("custom", scale=4, gt_size=None)
  config.metrics.color_space = "y"
  config.metrics.lpips_net = ""
  config.report.figure_images = 0
  summary = run.evaluate([("leg", image)], {"same": protocols.bicubic_upscale}, config,
                         str(tmp_path), progress=False)
  assert not (tmp_path / "comparison.png").exists() and "figure" not in summary
  # Two identical models: their paired difference is exactly zero.
  assert summary["paired_differences"]["same - bicubic"]["psnr"]["mean"] == 0.0
  assert summary["protocol"]["metrics"]["color_space"] == "y"


class Interrupted(Exception):
  """Stands for Ctrl-C (KeyboardInterrupt), which would also stop pytest itself."""


def test_an_interrupted_run_resumes_after_the_images_it_finished(tmp_path, crops, capsys):
  pytest.importorskip("matplotlib")
  config = protocols.get_protocol("custom", scale=2, gt_size=(48, 48))
  config.metrics.lpips_net = ""
  config.report.n_bootstrap = 50
  config.report.figure_images = 2
  images = [*crops, ("flipped", crops[0][1][::-1].copy())]
  calls = []

  def sharpen(lr, scale):
    calls.append(lr.shape)
    return _unsharp_bicubic(lr, scale)

  def interrupted_at_the_third_image(lr, scale):
    if len(calls) == 2:
      raise Interrupted
    return sharpen(lr, scale)

  with pytest.raises(Interrupted):
    run.evaluate(images, {"unsharp": interrupted_at_the_third_image}, config,
                 str(tmp_path / "resumed"), progress=False)
  assert not (tmp_path / "resumed" / "per_image.csv").exists()
  calls.clear()
  run.evaluate(images, {"unsharp": sharpen}, config, str(tmp_path / "resumed"), progress=False)
  assert len(calls) == 1  # Only the third image was left.
  assert "resuming: 2 image(s) already evaluated" in capsys.readouterr().err
  assert not (tmp_path / "resumed" / "evaluation.partial").exists()

  calls.clear()
  run.evaluate(images, {"unsharp": sharpen}, config, str(tmp_path / "straight"), progress=False)
  assert len(calls) == 3

  def without_seconds(folder):
    with open(tmp_path / folder / "per_image.csv") as f:
      rows = list(csv.DictReader(f))
    summary = json.loads((tmp_path / folder / "summary.json").read_text())
    for per_model in summary["per_model"].values():
      per_model.pop("seconds", None)
    return [{k: v for k, v in row.items() if k != "seconds"} for row in rows], summary

  resumed, straight = without_seconds("resumed"), without_seconds("straight")
  assert resumed == straight
  with Image.open(tmp_path / "resumed" / "comparison.png") as a, \
       Image.open(tmp_path / "straight" / "comparison.png") as b:
    np.testing.assert_array_equal(np.asarray(a), np.asarray(b))


def test_a_journal_of_other_options_is_discarded_and_restart_ignores_one(tmp_path, crops, capsys):
  config = protocols.get_protocol("custom", scale=2, gt_size=(32, 32))
  config.metrics.lpips_net = ""
  config.report.n_bootstrap = 20
  config.report.figure_images = 0
  calls = []

  def bicubic_interrupted_at_the_second_image(lr, scale):
    if len(calls) == 1:
      raise Interrupted
    calls.append(1)
    return protocols.bicubic_upscale(lr, scale)

  def counted(lr, scale):
    calls.append(1)
    return protocols.bicubic_upscale(lr, scale)

  def interrupt_then_rerun(changed_config, **options):
    """Images the second run computes after an interrupted first run of `config`."""
    calls.clear()
    with pytest.raises(Interrupted):
      run.evaluate(crops, {"m": bicubic_interrupted_at_the_second_image}, config, str(tmp_path),
                   progress=False)
    calls.clear()
    run.evaluate(crops, {"m": counted}, changed_config, str(tmp_path), progress=False, **options)
    return len(calls)

  other = protocols.get_protocol("custom", scale=2, gt_size=(32, 32))
  other.metrics.lpips_net = ""
  other.report.n_bootstrap = 20
  other.report.figure_images = 0
  other.blur_sigma = 0.5
  assert interrupt_then_rerun(other) == 2  # Both images again, under the new options.
  assert "discarding" in capsys.readouterr().err
  assert interrupt_then_rerun(config, resume=False) == 2
  assert interrupt_then_rerun(config) == 1
