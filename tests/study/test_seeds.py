"""`python -m jaxsr.study.seeds`: an arm against another over several seeded study runs."""

import json
import statistics

import pytest
from scipy import stats

from jaxsr.study import seeds

DIRECTIONS = {"psnr": "higher", "lpips": "lower", "grad_ratio": "one", "bias": "zero"}


def write_run(folder, seed, values, *, arm_seeds=None, machine="Test CPU"):
  """A study output with `values[model][metric]` as the protocol means, for one protocol."""
  folder.mkdir(parents=True)
  models = list(values)
  summary = {"images": ["RG1_UNCR.dcm"], "models": models, "metrics": list(DIRECTIONS),
             "metric_directions": DIRECTIONS,
             "per_model": {m: {k: {"mean": v, "std": None, "n": 1} for k, v in values[m].items()}
                           for m in models},
             "paired_differences": {}}
  (folder / "results.json").write_text(json.dumps({
      "command": f"python -m jaxsr.study --config.train.seed={seed}", "seconds": 1.0,
      "machine": {"cpu": machine, "cores": 2}, "summaries": {"chest-x4": summary}}))
  arm_seeds = arm_seeds or {"lf": seed, "base": seed}
  (folder / "config.json").write_text(json.dumps({a: {"seed": s} for a, s in arm_seeds.items()}))
  return folder


RUNS = {  # seed: model -> metric -> value
    0: {"pretrained": dict(psnr=25.0, lpips=0.3, grad_ratio=7.8, bias=4.9),
        "base": dict(psnr=33.5, lpips=0.22, grad_ratio=1.08, bias=0.8),
        "lf": dict(psnr=33.4, lpips=0.20, grad_ratio=1.17, bias=-0.5)},
    1: {"pretrained": dict(psnr=25.0, lpips=0.3, grad_ratio=7.8, bias=4.9),
        "base": dict(psnr=33.0, lpips=0.21, grad_ratio=0.90, bias=1.5),
        "lf": dict(psnr=33.9, lpips=0.23, grad_ratio=0.95, bias=0.2)},
    2: {"pretrained": dict(psnr=25.0, lpips=0.3, grad_ratio=7.8, bias=4.9),
        "base": dict(psnr=34.0, lpips=0.20, grad_ratio=1.30, bias=-0.1),
        "lf": dict(psnr=34.2, lpips=0.19, grad_ratio=1.10, bias=0.4)},
}


def test_means_spreads_and_paired_differences_over_seeds(tmp_path):
  dirs = [write_run(tmp_path / f"seed{s}", s, RUNS[s]) for s in (2, 0, 1)]  # Any order.
  out = tmp_path / "out"
  assert seeds.main(["--compare", "lf", "--against", "base", "--out", str(out),
                     *map(str, dirs)]) == 0
  result = json.loads((out / "seeds.json").read_text())
  assert result["seeds"] == [0, 1, 2]
  chest = result["protocols"]["chest-x4"]
  for model in ("pretrained", "base", "lf"):
    for metric in DIRECTIONS:
      got = chest["per_model"][model][metric]
      column = [RUNS[s][model][metric] for s in (0, 1, 2)]
      assert got["mean"] == pytest.approx(statistics.mean(column))
      assert got["sd"] == pytest.approx(statistics.stdev(column), abs=1e-12)
  for metric in DIRECTIONS:
    want = [RUNS[s]["lf"][metric] - RUNS[s]["base"][metric] for s in (0, 1, 2)]
    got = chest["differences"]["lf"][metric]
    assert got["values"] == pytest.approx(want)
    assert got["mean"] == pytest.approx(statistics.mean(want))
    # The 95 % interval of the mean paired difference, as SciPy's paired t-test gives it.
    lf = [RUNS[s]["lf"][metric] for s in (0, 1, 2)]
    base = [RUNS[s]["base"][metric] for s in (0, 1, 2)]
    reference = stats.ttest_rel(lf, base).confidence_interval(0.95)
    assert got["ci95"] == pytest.approx([reference.low, reference.high])
  # Better by each metric's own direction: PSNR up (seeds 1, 2), LPIPS down (0, 2), gradient
  # ratio nearer 1 (1, 2: 0.95 vs 0.90, 1.10 vs 1.30), bias nearer 0 (0, 1; not 2).
  wins = {m: chest["differences"]["lf"][m]["arm_better"] for m in DIRECTIONS}
  assert wins == {"psnr": 2, "lpips": 2, "grad_ratio": 2, "bias": 2}
  page = (out / "README.md").read_text()
  assert "# lf against base over 3 seeds" in page
  assert "| seed 1 | +0.90 | +0.0200 | +0.05 | -1.30 |" in page
  assert "| seeds lf is better | 2 of 3 | 2 of 3 | 2 of 3 | 2 of 3 |" in page
  assert "| 95 % CI of the mean | " in page
  assert "--config.train.seed=2" in page


def test_several_arms_against_one_baseline(tmp_path):
  runs = {s: {**RUNS[s], "other": {k: v + 0.5 * (s + 1) for k, v in RUNS[s]["base"].items()}}
          for s in RUNS}
  dirs = [write_run(tmp_path / f"seed{s}", s, runs[s],
                    arm_seeds={"lf": s, "base": s, "other": s}) for s in runs]
  out = tmp_path / "out"
  assert seeds.main(["--compare", "lf", "--compare", "other", "--against", "base",
                     "--out", str(out), *map(str, dirs)]) == 0
  result = json.loads((out / "seeds.json").read_text())
  assert result["arms"] == ["lf", "other"]
  other = result["protocols"]["chest-x4"]["differences"]["other"]
  assert other["psnr"]["values"] == pytest.approx([0.5, 1.0, 1.5])
  assert other["psnr"]["ci95"] == pytest.approx(
      list(stats.ttest_rel([runs[s]["other"]["psnr"] for s in runs],
                           [runs[s]["base"]["psnr"] for s in runs]).confidence_interval()))
  assert other["psnr"]["arm_better"] == 3 and other["bias"]["arm_better"] == 0
  page = (out / "README.md").read_text()
  assert "# lf, other against base over 3 seeds" in page
  assert "`lf - base`" in page and "`other - base`" in page
  assert "| seeds other is better | 3 of 3 |" in page


def test_an_arm_run_later_joins_its_seeds_baseline_run(tmp_path, capsys):
  """A seed's baseline and a new arm from two study commands compare as if trained in one."""
  together = [write_run(tmp_path / f"one{s}", s, RUNS[s]) for s in RUNS]
  split = []
  for s in RUNS:
    split.append(write_run(tmp_path / f"base{s}", s,
                           {m: RUNS[s][m] for m in ("pretrained", "base")}, arm_seeds={"base": s}))
    later = write_run(tmp_path / f"lf{s}", s, {m: RUNS[s][m] for m in ("pretrained", "lf")},
                      arm_seeds={"lf": s})
    results = json.loads((later / "results.json").read_text())  # A metric added since:
    summary = results["summaries"]["chest-x4"]
    summary["metrics"].append("texture_ratio")
    for values in summary["per_model"].values():
      values["texture_ratio"] = {"mean": 0.5, "std": None, "n": 1}
    (later / "results.json").write_text(json.dumps(results))
    split.append(later)
  args = ["--compare", "lf", "--against", "base"]
  assert seeds.main([*args, "--out", str(tmp_path / "a"), *map(str, together)]) == 0
  assert seeds.main([*args, "--out", str(tmp_path / "b"), *map(str, split)]) == 0
  want = json.loads((tmp_path / "a" / "seeds.json").read_text())["protocols"]
  got = json.loads((tmp_path / "b" / "seeds.json").read_text())["protocols"]
  assert got["chest-x4"]["differences"] == want["chest-x4"]["differences"]
  assert got["chest-x4"]["per_model"] == want["chest-x4"]["per_model"]  # texture_ratio: dropped
  assert got["chest-x4"]["models"] == ["pretrained", "base", "lf"]
  page = (tmp_path / "b" / "README.md").read_text()
  assert page.count("--config.train.seed=1") == 2  # Both of seed 1's commands.
  # Runs of one seed on different machines are not merged.
  other_machine = write_run(tmp_path / "x", 0, {m: RUNS[0][m] for m in ("pretrained", "lf")},
                            arm_seeds={"lf": 0}, machine="Other CPU")
  assert seeds.main([*args, "--out", str(tmp_path / "c"), str(split[0]), str(other_machine)]) == 2
  assert "ran on different machines" in capsys.readouterr().err


def test_runs_that_do_not_make_a_seed_comparison_fail_clearly(tmp_path, capsys):
  a = write_run(tmp_path / "a", 0, RUNS[0])
  same_seed = write_run(tmp_path / "b", 0, RUNS[1])
  args = ["--compare", "lf", "--against", "base", "--out", str(tmp_path / "out")]
  assert seeds.main([*args, str(a), str(same_seed)]) == 2  # Pretrained agrees; base does not:
  assert "the runs disagree on base psnr (33.5 vs 33.0)" in capsys.readouterr().err
  with pytest.raises(seeds.SeedsError, match="each run must have its own seed"):
    seeds.compare([seeds.load_run(a), seeds.load_run(a)], ["lf"], "base")
  unpaired = write_run(tmp_path / "c", 1, RUNS[1], arm_seeds={"lf": 1, "base": 2})
  assert seeds.main([*args, str(a), str(unpaired)]) == 2
  assert "do not share one seed" in capsys.readouterr().err
  no_arm = write_run(tmp_path / "d", 2, {k: v for k, v in RUNS[2].items() if k != "lf"})
  assert seeds.main([*args, str(a), str(no_arm)]) == 2
  assert "arm 'lf' is not in every run" in capsys.readouterr().err
  assert seeds.main(["--compare", "base", "--against", "base", "--out", str(tmp_path / "out"),
                     str(a)]) == 2
  assert "compare distinct arms with another one" in capsys.readouterr().err
  assert seeds.main([*args, str(a), str(tmp_path / "missing")]) == 2
  assert "not a study's output (no results.json)" in capsys.readouterr().err
  assert not (tmp_path / "out").exists()
