"""The held-out crops: which windows are scored, under which protocol, and what their scores are.

Every expected value comes from `validation_reference` (NumPy, SciPy, PIL, scikit-image) or from
the construction of the test image, never from `jaxsr.train.validation` itself.
"""

from pathlib import Path

import ml_collections
import numpy as np
import pytest
from PIL import Image

from jaxsr.evaluate import protocols
from jaxsr.train import validation
from tests.train import validation_reference as ref


def config(data, **changes):
  c = ml_collections.ConfigDict(dict(data=str(data), max_images=8, protocol="auto", crop=48,
                                     crops_per_image=2))
  c.update(changes)
  return c


def test_the_window_with_the_texture_is_chosen_and_dark_busy_cells_are_not(tmp_path):
  # Gray 1024x1024 (chest-x4's GT size, so the GT is the image itself): flat gray with one
  # textured square inside the chest GT cell (2, 3) (cells of 48 * 4 = 192 px); a black region
  # with sparse bright dots (very busy, but background: mean < 0.05) in cell (0, 0).
  rng = np.random.default_rng(0)
  image = np.full((1024, 1024, 1), 0.5, np.float32)
  square = np.s_[2 * 192 + 20:2 * 192 + 170, 3 * 192 + 30:3 * 192 + 160]
  image[square] = rng.uniform(0.2, 0.9, image[square].shape)
  image[:192, :192] = 0.0
  dots = rng.random((192, 192)) < 0.03
  image[:192, :192][dots] = 1.0
  image = ref.save(tmp_path / "data", "square.png", image)
  assert image[:192, :192].mean() < 0.05  # Background by construction.

  v = validation.Validation(config(tmp_path / "data", crops_per_image=1), gt_size=32, scale=4,
                            local_batch=2)
  (crop,) = v.crops
  assert crop.protocol == "chest-x4" and crop.gray
  flat = image[-1, -1, 0]  # 0.5 as saved in 8 bits.
  rows, cols = np.nonzero(np.any(image != flat, axis=-1)[192:, 192:])  # The square, off cell 0.
  top, left = rows.min() + 192, cols.min() + 192
  bottom, right = rows.max() + 192, cols.max() + 192
  assert (crop.top <= top and bottom < crop.top + crop.height and crop.left <= left
          and right < crop.left + crop.width)
  assert (crop.top, crop.left, crop.height, crop.width) == (2 * 192, 3 * 192, 192, 192)
  assert [(crop.top, crop.left)] == ref.windows(image, 192, 1, border=4)
  np.testing.assert_array_equal(v.gts[0], image[crop.top:crop.top + 192, crop.left:crop.left + 192])
  # The LR crop is the aligned window of the whole image's LR (the protocol's pair).
  _, lr = protocols.make_pair(image, protocols.get_protocol("chest-x4"))
  np.testing.assert_array_equal(v.lq[0], lr[crop.top // 4:crop.top // 4 + 48,
                                            crop.left // 4:crop.left // 4 + 48])
  assert v.lq.shape == (2, 48, 48, 3)  # Padded to the per-host batch.
  # Asked for three, it gets two: the busy dark corner only after the textured square, since
  # nothing else has texture, and no flat cell (its gradient ratio would be 0 / 0).
  v3 = validation.Validation(config(tmp_path / "data", crops_per_image=3), gt_size=32, scale=4,
                             local_batch=2)
  assert [(c.top, c.left) for c in v3.crops] == ref.windows(image, 192, 3, border=4) == [
      (2 * 192, 3 * 192), (0, 0)]


def test_strata_windows_span_the_intensities_and_catch_a_drift_the_texture_windows_miss(tmp_path):
  # Gray 1024x1024 (chest-x4 as is; cells of 192 px): the left three cell columns a dark-gray
  # field (0.3), the rest a bright one (0.8), both with faint texture, and two strongly textured
  # cells in the bright part. The texture windows both lie in the bright part; the two intensity
  # strata (13 and 12 of the 25 cells) give one window in each.
  rng = np.random.default_rng(5)
  image = np.where(np.arange(1024)[None, :, None] < 3 * 192, 0.3, 0.8).astype(np.float32)
  image = np.repeat(image, 1024, axis=0) + rng.normal(0, 0.01, (1024, 1024, 1)).astype(np.float32)
  for top, left in ((0, 3 * 192), (3 * 192, 4 * 192)):
    image[top + 10:top + 180, left + 10:left + 180] += rng.uniform(
        -0.15, 0.15, (170, 170, 1)).astype(np.float32)
  image = ref.save(tmp_path / "data", "halves.png", np.clip(image, 0, 1))
  texture = validation.Validation(config(tmp_path / "data", windows="texture"), gt_size=32,
                                  scale=4, local_batch=2)
  strata = validation.Validation(config(tmp_path / "data", windows="strata"), gt_size=32,
                                 scale=4, local_batch=2)
  texture_corners = [(c.top, c.left) for c in texture.crops]
  strata_corners = [(c.top, c.left) for c in strata.crops]
  assert texture_corners == ref.windows(image, 192, 2, border=4)
  assert sorted(texture_corners) == [(0, 3 * 192), (3 * 192, 4 * 192)]
  assert strata_corners == ref.strata_windows(image, 192, 2, border=4)
  assert [left < 3 * 192 for _, left in strata_corners] == [True, False]  # Dark, then bright.
  # Three strata (9, 8 and 8 cells) as the reference deals them.
  assert [(c.top, c.left) for c in validation.Validation(
      config(tmp_path / "data", windows="strata", crops_per_image=3), gt_size=32, scale=4,
      local_batch=2).crops] == ref.strata_windows(image, 192, 3, border=4)
  # A "network" that brightens only the dark field by 3 levels: the texture windows see no
  # drift, the strata windows half of it (one window of two).
  def brighten_dark(lq):
    sr = ref.bicubic_x4_plus(0)(lq)
    return np.where(sr < 0.55, sr + 3 / 255, sr)
  offset = lambda v: v(brighten_dark)["val/bias"] - v(ref.bicubic_x4_plus(0))["val/bias"]
  assert abs(offset(texture)) < 0.05
  assert offset(strata) == pytest.approx(1.5, abs=0.2)
  with pytest.raises(ValueError, match="validation.windows"):
    validation.Validation(config(tmp_path / "data", windows="edges"), gt_size=32, scale=4,
                          local_batch=2)


@pytest.fixture(scope="module")
def gray_and_colour(tmp_path_factory):
  """A gray 1024 image (chest-x4 as is) and a colour 512 one (retina-x2 as is), smooth textures."""
  folder = tmp_path_factory.mktemp("heldout")
  rng = np.random.default_rng(1)
  gray = ref.save(folder, "a_gray.png", ref.texture(rng, 1024, 1))
  colour = ref.save(folder, "b_colour.png", ref.texture(rng, 512, 3))
  return folder, {"a_gray.png": gray, "b_colour.png": colour}


def reference_scores(images, upscale, luma=True):
  """Mean PSNR and bias over every image's reference windows (auto protocols), computed by
  validation_reference; `upscale(lr_crop)` is the model, `luma`: score gray images' luma."""
  psnrs, biases = [], []
  for name, image in images.items():
    gray = name == "a_gray.png"
    protocol = protocols.get_protocol("chest-x4" if gray else "retina-x2")
    gt, lr = protocols.make_pair(image, protocol)
    s, cell = protocol.scale, 48 * protocol.scale
    for top, left in ref.windows(gt, cell, 2, border=s):
      lr_crop = lr[top // s:top // s + 48, left // s:left // s + 48]
      sr = ref.as_scored(upscale(lr_crop, s), (cell, cell), gray=gray and luma)
      psnr, bias = ref.psnr_and_bias(sr, gt[top:top + cell, left:left + cell], border=s)
      psnrs.append(psnr)
      biases.append(bias)
  return float(np.mean(psnrs)), float(np.mean(biases))


def test_auto_picks_chest_for_gray_and_retina_for_colour_and_a_x4_network_is_lanczos_to_x2(
    gray_and_colour):
  folder, images = gray_and_colour
  v = validation.Validation(config(folder), gt_size=32, scale=4, local_batch=4)
  assert [(Path(c.image).name, c.protocol, c.gray, c.height) for c in v.crops] == [
      ("a_gray.png", "chest-x4", True, 192), ("a_gray.png", "chest-x4", True, 192),
      ("b_colour.png", "retina-x2", False, 96), ("b_colour.png", "retina-x2", False, 96)]
  # A "network" whose x4 output differs per channel and has detail, so the resize shows.
  rng = np.random.default_rng(2)
  raw = rng.uniform(-0.1, 1.1, (len(v.lq), 192, 192, 3)).astype(np.float32)
  outputs = v.outputs(lambda lq: raw)
  for crop, out, net in zip(v.crops, outputs, raw):
    clipped = np.clip(net, 0, 1)
    if crop.protocol == "retina-x2":  # x4 -> x2: PIL Lanczos-3 of the clipped output.
      expected = ref.pil(clipped, (96, 96), Image.Resampling.LANCZOS)
    else:  # Gray: BT.601 luma of the clipped output, in all three channels.
      luma = clipped[..., 0] * 0.299 + clipped[..., 1] * 0.587 + clipped[..., 2] * 0.114
      expected = np.repeat(luma[..., None], 3, axis=-1)
    np.testing.assert_allclose(out, expected, atol=1e-6)
  # Two protocols: overall means and per-protocol means.
  scores = v(ref.bicubic_x4_plus(0))
  for name in ("psnr", "ssim", "hfen", "grad_ratio", "bias"):
    assert {f"val/{name}", f"val/chest-x4/{name}", f"val/retina-x2/{name}"} <= set(scores)
  assert set(v.baseline) == {k.replace("val/", "val_bicubic/") for k in scores}
  # A named protocol applies to every image, whatever its colour.
  chest = validation.Validation(config(folder, protocol="chest-x4"), gt_size=32, scale=4,
                                local_batch=4)
  assert {c.protocol for c in chest.crops} == {"chest-x4"}
  assert not any(k.startswith("val/chest-x4/") for k in chest(ref.bicubic_x4_plus(0)))


def test_bias_and_psnr_equal_a_numpy_and_scikit_image_recomputation(gray_and_colour):
  folder, images = gray_and_colour
  v = validation.Validation(config(folder), gt_size=32, scale=4, local_batch=4)
  forward = ref.bicubic_x4_plus(3)
  scores = v(forward)
  psnr, bias = reference_scores(images, lambda lr, s: forward(lr[None])[0])
  assert scores["val/psnr"] == pytest.approx(psnr, abs=1e-4)
  assert scores["val/bias"] == pytest.approx(bias, abs=1e-3)
  # Bicubic's own bias is a small fraction of a level; the +3/255 survives 8-bit rounding.
  assert scores["val/bias"] == pytest.approx(3.0, abs=0.25)
  assert scores["val/bias"] - v(ref.bicubic_x4_plus(0))["val/bias"] == pytest.approx(3.0, abs=0.02)
  # The baseline is PIL bicubic at the protocol's scale (x4 chest, x2 colour), scored as is.
  bicubic = lambda lr, s: ref.pil(lr, (48 * s, 48 * s), Image.Resampling.BICUBIC)
  psnr, bias = reference_scores(images, bicubic, luma=False)
  assert v.baseline["val_bicubic/psnr"] == pytest.approx(psnr, abs=1e-4)
  assert v.baseline["val_bicubic/bias"] == pytest.approx(bias, abs=1e-3)


def test_custom_protocol_scores_the_whole_image_at_the_training_gt_size(gray_and_colour):
  folder, images = gray_and_colour
  v = validation.Validation(config(folder, protocol="custom"), gt_size=32, scale=4,
                            local_batch=4)
  assert [(Path(c.image).name, c.protocol, c.top, c.left, c.height, c.width)
          for c in v.crops] == [
      ("a_gray.png", "custom", 0, 0, 32, 32), ("b_colour.png", "custom", 0, 0, 32, 32)]
  assert v.lq.shape == (4, 8, 8, 3)
  protocol = protocols.get_protocol("custom", scale=4, gt_size=(32, 32))
  for gt, (name, image) in zip(v.gts, images.items()):
    np.testing.assert_array_equal(gt, protocols.make_ground_truth(image, protocol))


def test_a_window_larger_than_the_image_is_refused(gray_and_colour):
  folder, _ = gray_and_colour
  with pytest.raises(ValueError, match="lower validation.crop"):
    validation.Validation(config(folder, crop=300), gt_size=32, scale=4, local_batch=4)
  with pytest.raises(ValueError, match="validation.protocol"):
    validation.Validation(config(folder, protocol="chest"), gt_size=32, scale=4, local_batch=4)


def test_auto_follows_the_protocol_a_source_names_for_an_image():
  # microaneurysms.png is a gray fundus detail: its colour says chest, its source says retina.
  from jaxsr.data import bundled

  heldout = bundled.BundledImages("heldout")
  names = {heldout.name(i): heldout.protocol(i) for i in range(len(heldout))}
  assert names == {"retina.jpg[bottom]": "retina-x2", "microaneurysms.png": "retina-x2",
                   "RG1_UNCR.dcm": "chest-x4"}
  gray = np.zeros((8, 8, 3), np.float32)
  assert validation.protocol_name("auto", gray, "retina-x2") == "retina-x2"
  assert validation.protocol_name("auto", gray, None) == "chest-x4"
  assert validation.protocol_name("chest-x4", gray, "retina-x2") == "chest-x4"
