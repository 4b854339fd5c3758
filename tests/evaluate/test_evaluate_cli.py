"""python -m jaxsr.evaluate end to end on bundled images with a tiny converted network.

The expected metrics are recomputed here from the PyTorch reference network and PIL / SciPy /
scikit-image steps, never read back from the code under test.
"""

import csv
import importlib.resources
import json

import numpy as np
import pytest
import torch
from PIL import Image
from scipy import ndimage
from skimage import metrics as skmetrics

from convert import torch_networks as tn
from jaxsr.convert import convert
from jaxsr.evaluate import __main__ as cli

CROP = 48  # Central crop of each source image: GT 48x48, LR 24x24 at x2.


@pytest.fixture(scope="module")
def nets(tmp_path_factory):
  """A tiny x4 generator (PyTorch) and its converted directory, plus a converted discriminator."""
  root = tmp_path_factory.mktemp("models")
  torch.manual_seed(0)
  net = tn.RRDBNet(scale=4, num_block=1, num_feat=16, num_grow_ch=8).eval()
  with torch.no_grad():
    # Random weights give outputs near 0 (clipped to black); this spreads them over [0, 1], so the
    # recomputed metrics below check real pixels.
    net.conv_last.weight.mul_(8.0)
    net.conv_last.bias.fill_(0.5)
  torch.save({"params_ema": net.state_dict()}, root / "tiny.pth")
  torch.save({"params": tn.UNetDiscriminatorSN(num_feat=8).state_dict()}, root / "netD.pth")
  return {"net": net, "tiny": convert(root / "tiny.pth", root / "tiny"),
          "netD": convert(root / "netD.pth", root / "netD")}


def _pil(image, size, method):
  return np.stack([np.asarray(Image.fromarray(np.ascontiguousarray(image[..., c], np.float32))
                              .resize(size, method)) for c in range(image.shape[-1])], -1)


def _q8(image):
  return np.round(np.clip(image, 0, 1) * 255) / 255


def _grad_energy(image):
  return np.mean([ndimage.sobel(image[..., c], axis=a, mode="reflect") ** 2
                  for c in range(image.shape[-1]) for a in (0, 1)]) * 2


def _expected_metrics(gt, net, gray):
  """GT -> LR (PIL bicubic, Gaussian sigma 1 in 7 taps) -> torch x4 -> Lanczos x2 -> metrics.

  Returns PSNR and the gradient-energy ratio (which the resampling kernel changes, unlike PSNR of
  this random network's output) on the 2-pixel-cropped images.
  """
  lr = _q8(ndimage.gaussian_filter(_pil(gt, (CROP // 2, CROP // 2), Image.Resampling.BICUBIC),
                                   (1.0, 1.0, 0), mode="mirror", truncate=3.0))
  with torch.no_grad():
    x4 = net(torch.from_numpy(lr.transpose(2, 0, 1)[None].astype(np.float32)))
  x4 = np.clip(x4[0].numpy().transpose(1, 2, 0), 0, 1)
  if gray:  # Real-ESRGAN on a gray image: BT.601 luma of the RGB output.
    x4 = np.repeat((x4 @ np.array([0.299, 0.587, 0.114]))[..., None], 3, -1)
  sr = _q8(_pil(x4, (CROP, CROP), Image.Resampling.LANCZOS))[2:-2, 2:-2]
  gt = gt[2:-2, 2:-2]
  return (skmetrics.peak_signal_noise_ratio(gt, sr, data_range=1),
          _grad_energy(sr) / _grad_energy(gt))


def _center(image):
  top, left = (image.shape[0] - CROP) // 2, (image.shape[1] - CROP) // 2
  return image[top:top + CROP, left:left + CROP]


def _retina_gt():
  path = importlib.resources.files("skimage") / "data" / "retina.jpg"
  with Image.open(path) as image:
    return _center(np.asarray(image, np.float64) / 255)


def _radiograph_gt():
  pydicom = pytest.importorskip("pydicom")
  from pydicom.data import get_testdata_file

  ds = pydicom.dcmread(get_testdata_file("RG1_UNCR.dcm", download=False))
  values = ds.pixel_array.astype(np.float64) * float(ds.get("RescaleSlope", 1)) + float(
      ds.get("RescaleIntercept", 0))
  values = 1 - (values - values.min()) / (values.max() - values.min())  # MONOCHROME1
  assert ds.PhotometricInterpretation == "MONOCHROME1"
  return _q8(np.repeat(_center(values)[..., None], 3, -1))


def test_cli_end_to_end_on_bundled_images_records_options_and_outscale(tmp_path, nets, capsys):
  out = tmp_path / "out"
  code = cli.main([
      "--protocol", "custom", "--scale", "2", "--gt-size", "none", "--crop", str(CROP),
      "--data", "skimage:retina.jpg", "--data", "pydicom-data:RG1_UNCR.dcm",
      "--model", str(nets["tiny"]), "--name", "tiny", "--bootstrap", "100", "--seed", "3",
      "--region", "retina=8,16,16", "--quiet", "-o", str(out)])
  assert code == 0
  assert {p.name for p in out.iterdir()} == {"per_image.csv", "summary.json", "summary.md",
                                             "comparison.png"}

  with open(out / "per_image.csv") as f:
    rows = list(csv.DictReader(f))
  assert list(rows[0]) == ["image", "model", "psnr", "ssim", "lpips", "hfen", "grad_ratio",
                           "bias", "seconds"]
  assert [(r["image"], r["model"]) for r in rows] == [
      ("retina", "bicubic"), ("retina", "tiny"), ("RG1_UNCR", "bicubic"), ("RG1_UNCR", "tiny")]
  measured = {(r["image"], r["model"]): (float(r["psnr"]), float(r["grad_ratio"])) for r in rows}
  # The x4 network's output, Lanczos-resized to the protocol's x2; RGB and gray (luma) paths.
  for image, gt, gray in (("retina", _retina_gt(), False), ("RG1_UNCR", _radiograph_gt(), True)):
    psnr, grad_ratio = _expected_metrics(gt, nets["net"], gray)
    assert measured[image, "tiny"][0] == pytest.approx(psnr, abs=1e-3)
    assert measured[image, "tiny"][1] == pytest.approx(grad_ratio, rel=1e-4)

  summary = json.loads((out / "summary.json").read_text())
  assert summary["protocol"]["name"] == "custom" and summary["protocol"]["scale"] == 2
  assert summary["protocol"]["gt_size"] is None
  assert summary["protocol"]["metrics"]["crop_border"] == 2
  assert summary["bootstrap"] == {**summary["bootstrap"], "n_resamples": 100, "seed": 3}
  assert summary["models"] == ["bicubic", "tiny"]
  tiny = summary["model_details"]["tiny"]
  assert (tiny["network_scale"], tiny["output_scale"]) == (4, 2)
  assert "x4" in tiny["output_resize"] and "x2" in tiny["output_resize"]
  assert "Lanczos" in tiny["output_resize"] and tiny["source"]["file"] == "tiny.pth"
  assert summary["data"]["crop"] == CROP and list(summary["data"]["images"]) == ["retina",
                                                                                "RG1_UNCR"]
  assert "--crop 48" in summary["command"]
  assert summary["figure"]["regions"]["retina"] == [8, 16, 16]

  markdown = (out / "summary.md").read_text()
  assert "| bicubic |" in markdown and "| tiny - bicubic |" in markdown
  assert "network x4 output resized to x2 with PIL Lanczos-3" in markdown
  assert "central 48x48 crop" in markdown
  assert "| tiny |" in capsys.readouterr().out  # The table is also printed.


def test_cli_takes_bundled_heldout_and_scores_a_dicom_alike_under_any_spec(tmp_path, nets):
  # `--data bundled:heldout` used to fail (evaluation had a grammar of its own), and RG1 scored
  # differently as a folder and as pydicom-data:. One registry now opens every spec.
  out = tmp_path / "out"
  assert cli.main([
      "--protocol", "custom", "--scale", "2", "--gt-size", "none", "--crop", str(CROP),
      "--data", "bundled:heldout", "--data", "pydicom-data:RG1_UNCR.dcm",
      "--model", str(nets["tiny"]), "--name", "tiny", "--lpips", "none", "--bootstrap", "20",
      "--figure-images", "0", "--quiet", "-o", str(out)]) == 0
  with open(out / "per_image.csv") as f:
    rows = {(r["image"], r["model"]): r for r in csv.DictReader(f)}
  assert sorted({image for image, _ in rows}) == sorted(
      ["retina.jpg[bottom]", "microaneurysms.png", "RG1_UNCR.dcm", "RG1_UNCR"])
  for model in ("bicubic", "tiny"):
    bundled, named = rows["RG1_UNCR.dcm", model], rows["RG1_UNCR", model]
    for metric in ("psnr", "ssim", "hfen", "grad_ratio", "bias"):
      assert bundled[metric] == named[metric], (model, metric)
  summary = json.loads((out / "summary.json").read_text())
  assert summary["data"]["specs"] == ["bundled:heldout", "pydicom-data:RG1_UNCR.dcm"]
  assert summary["data"]["images"]["RG1_UNCR.dcm"] == "bundled:heldout RG1_UNCR.dcm"
  assert summary["data"]["images"]["RG1_UNCR"] == "pydicom-data:RG1_UNCR.dcm"


def test_cli_refuses_a_spec_of_no_known_form_naming_the_forms(tmp_path, capsys):
  argv = ["--protocol", "custom", "--data", "bundled:tset", "-o", str(tmp_path / "out")]
  assert cli.main(argv) == 2
  assert "bundled:tset: no such split" in capsys.readouterr().err
  argv[3] = "skimge:retina.jpg"
  assert cli.main(argv) == 2
  message = capsys.readouterr().err
  assert message.startswith("error: 'skimge:retina.jpg' names no images")
  assert "tfds:NAME[/CONFIG], bundled:train|heldout[:NAME,...], skimage[:NAME,...]" in message
  assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("case", ["missing", "not_a_model", "discriminator", "names", "scale",
                                  "data", "region", "lock"])
def test_cli_refuses_bad_input_with_exit_2_before_any_work(tmp_path, nets, capsys, case):
  (tmp_path / "empty").mkdir()
  model = {"missing": tmp_path / "nope", "not_a_model": tmp_path / "empty",
           "discriminator": nets["netD"]}.get(case, nets["tiny"])
  argv = ["--protocol", "retina-x2", "--data", "skimage:retina.jpg", "--model", str(model),
          "-o", str(tmp_path / "out")]
  argv += {"names": ["--name", "a", "--name", "b"], "scale": ["--scale", "3"],
           "region": ["--region", "retnia=0,0,8"],
           "lock": ["--intensity-lock", "-0.5"]}.get(case, [])
  if case == "data":
    argv[3] = str(tmp_path / "no_such_folder")
  assert cli.main(argv) == 2
  message = capsys.readouterr().err
  expected = {"missing": "not a model directory", "not_a_model": "jaxsr_model.json is missing",
              "discriminator": "holds a discriminator, not a generator",
              "names": "2 --name for 1 --model", "scale": "--scale is fixed by retina-x2",
              "data": "no such file or folder", "region": "no image 'retnia'",
              "lock": "--intensity-lock must be >= 0"}[case]
  assert message.startswith("error: ") and expected in message
  assert not (tmp_path / "out").exists()


def test_cli_refuses_to_overwrite_results_without_force(tmp_path, capsys):
  (tmp_path / "summary.json").write_text("{}")
  argv = ["--protocol", "custom", "--data", "skimage:microaneurysms.png", "-o", str(tmp_path)]
  assert cli.main(argv) == 2
  assert "--force" in capsys.readouterr().err
  assert (tmp_path / "summary.json").read_text() == "{}"


def test_every_protocol_option_lands_in_the_recorded_protocol(tmp_path):
  out = tmp_path / "out"
  assert cli.main([
      "--protocol", "retina-x2", "--data", "skimage:microaneurysms.png", "--gt-size", "64x96",
      "--blur-sigma", "1.5", "--blur-kernel-size", "9", "--blur-border", "edge",
      "--color-space", "y", "--crop-border", "3", "--lpips", "none", "--no-vessel",
      "--bootstrap", "50", "--seed", "4", "--figure-images", "0", "--quiet", "-o", str(out)]) == 0
  summary = json.loads((out / "summary.json").read_text())
  protocol, metrics = summary["protocol"], summary["protocol"]["metrics"]
  assert protocol["gt_size"] == [64, 96] and protocol["scale"] == 2
  assert (protocol["blur_sigma"], protocol["blur_kernel_size"], protocol["blur_border"]) == (
      1.5, 9, "edge")
  assert (metrics["color_space"], metrics["crop_border"], metrics["lpips_net"],
          metrics["vessel"]) == ("y", 3, "", False)
  assert protocol["report"]["n_bootstrap"] == 50 and protocol["report"]["seed"] == 4
  assert summary["metrics"] == ["psnr", "ssim", "hfen", "grad_ratio", "bias"]
  assert not (out / "comparison.png").exists()
  markdown = (out / "summary.md").read_text()
  assert "sigma 1.5, 9x9, edge border" in markdown and "Y (BT.601), 3 px border" in markdown


def test_model_directories_by_protocol_record_their_provenance(tmp_path, nets):
  # What a training run's final evaluation and the fine-tuning study call: each protocol scores
  # its own images, every result file records the models' directories and weights.
  from jaxsr.evaluate import run

  rng = np.random.default_rng(1)
  colour = rng.random((40, 40, 3)).astype(np.float32)
  gray = np.repeat(rng.random((36, 36, 1)).astype(np.float32), 3, axis=-1)
  summaries = run.evaluate_model_dirs(
      {"custom": lambda: iter([("colour", colour), ("gray", gray)])},
      {"tiny": str(nets["tiny"])}, str(tmp_path), data={"source": "test"}, progress=False)
  summary = summaries["custom"]
  assert summary["models"] == ["bicubic", "tiny"] and summary["images"] == ["colour", "gray"]
  saved = json.loads((tmp_path / "custom" / "summary.json").read_text())
  assert saved["data"] == {"source": "test"}
  assert saved["model_details"]["tiny"]["directory"] == str(nets["tiny"])
  assert saved["model_details"]["tiny"]["source"]["sha256"]
  with open(tmp_path / "custom" / "per_image.csv") as f:
    rows = list(csv.DictReader(f))
  assert [(r["image"], r["model"]) for r in rows] == [
      ("colour", "bicubic"), ("colour", "tiny"), ("gray", "bicubic"), ("gray", "tiny")]
  assert run.parse_protocol_images("chest-x4:RG1_UNCR.dcm; retina-x2:a.png,b.png;custom:") == {
      "chest-x4": ["RG1_UNCR.dcm"], "retina-x2": ["a.png", "b.png"], "custom": []}
  with pytest.raises(ValueError, match="PROTOCOL:NAME"):
    run.parse_protocol_images("chest:RG1")


def test_a_compact_x3_network_is_scored_through_lanczos_to_the_protocol_scale(tmp_path):
  # SRVGGNetCompact at x3 (random weights, a PReLU network): its x3 output is Lanczos-resized to
  # the protocol's x2 and scored like any model; PSNR recomputed from the PyTorch network.
  torch.manual_seed(7)
  net = tn.SRVGGNetCompact(num_feat=8, num_conv=2, upscale=3).eval()
  torch.save({"params": net.state_dict()}, tmp_path / "compact.pth")
  model = convert(tmp_path / "compact.pth", tmp_path / "compact")
  out = tmp_path / "out"
  assert cli.main(["--protocol", "custom", "--scale", "2", "--gt-size", "none", "--crop",
                   str(CROP), "--data", "skimage:retina.jpg", "--model", str(model), "--name",
                   "compact", "--lpips", "none", "--figure-images", "0", "--quiet",
                   "-o", str(out)]) == 0
  with open(out / "per_image.csv") as f:
    rows = {r["model"]: r for r in csv.DictReader(f)}
  psnr, _ = _expected_metrics(_retina_gt(), net, gray=False)
  assert float(rows["compact"]["psnr"]) == pytest.approx(psnr, abs=1e-3)
  summary = json.loads((out / "summary.json").read_text())
  details = summary["model_details"]["compact"]
  assert (details["network_scale"], details["output_scale"]) == (3, 2)
  assert "SRVGGNetCompact x3 (2 convs" in (out / "summary.md").read_text()
