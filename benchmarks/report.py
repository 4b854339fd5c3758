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


# Process settings that change the measured times, recorded where set: a preloaded allocator
# (tcmalloc removes the page faults of freshly mapped buffers, for both frameworks), glibc's malloc
# tunables, and XLA's flags (jaxsr adds its own before JAX starts).
_ENVIRONMENT = ("LD_PRELOAD", "GLIBC_TUNABLES", "XLA_FLAGS")


def host_info(**extra) -> dict:
  """CPU model, core count and load (a busy machine explains odd ratios), the settings above
  where set, plus `extra`."""
  environment = {name: os.environ[name] for name in _ENVIRONMENT if os.environ.get(name)}
  return {"node": platform.node(), "cpu": cpu_name(), "cores": os.cpu_count(),
          "load_average": [round(x, 2) for x in os.getloadavg()],
          **({"environment": environment} if environment else {}), **extra}


def write_result(result: dict, out: Path) -> None:
  """Prints `result` as JSON and writes it to `out`."""
  text = json.dumps(result, indent=2)
  print(text)
  out.parent.mkdir(parents=True, exist_ok=True)
  out.write_text(text + "\n")
