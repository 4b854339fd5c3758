"""`Upscaler` and `python -m jaxsr.upscale` against the PyTorch reference network on the same weights."""

import numpy as np
from PIL import Image

from jaxsr import upscale as cli
from jaxsr.infer.upscaler import Upscaler
from tests.upscale.reference import random_image, torch_sr


def test_rgb_uint8_matches_pytorch(models):
  nets, dirs = models
  img = random_image((10, 14, 3))
  out = Upscaler(dirs[4]).upscale(img)
  expected = np.round(np.clip(torch_sr(nets[4], img / np.float32(255)), 0, 1) * 255)
  assert out.dtype == np.uint8 and out.shape == (40, 56, 3)
  assert np.abs(out.astype(int) - expected).max() <= 1


def test_gray_stays_gray_and_is_bt601_luma_of_rgb_output(models):
  nets, dirs = models
  img = random_image((9, 11), seed=1)
  out = Upscaler(dirs[4]).upscale(img)
  assert out.shape == (36, 44) and out.dtype == np.uint8
  rgb = torch_sr(nets[4], np.repeat(img[..., None] / np.float32(255), 3, axis=2))
  luma = np.clip(rgb, 0, 1) @ np.array([0.299, 0.587, 0.114])
  assert np.abs(out.astype(int) - np.round(luma * 255)).max() <= 1


def test_x2_network_outputs_x2_by_default_even_for_odd_sizes(models):
  nets, dirs = models
  img = random_image((9, 13, 3), seed=2)  # Odd: needs the reflect mod-pad for pixel-unshuffle.
  out = Upscaler(dirs[2]).upscale(img.astype(np.float32) / 255)
  assert out.shape == (18, 26, 3) and out.dtype == np.float32
  padded = np.pad(img, ((0, 1), (0, 1), (0, 0)), mode="reflect").astype(np.float32) / 255
  expected = np.clip(torch_sr(nets[2], padded), 0, 1)[:18, :26]
  np.testing.assert_allclose(out, expected, atol=1e-5)


def test_outscale_2_with_x4_network_is_lanczos_of_x4_output(models):
  nets, dirs = models
  img = random_image((12, 12, 3), seed=3)
  out = Upscaler(dirs[4]).upscale(img.astype(np.float32) / 255, outscale=2)
  assert out.shape == (24, 24, 3)
  x4 = torch_sr(nets[4], img.astype(np.float32) / 255)
  lanczos = np.stack([np.asarray(Image.fromarray(x4[..., c]).resize((24, 24), Image.LANCZOS))
                      for c in range(3)], axis=-1)
  np.testing.assert_allclose(out, np.clip(lanczos, 0, 1), atol=1e-4)


def test_cli_png_and_jpeg(models, tmp_path):
  _, dirs = models
  Image.fromarray(random_image((8, 10, 3))).save(tmp_path / "in.jpg", quality=95)
  Image.fromarray(random_image((8, 10), seed=4)).save(tmp_path / "gray.png")
  assert cli.main(["-i", str(tmp_path / "in.jpg"), "-o", str(tmp_path / "out.png"),
                   "--model", str(dirs[4])]) == 0
  assert cli.main(["-i", str(tmp_path / "gray.png"), "-o", str(tmp_path / "gray_x2.png"),
                   "--model", str(dirs[4]), "--outscale", "2"]) == 0
  with Image.open(tmp_path / "out.png") as out:
    assert out.size == (40, 32) and out.mode == "RGB"
  with Image.open(tmp_path / "gray_x2.png") as out:
    assert out.size == (20, 16) and out.mode == "L"


def test_cli_refuses_a_discriminator_as_model(models, tmp_path, capsys):
  _, dirs = models
  Image.fromarray(random_image((8, 8, 3))).save(tmp_path / "in.png")
  assert cli.main(["-i", str(tmp_path / "in.png"), "-o", str(tmp_path / "out.png"),
                   "--model", str(dirs["D"])]) == 2
  assert "holds a discriminator" in capsys.readouterr().err
  assert not (tmp_path / "out.png").exists()


def test_cli_unreadable_input_writes_nothing(models, tmp_path, capsys):
  _, dirs = models
  (tmp_path / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"\0" * 20)
  assert cli.main(["-i", str(tmp_path / "broken.png"), "-o", str(tmp_path / "out.png"),
                   "--model", str(dirs[4])]) == 1
  assert "cannot be read" in capsys.readouterr().err
  assert sorted(p.name for p in tmp_path.iterdir()) == ["broken.png"]
