"""Study arms against a baseline arm over several seeds: is a difference the arm's, or the seed's?

    python -m jaxsr.study.seeds --compare low-frequency --against symmetric-only \\
        --out docs/results/finetune/low-frequency-seeds RUN_DIR [RUN_DIR ...]
    python -m jaxsr.study.seeds --compare no-perceptual --compare shallow-perceptual \\
        --against symmetric-only --out OUT RUN_DIR [RUN_DIR ...]

Each RUN_DIR is the --out of one `python -m jaxsr.study` run, the runs differing only in
`--config.train.seed`. Several runs of one seed (arms trained by separate commands, say a new arm
against a baseline run earlier) are merged into that seed's run, if they scored every model they
share (bicubic, pretrained, ...) identically: a check that they ran the same code and data on
the same kind of machine, which a short GAN run's float rounding is sensitive to. The seed
decides the training crops, their degradations and the discriminator's initialisation, so one
run's table cannot tell an arm's effect from its luck (the arms of one run share the seed, which
pairs them). Writes README.md (per protocol: each model's mean and standard deviation over the
seeds; for each compared arm the paired difference seed by seed, its mean with a 95 % t-interval,
and how many seeds the arm won) and seeds.json (every number in it).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np
from scipy import stats

from jaxsr.evaluate import report
from jaxsr.evaluate.metrics import METRIC_DIRECTIONS, distance_from_best
from jaxsr.study.writeup import format_number

METRICS = ("psnr", "ssim", "lpips", "grad_ratio", "texture_ratio", "bias", "vessel_f1")


class SeedsError(ValueError):
  """The run directories do not make a seed comparison (missing files or arms, repeated seeds)."""


def load_run(run_dir: Path) -> dict[str, Any]:
  """A study run's seed, machine, command and per-protocol summaries."""
  run_dir = Path(run_dir)
  try:
    results = json.loads((run_dir / "results.json").read_text())
    configs = json.loads((run_dir / "config.json").read_text())
  except FileNotFoundError as e:
    raise SeedsError(f"{run_dir} is not a study's output (no {Path(e.filename).name})") from e
  seeds = {arm: config.get("seed") for arm, config in configs.items()}
  if len(set(seeds.values())) != 1 or None in seeds.values():
    raise SeedsError(f"{run_dir}: the arms do not share one seed ({seeds}), so they are not paired")
  return {"dir": str(run_dir), "seed": next(iter(seeds.values())), "machine": results["machine"],
          "command": results["command"], "summaries": results["summaries"]}


def merge_same_seed(runs: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
  """One run per seed, in seed order: the models of runs that share a seed are pooled.

  Each protocol keeps the metrics every merged run scored. A model two runs share must have the
  same scores in both (to 1e-6), else the runs are not comparable and SeedsError says which.
  """
  by_seed: dict[int, list[Mapping[str, Any]]] = {}
  for run in runs:
    by_seed.setdefault(run["seed"], []).append(run)
  merged = []
  for seed in sorted(by_seed):
    first, *others = by_seed[seed]
    run = {**first, "summaries": {p: dict(s) for p, s in first["summaries"].items()}}
    for other in others:
      if other["machine"] != run["machine"]:
        raise SeedsError(f"seed {seed}: {run['dir']} and {other['dir']} ran on different "
                         f"machines ({run['machine']} vs {other['machine']})")
      run["dir"] = f"{run['dir']} + {other['dir']}"
      run["command"] = f"{run['command']}\n{other['command']}"
      for protocol in set(run["summaries"]) & set(other["summaries"]):
        run["summaries"][protocol] = _merge_summaries(
            run["summaries"][protocol], other["summaries"][protocol], f"seed {seed}, {protocol}")
      run["summaries"] = {p: s for p, s in run["summaries"].items() if p in other["summaries"]}
    merged.append(run)
  return merged


def _merge_summaries(a: Mapping[str, Any], b: Mapping[str, Any], where: str) -> dict[str, Any]:
  if a["images"] != b["images"]:
    raise SeedsError(f"{where}: the runs scored different images ({a['images']} vs {b['images']})")
  metrics = [m for m in a["metrics"] if m in b["metrics"]]
  for model in [m for m in a["models"] if m in b["models"]]:
    for metric in metrics:
      x, y = a["per_model"][model][metric]["mean"], b["per_model"][model][metric]["mean"]
      if not np.isclose(x, y, rtol=1e-6, atol=1e-9):
        raise SeedsError(f"{where}: the runs disagree on {model} {metric} ({x} vs {y}), so they "
                         "did not run the same code and data on the same kind of machine")
  return {**a, "metrics": metrics,
          "models": list(a["models"]) + [m for m in b["models"] if m not in a["models"]],
          "per_model": {**b["per_model"], **a["per_model"]}}


def mean_interval(differences: np.ndarray, level: float = 0.95) -> list[float] | None:
  """The `level` t-interval of the mean of paired differences (None with fewer than 2 seeds).

  With three seeds it is wide (the t quantile is 4.30): an interval that excludes 0 is a
  consistent effect; one that straddles 0 says the seeds disagree.
  """
  n = len(differences)
  if n < 2:
    return None
  half = stats.t.ppf(0.5 + level / 2, n - 1) * np.std(differences, ddof=1) / np.sqrt(n)
  mean = float(np.mean(differences))
  return [mean - float(half), mean + float(half)]


def compare(runs: Sequence[Mapping[str, Any]], arms: Sequence[str], against: str,
            metrics: Sequence[str] = METRICS) -> dict[str, Any]:
  """Per protocol: every model's mean / sd over the runs, and `arm - against` run by run for each
  of `arms`."""
  seeds = [run["seed"] for run in runs]
  if len(set(seeds)) != len(seeds):
    raise SeedsError(f"each run must have its own seed; got seeds {seeds}")
  if against in arms or len(set(arms)) != len(arms):
    raise SeedsError(f"compare distinct arms with another one; got {list(arms)} against "
                     f"{against!r}")
  protocols = sorted(set.intersection(*(set(run["summaries"]) for run in runs)))
  out = {"seeds": seeds, "arms": list(arms), "against": against, "protocols": {}}
  for protocol in protocols:
    summaries = [run["summaries"][protocol] for run in runs]
    models = [m for m in summaries[0]["models"] if all(m in s["models"] for s in summaries)]
    for needed in (*arms, against):
      if needed not in models:
        raise SeedsError(f"arm {needed!r} is not in every run's {protocol} results "
                         f"(they have {models})")
    names = [m for m in metrics if m in summaries[0]["metrics"]]
    values = {(model, metric): np.array([s["per_model"][model][metric]["mean"]
                                         for s in summaries], np.float64)
              for model in models for metric in names}
    per_model = {model: {metric: {"values": values[model, metric].tolist(),
                                  "mean": float(np.mean(values[model, metric])),
                                  "sd": float(np.std(values[model, metric], ddof=1))
                                  if len(runs) > 1 else None}
                         for metric in names}
                 for model in models}
    differences = {}
    for arm in arms:
      differences[arm] = {}
      for metric in names:
        a, b, direction = values[arm, metric], values[against, metric], METRIC_DIRECTIONS[metric]
        better = [distance_from_best(x, direction) < distance_from_best(y, direction)
                  for x, y in zip(a, b)]
        differences[arm][metric] = {
            "values": (a - b).tolist(), "mean": float(np.mean(a - b)),
            "ci95": mean_interval(a - b), "min": float(np.min(a - b)),
            "max": float(np.max(a - b)), "arm_better": int(sum(better)), "direction": direction}
    out["protocols"][protocol] = {"images": summaries[0]["images"], "models": models,
                                  "per_model": per_model, "differences": differences}
  return out


def markdown(comparison: Mapping[str, Any], runs: Sequence[Mapping[str, Any]]) -> str:
  arms, against, seeds = comparison["arms"], comparison["against"], comparison["seeds"]
  machines = sorted({f"{run['machine'].get('cpu')} ({run['machine'].get('cores')} cores)"
                     for run in runs})
  compared = " --compare ".join(arms)
  lines = [f"# {', '.join(arms)} against {against} over {len(seeds)} seeds", "",
           f"Seeds {', '.join(map(str, seeds))}; machine: {'; '.join(machines)}. Each seed's run:",
           "", "```bash", *[run["command"] for run in runs], "```", "",
           f"Then `python -m jaxsr.study.seeds --compare {compared} --against {against} "
           "--out DIR RUN_DIR ...` wrote this page.", ""]
  for protocol, result in comparison["protocols"].items():
    metrics = list(result["differences"][arms[0]])
    labels = [report.METRIC_LABELS.get(m, m) for m in metrics]
    header = ["| | " + " | ".join(labels) + " |", "|---|" + "---|" * len(metrics)]
    lines += [f"## {protocol} ({', '.join(result['images'])})", "",
              "Mean ± standard deviation over the seeds (each seed's value is the mean over the "
              "protocol's images):", "", "| model" + header[0][1:], header[1]]
    for model in result["models"]:
      cells = []
      for m in metrics:
        summary = result["per_model"][model][m]
        sd = "" if summary["sd"] is None else f" ± {format_number(summary['sd'], m).lstrip('+')}"
        cells.append(format_number(summary["mean"], m) + sd)
      lines.append(f"| {model} | " + " | ".join(cells) + " |")
    for arm in arms:
      differences = result["differences"][arm]
      lines += ["", f"`{arm} - {against}`, seed by seed (the arms of a seed share its crops, "
                "degradations and discriminator initialisation):", "", *header]
      for i, seed in enumerate(seeds):
        cells = [format_number(differences[m]["values"][i], m, signed=True) for m in metrics]
        lines.append(f"| seed {seed} | " + " | ".join(cells) + " |")
      lines.append("| mean | " + " | ".join(
          format_number(differences[m]["mean"], m, signed=True) for m in metrics) + " |")
      if differences[metrics[0]]["ci95"] is not None:
        lines.append("| 95 % CI of the mean | " + " | ".join(
            "{} to {}".format(*(format_number(x, m, signed=True) for x in differences[m]["ci95"]))
            for m in metrics) + " |")
      lines.append(f"| seeds {arm} is better | " + " | ".join(
          f"{differences[m]['arm_better']} of {len(seeds)}" for m in metrics) + " |")
    lines.append("")
  return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
  parser = argparse.ArgumentParser(prog="python -m jaxsr.study.seeds", description=__doc__,
                                   formatter_class=argparse.RawDescriptionHelpFormatter)
  parser.add_argument("runs", nargs="+", type=Path,
                      help="the --out of each seed's study run (or runs)")
  parser.add_argument("--compare", required=True, action="append",
                      help="an arm being tested (repeat for several)")
  parser.add_argument("--against", required=True, help="the baseline arm they are compared with")
  parser.add_argument("--out", type=Path, required=True, help="folder for README.md, seeds.json")
  args = parser.parse_args(argv)
  try:
    runs = merge_same_seed([load_run(d) for d in args.runs])
    comparison = compare(runs, args.compare, args.against)
  except SeedsError as e:
    print(f"error: {e}", file=sys.stderr)
    return 2
  args.out.mkdir(parents=True, exist_ok=True)
  (args.out / "seeds.json").write_text(json.dumps(
      {**comparison, "runs": [{k: run[k] for k in ("dir", "seed", "machine", "command")}
                              for run in runs]}, indent=1) + "\n")
  (args.out / "README.md").write_text(markdown(comparison, runs) + "\n")
  print(f"written: {args.out / 'README.md'}")
  return 0


if __name__ == "__main__":
  sys.exit(main())
