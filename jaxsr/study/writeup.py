"""The study's result files: README.md (tables and figures), results.json and config.json."""

from __future__ import annotations

import json
import math
import platform
from pathlib import Path
from typing import Any, Mapping, Sequence

from jaxsr.evaluate import report

# Columns of the study's main table, per protocol; vessel scores exist for fundus images only.
TABLE_METRICS = ("psnr", "ssim", "lpips", "hfen", "grad_ratio", "texture_ratio", "bias",
                 "vessel_f1")


def cpu_name() -> str:
  """The CPU's model name (Linux), else what `platform` knows."""
  try:
    with open("/proc/cpuinfo") as f:
      return next(line.split(":", 1)[1].strip() for line in f if line.startswith("model name"))
  except (OSError, StopIteration):
    return platform.processor() or platform.machine()


def format_number(value: float | None, metric: str, signed: bool = False) -> str:
  """A metric value as the study's tables print it: 2 decimals for dB, levels and ratios, else 4;
  a sign on the bias (and on anything `signed`, such as differences)."""
  if value is None or not math.isfinite(value):
    return "n/a"
  decimals = 2 if metric in ("psnr", "bias", "grad_ratio", "texture_ratio") else 4
  sign = "+" if signed or metric == "bias" else ""
  return f"{value:{sign}.{decimals}f}"


def _cell(stats: Mapping[str, Any] | None, metric: str) -> str:
  return format_number(stats.get("mean") if stats else None, metric)


def protocol_table(summary: Mapping[str, Any]) -> list[str]:
  """One Markdown table: a row per model (bicubic first), the study's metrics as columns."""
  metrics = [m for m in TABLE_METRICS if m in summary["metrics"]]
  header = ["model", *[report.METRIC_LABELS.get(m, m) for m in metrics]]
  lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
  for model in summary["models"]:
    stats = summary["per_model"][model]
    lines.append("| " + " | ".join([model, *[_cell(stats.get(m), m) for m in metrics]]) + " |")
  return lines


def paired_lines(summary: Mapping[str, Any], against: str, metrics: Sequence[str] = ("psnr",
                                                                                   "bias")) -> list[str]:
  """"model - against" mean differences with their bootstrap CIs, where there are 2+ images."""
  lines = []
  for pair, values in summary["paired_differences"].items():
    if not pair.endswith(f" - {against}"):
      continue
    parts = []
    for metric in metrics:
      value = values.get(metric) or {}
      if value.get("mean") is None:
        continue
      low, high = value.get("ci_low"), value.get("ci_high")
      ci_text = f" [{low:+.2f}, {high:+.2f}]" if low is not None and high is not None else ""
      parts.append(f"{metric} {value['mean']:+.2f}{ci_text}")
    if parts:
      lines.append(f"- {pair}: " + ", ".join(parts))
  return lines


def validation_table(arms: Sequence[Mapping[str, Any]]) -> list[str]:
  """Per arm: the held-out validation crops' scores at the start and at the end of training."""
  lines = ["| arm | steps | val PSNR start -> end | val bias start -> end | "
           "val grad. ratio start -> end | best step |", "|---|---|---|---|---|---|"]
  for arm in arms:
    history = arm.get("validation") or []
    if not history:
      lines.append(f"| {arm['name']} | {arm['steps']} | n/a | n/a | n/a | n/a |")
      continue
    first, last = history[0], history[-1]

    def pair(key, fmt):
      if key not in first or key not in last:
        return "n/a"
      return f"{first[key]:{fmt}} -> {last[key]:{fmt}}"

    best = max(history, key=lambda h: h.get("val/psnr", -math.inf))
    lines.append(f"| {arm['name']} | {arm['steps']} | {pair('val/psnr', '.2f')} | "
                 f"{pair('val/bias', '+.2f')} | {pair('val/grad_ratio', '.2f')} | "
                 f"{best.get('step', 'n/a')} |")
  return lines


def write(out_dir: Path, *, command: str, arms: Sequence[Mapping[str, Any]],
          summaries: Mapping[str, Mapping[str, Any]], configs: Mapping[str, Mapping[str, Any]],
          seconds: float, machine: Mapping[str, Any], intro: str = "") -> Path:
  """Writes OUT/README.md, OUT/results.json and OUT/config.json; returns the README's path."""
  out_dir.mkdir(parents=True, exist_ok=True)
  lines = ["# Fine-tuning study (offline, held-out images)", ""]
  if intro:
    lines += [intro.strip(), ""]
  lines += ["Reproduce:", "", "```bash", command, "```", "",
            f"Wall time {seconds / 60:.1f} min on {machine.get('cpu', 'this machine')} "
            f"({machine.get('cores', '?')} cores, {machine.get('devices', '?')}).", ""]
  lines += ["## Arms", "", "| arm | what it changes | why |", "|---|---|---|"]
  for arm in arms:
    changes = ", ".join(f"`{k}={v}`" for k, v in arm["overrides"].items()) or "(the base config)"
    lines.append(f"| {arm['name']} | {changes} | {arm.get('why', '')} |")
  lines.append("")
  for protocol_name, summary in summaries.items():
    images = ", ".join(summary.get("images", []))
    lines += [f"## {protocol_name} ({images})", ""]
    lines += protocol_table(summary)
    lines.append("")
    paired = paired_lines(summary, against="pretrained")
    if paired:
      lines += ["Paired differences against the pretrained model (95 % bootstrap CI over images "
                "where there are two or more):", "", *paired, ""]
    lines += [f"Per image: [{protocol_name}/per_image.csv]({protocol_name}/per_image.csv); "
              f"every option: [{protocol_name}/summary.md]({protocol_name}/summary.md).", "",
              f"![{protocol_name}]({protocol_name}/comparison.png)", ""]
  lines += ["## Held-out validation during training", "",
            "Fixed crops of the held-out images at the protocols' resolution, scored every few "
            "steps by the trainer (`val/*`); the last row of each run is the exported EMA.", ""]
  lines += validation_table(arms)
  lines += ["", "Exact training configs: [config.json](config.json). Every number above: "
            "[results.json](results.json).", ""]
  readme = out_dir / "README.md"
  readme.write_text("\n".join(lines))
  (out_dir / "config.json").write_text(json.dumps(configs, indent=1, sort_keys=True, default=str))
  (out_dir / "results.json").write_text(json.dumps(
      {"command": command, "seconds": seconds, "machine": dict(machine), "arms": list(arms),
       "summaries": {k: dict(v) for k, v in summaries.items()}},
      indent=1, default=str))
  return readme
