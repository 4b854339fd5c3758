"""`python -m jaxsr.convert`: .pth -> model dir -> .pth / .safetensors, ncnn files, and every kind
of bad input."""

import os
import stat
import struct
import subprocess
import sys

import jax.numpy as jnp
import numpy as np
import pytest
import torch

from convert import torch_networks as tn
from jaxsr import checkpoint
from jaxsr.convert import __main__ as cli


def run_cli(*args) -> int:
  return cli.main([str(a) for a in args])


def small_generator(scale=4, seed=0):
  torch.manual_seed(seed)
  return tn.RRDBNet(scale=scale, num_block=2, num_feat=16, num_grow_ch=8).eval()


def save_pth(path, obj):
  torch.save(obj, path)
  return path


def assert_nothing_written(tmp_path, before):
  after = {p.relative_to(tmp_path) for p in tmp_path.rglob("*")}
  assert after == before, f"conversion left files behind: {sorted(after - before)}"


def snapshot(tmp_path):
  return {p.relative_to(tmp_path) for p in tmp_path.rglob("*")}


# --------------------------------------------------------------------------- good inputs

@pytest.mark.parametrize("wrapper", ["params_ema", "params", None])
def test_generator_pth_round_trip_is_exact_and_loads_strict(tmp_path, wrapper):
  net = small_generator(scale=2)
  state = {f"module.{k}" if wrapper == "params" else k: v for k, v in net.state_dict().items()}
  src = save_pth(tmp_path / "gen.pth", {wrapper: state} if wrapper else state)
  assert run_cli(src, "-o", tmp_path / "gen") == 0

  variables, meta = checkpoint.load(tmp_path / "gen")
  assert meta.kind == "generator"
  assert meta.arch == dict(type="RRDBNet", scale=2, num_feat=16, num_block=2, num_grow_ch=8,
                           num_out_ch=3)
  assert meta.source["file"] == "gen.pth" and len(meta.source["sha256"]) == 64
  x = torch.rand(1, 3, 8, 12)
  with torch.no_grad():
    expected = net(x).numpy().transpose(0, 2, 3, 1)
  out = checkpoint.build_model(meta).apply(variables, jnp.asarray(x.numpy().transpose(0, 2, 3, 1)))
  np.testing.assert_allclose(np.asarray(out), expected, atol=1e-5)

  assert run_cli("--to-torch", tmp_path / "gen", "-o", tmp_path / "back.pth") == 0
  loaded = torch.load(tmp_path / "back.pth", weights_only=True)
  assert list(loaded) == ["params_ema"]
  original = net.state_dict()
  assert set(loaded["params_ema"]) == set(original)
  for k, v in original.items():
    assert torch.equal(loaded["params_ema"][k], v), k
  fresh = tn.RRDBNet(scale=2, num_block=2, num_feat=16, num_grow_ch=8)
  fresh.load_state_dict(loaded["params_ema"], strict=True)


def test_params_ema_is_preferred_and_key_selects(tmp_path):
  ema, raw = small_generator(seed=1), small_generator(seed=2)
  src = save_pth(tmp_path / "both.pth", {"params": raw.state_dict(), "params_ema": ema.state_dict()})
  assert run_cli(src, "-o", tmp_path / "a") == 0
  assert run_cli(src, "-o", tmp_path / "b", "--key", "params") == 0
  a, meta_a = checkpoint.load(tmp_path / "a")
  b, meta_b = checkpoint.load(tmp_path / "b")
  assert meta_a.source["key"] == "params_ema" and meta_b.source["key"] == "params"
  np.testing.assert_array_equal(a["params"]["conv_first"]["bias"], ema.conv_first.bias.detach().numpy())
  np.testing.assert_array_equal(b["params"]["conv_first"]["bias"], raw.conv_first.bias.detach().numpy())


def test_legacy_esrgan_key_names_are_recognised(tmp_path):
  net = small_generator()
  legacy = {}
  for k, v in net.state_dict().items():
    k = (k.replace("conv_body", "trunk_conv").replace("conv_up1", "upconv1")
         .replace("conv_up2", "upconv2").replace("conv_hr", "HRconv"))
    if k.startswith("body."):
      _, block, rdb, rest = k.split(".", 3)
      k = f"RRDB_trunk.{block}.RDB{rdb[-1]}.{rest}"
    legacy[k] = v
  assert any(k.startswith("RRDB_trunk.0.RDB1.") for k in legacy)
  assert run_cli(save_pth(tmp_path / "old.pth", legacy), "-o", tmp_path / "old") == 0
  variables, _ = checkpoint.load(tmp_path / "old")
  np.testing.assert_array_equal(variables["params"]["conv_body"]["bias"],
                                net.conv_body.bias.detach().numpy())


def test_discriminator_round_trip_keeps_spectral_state(tmp_path):
  torch.manual_seed(0)
  net = tn.UNetDiscriminatorSN(num_feat=16)
  with torch.no_grad():
    net(torch.rand(1, 3, 16, 16))  # Non-initial u, v.
  src = save_pth(tmp_path / "netD.pth", {"params": net.state_dict()})
  assert run_cli(src, "-o", tmp_path / "netD") == 0
  variables, meta = checkpoint.load(tmp_path / "netD")
  assert meta.kind == "discriminator" and meta.arch["num_feat"] == 16
  np.testing.assert_array_equal(variables["spectral"]["conv5"]["v"], net.conv5.weight_v.numpy())
  assert run_cli("--to-torch", tmp_path / "netD", "-o", tmp_path / "netD_back.pth") == 0
  back = torch.load(tmp_path / "netD_back.pth", weights_only=True)["params"]
  for k, v in net.state_dict().items():
    assert torch.equal(back[k], v), k
  tn.UNetDiscriminatorSN(num_feat=16).load_state_dict(back, strict=True)


def test_vgg19_from_torchvision_layout_drops_classifier(tmp_path):
  torch.manual_seed(0)
  vgg = tn.VGG19()
  state = dict(vgg.state_dict())
  state["classifier.0.weight"] = torch.zeros(4, 8)  # torchvision files carry the classifier too.
  assert run_cli(save_pth(tmp_path / "vgg19-dcbb9e9d.pth", state), "-o", tmp_path / "vgg") == 0
  variables, meta = checkpoint.load(tmp_path / "vgg")
  assert meta.kind == "vgg19"
  np.testing.assert_array_equal(variables["params"]["conv3_4"]["kernel"],
                                vgg.features[16].weight.detach().numpy().transpose(2, 3, 1, 0))


def write_ncnn(path_stem, state, fp16: bool):
  """A minimal independent ncnn writer: graph of the convolutions, weights tagged fp16 or fp32."""
  convs = [k[:-len(".weight")] for k in state if k.endswith(".weight")]
  lines = ["7767517", f"{len(convs) + 1} {len(convs) + 1}", "Input in 0 1 data"]
  blob = b""
  prev = "data"
  for i, name in enumerate(convs):
    w = state[f"{name}.weight"].numpy()
    lines.append(f"Convolution conv{i} 1 1 {prev} b{i} 0={w.shape[0]} 1={w.shape[3]} 11={w.shape[2]} "
                 f"4=1 5=1 6={w.size}")
    prev = f"b{i}"
    if fp16:
      data = w.astype(np.float16).tobytes()
      blob += struct.pack("<I", 0x01306B47) + data + b"\0" * (-len(data) % 4)
    else:
      blob += struct.pack("<I", 0) + w.astype(np.float32).tobytes()
    blob += state[f"{name}.bias"].numpy().astype(np.float32).tobytes()
  param = path_stem.with_suffix(".param")
  param.write_text("\n".join(lines) + "\n")
  path_stem.with_suffix(".bin").write_bytes(blob)
  return param


@pytest.mark.parametrize("fp16", [True, False])
def test_ncnn_fp16_and_fp32(tmp_path, fp16):
  net = small_generator(seed=3)
  if fp16:  # Make the weights exactly representable so fp16 storage is lossless.
    with torch.no_grad():
      for p in net.parameters():
        p.copy_(p.half().float())
  param = write_ncnn(tmp_path / "model", net.state_dict(), fp16)
  assert run_cli(param, "-o", tmp_path / "m") == 0
  variables, meta = checkpoint.load(tmp_path / "m")
  assert meta.source["format"] == "ncnn"
  for k, v in net.state_dict().items():
    module, leaf = k.rsplit(".", 1)
    path = module.replace("body.", "body_", 1).split(".")
    node = variables["params"]
    for p in path:
      node = node[p]
    got = node["kernel" if leaf == "weight" else "bias"]
    want = v.numpy().transpose(2, 3, 1, 0) if v.ndim == 4 else v.numpy()
    np.testing.assert_array_equal(got, want, err_msg=k)


# --------------------------------------------------------------------------- bad inputs

BAD_CASES = {}


def bad(name):
  def register(fn):
    BAD_CASES[name] = fn
    return fn
  return register


@bad("not a model")
def _not_a_model(tmp_path):
  src = save_pth(tmp_path / "x.pth", {"encoder.weight": torch.zeros(3, 3), "head.bias": torch.zeros(3)})
  return [src], ["does not look like", "encoder.weight (3, 3)"]


@bad("discriminator as generator")
def _disc_as_gen(tmp_path):
  src = save_pth(tmp_path / "netD.pth", {"params": tn.UNetDiscriminatorSN(num_feat=8).state_dict()})
  return [src, "--kind", "generator"], ["holds a discriminator", "not a generator", "--kind discriminator"]


@bad("missing key")
def _missing(tmp_path):
  state = dict(small_generator().state_dict())
  del state["body.1.rdb2.conv3.weight"]
  return [save_pth(tmp_path / "g.pth", {"params_ema": state})], ["1 missing keys", "body.1.rdb2.conv3.weight"]


@bad("unexpected key")
def _unexpected(tmp_path):
  state = dict(small_generator().state_dict())
  state["body.0.rdb1.conv9.weight"] = torch.zeros(8, 16, 3, 3)
  return [save_pth(tmp_path / "g.pth", {"params_ema": state})], ["unexpected keys", "body.0.rdb1.conv9.weight"]


@bad("wrong shape")
def _wrong_shape(tmp_path):
  state = dict(small_generator().state_dict())
  state["conv_hr.weight"] = torch.zeros(16, 16, 5, 5)
  return [save_pth(tmp_path / "g.pth", {"params_ema": state})], [
      "shape mismatches", "conv_hr.weight is (16, 16, 5, 5), expected (16, 16, 3, 3)"]


@bad("truncated pth")
def _truncated(tmp_path):
  src = save_pth(tmp_path / "g.pth", {"params_ema": small_generator().state_dict()})
  data = src.read_bytes()
  src.write_bytes(data[: len(data) // 2])
  return [src], ["cannot be read", "truncated"]


class Payload:  # An arbitrary object: unpickling it would run code from the file.
  pass


@bad("pickled object")
def _pickled(tmp_path):
  src = save_pth(tmp_path / "evil.pth", {"params_ema": small_generator().state_dict(), "x": Payload()})
  return [src], ["refused", "weights_only=True"]


@bad("wrong wrapper key")
def _wrong_key(tmp_path):
  src = save_pth(tmp_path / "g.pth", {"params_ema": small_generator().state_dict()})
  return [src, "--key", "params"], ["no entry 'params'", "params_ema"]


@bad("truncated ncnn bin")
def _ncnn_truncated(tmp_path):
  param = write_ncnn(tmp_path / "m", small_generator().state_dict(), fp16=True)
  binf = param.with_suffix(".bin")
  binf.write_bytes(binf.read_bytes()[:-100])
  return [param], ["truncated"]


@bad("ncnn of another architecture")
def _ncnn_other(tmp_path):
  param = write_ncnn(tmp_path / "m", small_generator().state_dict(), fp16=True)
  lines = param.read_text().splitlines()
  lines[1] = "{0} {0}".format(int(lines[1].split()[0]) + 1)
  lines.append("Pooling pool0 1 1 b0 p0 0=0 1=2 2=2")  # A classifier's layer, not an SR network's.
  param.write_text("\n".join(lines) + "\n")
  return [param], ["Pooling layer", "not a Real-ESRGAN generator"]


@bad("missing file")
def _missing_file(tmp_path):
  return [tmp_path / "nope.pth"], ["does not exist"]


@pytest.mark.parametrize("case", sorted(BAD_CASES))
def test_bad_input_fails_cleanly(tmp_path, capsys, case):
  args, fragments = BAD_CASES[case](tmp_path)
  before = snapshot(tmp_path)
  assert run_cli(*args, "-o", tmp_path / "out") == 2
  err = capsys.readouterr().err
  assert err.startswith("error: ")
  for fragment in fragments:
    assert fragment in err, f"{fragment!r} not in {err!r}"
  assert_nothing_written(tmp_path, before)


def test_existing_output_is_not_overwritten_without_force(tmp_path, capsys):
  src = save_pth(tmp_path / "g.pth", small_generator().state_dict())
  (tmp_path / "out").mkdir()
  (tmp_path / "out" / "keep.txt").write_text("mine")
  assert run_cli(src, "-o", tmp_path / "out") == 2
  assert "already exists" in capsys.readouterr().err
  assert (tmp_path / "out" / "keep.txt").read_text() == "mine"
  assert run_cli(src, "-o", tmp_path / "out", "--force") == 0
  assert not (tmp_path / "out" / "keep.txt").exists()


def test_loading_a_discriminator_as_generator_is_refused(tmp_path):
  src = save_pth(tmp_path / "netD.pth", {"params": tn.UNetDiscriminatorSN(num_feat=8).state_dict()})
  assert run_cli(src, "-o", tmp_path / "netD") == 0
  with pytest.raises(checkpoint.CheckpointError, match="holds a discriminator.*generator is needed"):
    checkpoint.load(tmp_path / "netD", expect_kind="generator")


def test_a_training_directory_given_as_a_model_names_its_exports(tmp_path):
  src = save_pth(tmp_path / "g.pth", small_generator().state_dict())
  run = tmp_path / "run"
  assert run_cli(src, "-o", run / "export" / "generator_ema") == 0
  (run / "run.json").write_text("{}")
  with pytest.raises(checkpoint.CheckpointError,
                     match=r"training directory.*export[/\\]generator_ema"):
    checkpoint.load(run, expect_kind="generator")
  (run / "run.json").unlink()  # Any other folder: the generic message.
  with pytest.raises(checkpoint.CheckpointError, match="is missing"):
    checkpoint.load(run)


def test_conversion_failure_mid_save_leaves_nothing(tmp_path, monkeypatch):
  src = save_pth(tmp_path / "g.pth", small_generator().state_dict())

  def broken(*args, **kwargs):
    raise OSError("disk full")
  monkeypatch.setattr(checkpoint.ModelMetadata, "to_json", broken)
  before = snapshot(tmp_path)
  with pytest.raises(OSError, match="disk full"):
    cli.main([str(src), "-o", str(tmp_path / "out")])
  assert_nothing_written(tmp_path, before)


# --------------------------------------------------------------------------- exports

@pytest.mark.parametrize("scale", [4, 2])
def test_safetensors_export_holds_exactly_the_official_keys_and_loads_strict(tmp_path, scale):
  from safetensors.torch import load_file

  net = small_generator(scale=scale, seed=5)
  src = save_pth(tmp_path / "gen.pth", {"params_ema": net.state_dict()})
  assert run_cli(src, "-o", tmp_path / "gen") == 0
  assert run_cli("--to-torch", tmp_path / "gen", "-o", tmp_path / "gen.safetensors") == 0

  state = load_file(tmp_path / "gen.safetensors")
  official = net.state_dict()
  assert sorted(state) == sorted(official)  # Flat: no params_ema wrapper, no extra entries.
  for key, value in official.items():
    assert state[key].dtype == torch.float32 and torch.equal(state[key], value), key
  fresh = tn.RRDBNet(scale=scale, num_block=2, num_feat=16, num_grow_ch=8).eval()
  fresh.load_state_dict(state, strict=True)
  x = torch.rand(2, 3, 12, 8)
  with torch.no_grad():
    assert torch.equal(fresh(x), net(x))


def test_discriminator_safetensors_keeps_the_spectral_norm_keys(tmp_path):
  from safetensors.torch import load_file

  torch.manual_seed(1)
  net = tn.UNetDiscriminatorSN(num_feat=8)
  with torch.no_grad():
    net(torch.rand(1, 3, 16, 16))  # Non-initial u, v.
  assert run_cli(save_pth(tmp_path / "netD.pth", {"params": net.state_dict()}),
                 "-o", tmp_path / "netD") == 0
  assert run_cli("--to-torch", tmp_path / "netD", "-o", tmp_path / "netD.safetensors") == 0
  state = load_file(tmp_path / "netD.safetensors")
  assert sorted(state) == sorted(net.state_dict())
  fresh = tn.UNetDiscriminatorSN(num_feat=8)
  fresh.load_state_dict(state, strict=True)
  for key, value in net.state_dict().items():
    assert torch.equal(fresh.state_dict()[key], value), key


_TORCH_FREE_EXPORT = """
import sys

class NoTorch:  # Any attempt to import torch fails, as on a machine without it.
  def find_spec(self, name, path=None, target=None):
    if name == "torch" or name.startswith("torch."):
      raise ImportError(f"{name} is not installed here")
    return None

if sys.argv[3] == "block":
  sys.meta_path.insert(0, NoTorch())
from jaxsr.convert import __main__ as cli
status = cli.main(["--to-torch", sys.argv[1], "-o", sys.argv[2]])
print(status, "torch" in sys.modules)
"""


@pytest.mark.parametrize("mode", ["block", "watch"])
def test_safetensors_export_does_not_import_torch(tmp_path, mode):
  # "block": torch cannot be imported at all, and the export still works; "watch": torch is
  # installed, and the export leaves it unimported.
  net = small_generator(seed=6)
  assert run_cli(save_pth(tmp_path / "g.pth", net.state_dict()), "-o", tmp_path / "g") == 0
  run = subprocess.run([sys.executable, "-c", _TORCH_FREE_EXPORT, str(tmp_path / "g"),
                        str(tmp_path / "g.safetensors"), mode],
                       capture_output=True, text=True, timeout=300, check=False,
                       env=dict(os.environ, JAX_PLATFORMS="cpu"))
  assert run.returncode == 0, run.stderr[-3000:]
  assert run.stdout.split()[-2:] == ["0", "False"], run.stdout + run.stderr[-2000:]
  from safetensors.torch import load_file
  fresh = tn.RRDBNet(scale=4, num_block=2, num_feat=16, num_grow_ch=8)
  fresh.load_state_dict(load_file(tmp_path / "g.safetensors"), strict=True)


@pytest.mark.parametrize("name", ["g.pth", "g.safetensors"])
def test_exports_are_written_with_the_usual_file_mode(tmp_path, name):
  # Like any new file: 0666 less the umask (0644 under the usual 022), not a temporary file's
  # 0600, so other users and services can read a shared model.
  net = small_generator(seed=7)
  assert run_cli(save_pth(tmp_path / "src.pth", net.state_dict()), "-o", tmp_path / "g") == 0
  previous = os.umask(0o022)
  try:
    assert run_cli("--to-torch", tmp_path / "g", "-o", tmp_path / name) == 0
    os.umask(0o027)
    assert run_cli("--to-torch", tmp_path / "g", "-o", tmp_path / "strict" / name) == 0
  finally:
    os.umask(previous)
  assert stat.S_IMODE((tmp_path / name).stat().st_mode) == 0o644
  assert stat.S_IMODE((tmp_path / "strict" / name).stat().st_mode) == 0o640
  assert sorted(p.name for p in tmp_path.iterdir()) == sorted(["src.pth", "g", "strict", name])


def test_export_to_an_unknown_format_is_refused(tmp_path, capsys):
  net = small_generator(seed=8)
  assert run_cli(save_pth(tmp_path / "src.pth", net.state_dict()), "-o", tmp_path / "g") == 0
  assert run_cli("--to-torch", tmp_path / "g", "-o", tmp_path / "g.onnx") == 2
  assert "cannot tell the export format from g.onnx" in capsys.readouterr().err
  assert not (tmp_path / "g.onnx").exists()
