"""`python -m jaxsr.convert --interpolate A B --alpha X`: two generators blended weight by weight,
checked in the official PyTorch layout against NumPy."""

import json

import numpy as np
import pytest
import torch
from safetensors.numpy import load_file

from convert import torch_networks as tn
from jaxsr import checkpoint
from jaxsr.convert import __main__ as cli


def run_cli(*args) -> int:
  return cli.main([str(a) for a in args])


def model_dir(tmp_path, name, net, key="params_ema"):
  """`net` saved as an official .pth and converted to a jaxsr model directory."""
  torch.save({key: net.state_dict()}, tmp_path / f"{name}.pth")
  assert run_cli(tmp_path / f"{name}.pth", "-o", tmp_path / name) == 0
  return tmp_path / name


def generator(seed, num_block=2):
  torch.manual_seed(seed)
  return tn.RRDBNet(scale=4, num_block=num_block, num_feat=16, num_grow_ch=8).eval()


def official_state(directory, tmp_path):
  """The model directory exported to safetensors and read back: {official key: array}."""
  out = tmp_path / f"{directory.name}.safetensors"
  assert run_cli("--to-torch", directory, "-o", out) == 0
  return load_file(out)


@pytest.mark.parametrize("alpha", [0.0, 0.3, 1.0])
def test_blend_is_numpy_blend_of_the_official_weights(tmp_path, alpha):
  net_a, net_b = generator(0), generator(1)
  a, b = model_dir(tmp_path, "a", net_a), model_dir(tmp_path, "b", net_b)
  assert run_cli("--interpolate", a, b, "--alpha", alpha, "-o", tmp_path / "blend") == 0
  got = official_state(tmp_path / "blend", tmp_path)
  state_a = {k: v.numpy() for k, v in net_a.state_dict().items()}
  state_b = {k: v.numpy() for k, v in net_b.state_dict().items()}
  assert set(got) == set(state_a)
  for k, want_a in state_a.items():
    want = ((1 - alpha) * want_a.astype(np.float64) + alpha * state_b[k].astype(np.float64))
    assert got[k].dtype == np.float32, k
    if alpha in (0.0, 1.0):  # The ends are the models themselves, bit for bit.
      np.testing.assert_array_equal(got[k], want_a if alpha == 0.0 else state_b[k], err_msg=k)
    else:
      np.testing.assert_allclose(got[k], want.astype(np.float32), rtol=0, atol=0, err_msg=k)
  # The blend loads strictly into the official architecture and records what it was made of.
  tn.RRDBNet(scale=4, num_block=2, num_feat=16, num_grow_ch=8).load_state_dict(
      {k: torch.from_numpy(v) for k, v in got.items()}, strict=True)
  meta = checkpoint.load_metadata(tmp_path / "blend")
  assert meta.kind == "generator" and meta.arch == checkpoint.load_metadata(a).arch
  assert meta.source["format"] == "interpolation" and meta.source["alpha"] == alpha
  variables_a, _ = checkpoint.load(a)
  assert meta.source["a"]["weights_sha256"] == checkpoint.weights_digest(variables_a)
  assert meta.source["b"]["file"] == "b.pth"


def test_what_cannot_be_blended_is_refused_and_nothing_is_written(tmp_path, capsys):
  a = model_dir(tmp_path, "a", generator(0))
  fewer_blocks = model_dir(tmp_path, "short", generator(1, num_block=1))
  torch.manual_seed(2)
  disc = model_dir(tmp_path, "disc", tn.UNetDiscriminatorSN(num_feat=16), key="params")
  b = model_dir(tmp_path, "b", generator(3))
  out = tmp_path / "blend"
  cases = [((a, fewer_blocks, 0.5, out), "different architectures (num_block: 2 vs 1)"),
           ((a, disc, 0.5, out), "holds a discriminator"),
           ((a, b, 1.5, out), "between 0 (model A) and 1 (model B), got 1.5"),
           ((a, b, float("nan"), out), "got nan"),
           ((a, b, 0.5, a), "is one of the models being blended")]
  for (x, y, alpha, target), message in cases:
    assert run_cli("--interpolate", x, y, "--alpha", alpha, "-o", target) == 2
    assert message in capsys.readouterr().err
    assert not out.exists()
  assert json.loads((a / checkpoint.METADATA_FILE).read_text())["source"]["format"] == "pth"
  out.mkdir()
  assert run_cli("--interpolate", a, b, "--alpha", 0.5, "-o", out) == 2
  assert "already exists" in capsys.readouterr().err
  assert run_cli("--interpolate", a, b, "--alpha", 0.5, "-o", out, "--force") == 0
  with pytest.raises(SystemExit):
    run_cli("--interpolate", a, b, "-o", tmp_path / "c")  # No --alpha.
  with pytest.raises(SystemExit):
    run_cli(tmp_path / "a.pth", "--alpha", 0.5)  # --alpha without --interpolate.
  assert not (tmp_path / "c").exists()
