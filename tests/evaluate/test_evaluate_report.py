"""Reports: statistics against NumPy, bootstrap CI coverage, and the files' contents."""

import csv
import json
import math

import numpy as np
import pytest

from jaxsr.evaluate import report


def test_bootstrap_ci_covers_the_true_mean_at_about_the_nominal_rate():
  """Over many synthetic samples, the 95 % CI contains the true mean roughly 95 % of the time."""
  rng = np.random.default_rng(0)
  true_mean, n, trials = 0.3, 40, 300
  covered = 0
  for trial in range(trials):
    sample = true_mean + rng.standard_normal(n)
    low, high = report.bootstrap_mean_ci(sample, n_bootstrap=1000, seed=trial)
    covered += low <= true_mean <= high
  # Percentile bootstrap undercovers slightly at n = 40 (about 0.93); binomial sd is 0.013.
  assert 0.89 <= covered / trials <= 0.99


def test_bootstrap_ci_is_close_to_the_normal_theory_interval_and_reproducible():
  sample = np.random.default_rng(1).normal(2.0, 0.5, size=200)
  low, high = report.bootstrap_mean_ci(sample, n_bootstrap=4000, seed=7)
  half_width = 1.96 * sample.std(ddof=1) / np.sqrt(sample.size)
  assert (high - low) / 2 == pytest.approx(half_width, rel=0.1)
  assert (low + high) / 2 == pytest.approx(sample.mean(), abs=0.2 * half_width)
  assert report.bootstrap_mean_ci(sample, n_bootstrap=4000, seed=7) == (low, high)


def _synthetic_rows(n_images=30, seed=0):
  """Model 'better' beats 'base' by +0.5 dB PSNR and -0.01 LPIPS on average, per image."""
  rng = np.random.default_rng(seed)
  rows = []
  for i in range(n_images):
    base_psnr = 30 + 2 * rng.standard_normal()
    base_lpips = 0.2 + 0.02 * rng.standard_normal()
    rows.append({"image": f"im{i}", "model": "base", "psnr": base_psnr, "lpips": base_lpips,
                 "seconds": 0.1})
    rows.append({"image": f"im{i}", "model": "better",
                 "psnr": base_psnr + 0.5 + 0.2 * rng.standard_normal(),
                 "lpips": base_lpips - 0.01 + 0.005 * rng.standard_normal(), "seconds": 0.3})
  return rows


def test_summary_statistics_and_paired_differences():
  rows = _synthetic_rows()
  summary = report.summarize(rows, ["psnr", "lpips"], protocol={"name": "x"}, n_bootstrap=2000)
  psnr = {m: np.array([r["psnr"] for r in rows if r["model"] == m]) for m in ("base", "better")}
  stats = summary["per_model"]["better"]["psnr"]
  assert stats["mean"] == pytest.approx(psnr["better"].mean())
  assert stats["std"] == pytest.approx(psnr["better"].std(ddof=1))
  assert stats["n"] == 30
  assert summary["per_model"]["base"]["seconds"]["mean"] == pytest.approx(0.1)
  assert summary["models"] == ["base", "better"] and summary["n_images"] == 30

  difference = summary["paired_differences"]["better - base"]["psnr"]
  assert difference["mean"] == pytest.approx((psnr["better"] - psnr["base"]).mean())
  # The true per-image effect is +0.5 (sd 0.2): the paired CI is narrow and contains it.
  assert difference["ci_low"] < 0.5 < difference["ci_high"]
  assert difference["ci_high"] - difference["ci_low"] < 0.25
  lpips_difference = summary["paired_differences"]["better - base"]["lpips"]
  assert lpips_difference["ci_high"] < 0  # Significantly lower LPIPS.


def test_non_finite_values_are_left_out_and_written_as_null(tmp_path):
  rows = _synthetic_rows(n_images=5)
  rows[0]["psnr"] = math.inf  # An exact copy.
  rows[3]["lpips"] = math.nan
  summary = report.write_reports(rows, ["psnr", "lpips"], {"name": "toy", "blur_sigma": 1.0},
                                 str(tmp_path), n_bootstrap=200)
  assert summary["per_model"]["base"]["psnr"]["n"] == 4
  assert summary["per_model"]["better"]["lpips"]["n"] == 4
  assert summary["paired_differences"]["better - base"]["psnr"]["n"] == 4
  finite = [r["psnr"] for r in rows[2::2] if r["model"] == "base"]
  assert summary["per_model"]["base"]["psnr"]["mean"] == pytest.approx(np.mean(finite))
  text = (tmp_path / "summary.json").read_text()
  assert "Infinity" not in text and "NaN" not in text
  assert json.loads(text)["protocol"] == {"name": "toy", "blur_sigma": 1.0}


def test_report_files_have_the_expected_content(tmp_path):
  rows = _synthetic_rows(n_images=4)
  report.write_reports(rows, ["psnr", "lpips"], {"name": "toy"}, str(tmp_path), n_bootstrap=100,
                       seed=3, protocol_line="Protocol `toy`.", extra={"figure": {"file": "f.png"}})
  with open(tmp_path / "per_image.csv") as f:
    table = list(csv.DictReader(f))
  assert list(table[0]) == ["image", "model", "psnr", "lpips", "seconds"]
  assert len(table) == 8
  assert float(table[1]["psnr"]) == rows[1]["psnr"]  # Written at full precision.

  summary = json.loads((tmp_path / "summary.json").read_text())
  assert summary["bootstrap"]["seed"] == 3 and summary["bootstrap"]["n_resamples"] == 100
  assert summary["figure"] == {"file": "f.png"}
  assert summary["metric_directions"] == {"psnr": "higher", "lpips": "lower"}

  markdown = (tmp_path / "summary.md").read_text()
  assert markdown.startswith("### toy")
  assert "Protocol `toy`." in markdown
  assert "| Model | PSNR (dB) ↑ | LPIPS ↓ | s / image |" in markdown
  better = summary["per_model"]["better"]
  assert f"**{better['psnr']['mean']:.2f} ± {better['psnr']['std']:.2f}**" in markdown
  assert "| better - base |" in markdown


def test_best_model_respects_metric_direction():
  rows = [{"image": "a", "model": m, "grad_ratio": v, "hfen": h}
          for m, v, h in [("blurry", 0.4, 0.3), ("sharp", 1.1, 0.5), ("noisy", 2.0, 0.9)]]
  summary = report.summarize(rows, ["grad_ratio", "hfen"], n_bootstrap=10)
  markdown = report.markdown_table(summary)
  assert "**1.1000**" in markdown  # Closest to 1 wins the ratio column ...
  assert "**0.3000**" in markdown  # ... and the lowest HFEN wins its column.
  # One image: a difference but no interval.
  single = summary["paired_differences"]["sharp - blurry"]["hfen"]
  assert single["mean"] == pytest.approx(0.2) and single["ci_low"] is None and single["n"] == 1
  assert "| sharp - blurry | +0.7000 | +0.2000 |" in markdown
  assert "n = 1 image; one image, so no spread or interval" in markdown


def test_extra_entries_may_not_replace_computed_ones(tmp_path):
  with pytest.raises(ValueError, match=r"\['models'\]"):
    report.write_reports(_synthetic_rows(n_images=2), ["psnr"], {"name": "toy"}, str(tmp_path),
                         n_bootstrap=10, extra={"models": {"better": "details"}})
  assert not (tmp_path / "summary.json").exists()
