"""What every benchmark records about its machine, and how it writes its JSON result."""

from __future__ import annotations

import json
import os
import platform
from pathlib import Path


def cpu_name() -> str:
  try:
    with open("/proc/cpuinfo") as f:
      for line in f:
        if line.startswith("model name"):
          return line.split(":", 1)[1].strip()
  except OSError:
    pass
  return platform.processor() or platform.machine()


def host_info(**extra) -> dict:
  """CPU model, core count and load (a busy machine explains odd ratios), plus `extra`."""
  return {"node": platform.node(), "cpu": cpu_name(), "cores": os.cpu_count(),
          "load_average": [round(x, 2) for x in os.getloadavg()], **extra}


def write_result(result: dict, out: Path) -> None:
  """Prints `result` as JSON and writes it to `out`."""
  text = json.dumps(result, indent=2)
  print(text)
  out.parent.mkdir(parents=True, exist_ok=True)
  out.write_text(text + "\n")
