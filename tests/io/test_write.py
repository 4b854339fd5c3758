"""PNG/TIFF/JPEG written by jaxsr.io (after reading): bit depth, gray vs colour, alpha, metadata,
failed and refused writes, permissions. Reading alone is tested in test_raster.py.

Fixtures are written with Pillow, tifffile or TensorFlow and results are checked with them and
NumPy, never with jaxsr's own reader alone. The "network" is nearest-neighbour x2 in NumPy.
"""

import os
import stat

import numpy as np
import PIL.Image
import PIL.ImageCms
import PIL.JpegImagePlugin
import pytest
import tifffile

from jaxsr import io as jio

CHANNELS = {"L": 1, "LA": 2, "RGB": 3, "RGBA": 4}


def nearest_x2(a: np.ndarray) -> np.ndarray:
  return np.repeat(np.repeat(a, 2, axis=0), 2, axis=1)


def upscale(image: jio.Image) -> jio.Image:
  alpha = None if image.alpha is None else nearest_x2(image.alpha)
  return image.with_pixels(nearest_x2(image.pixels), alpha)


def random_samples(shape, bits, seed=0):
  return np.random.default_rng(seed).integers(0, 2 ** bits, shape, dtype=f"uint{bits}")


def as_hwc(a: np.ndarray) -> np.ndarray:
  return a.reshape(a.shape[:2] + (-1,))


def pil_array(samples: np.ndarray) -> PIL.Image.Image:
  return PIL.Image.fromarray(samples[..., 0] if samples.shape[2] == 1 else samples)


def srgb_profile() -> bytes:
  return PIL.ImageCms.ImageCmsProfile(PIL.ImageCms.createProfile("sRGB")).tobytes()


def tf_decode_png16(path) -> np.ndarray:
  import tensorflow as tf  # pylint: disable=import-outside-toplevel
  return tf.io.decode_png(open(path, "rb").read(), channels=0, dtype=tf.uint16).numpy()


def tf_encode_png16(samples: np.ndarray) -> bytes:
  import tensorflow as tf  # pylint: disable=import-outside-toplevel
  return tf.io.encode_png(samples).numpy()


def check_read(image, samples, bits, mode):
  """`image` holds `samples` / (2^bits - 1), with alpha split off."""
  expected = samples.astype(np.float64) / (2 ** bits - 1)
  assert image.mode == mode and image.bit_depth == bits
  assert image.pixels.dtype == np.float32
  colour = 1 if mode.startswith("L") else 3
  np.testing.assert_allclose(image.pixels, expected[..., :colour], atol=1e-7)
  if mode.endswith("A"):
    np.testing.assert_allclose(image.alpha, expected[..., colour:], atol=1e-7)
  else:
    assert image.alpha is None


@pytest.mark.parametrize("mode", ["L", "LA", "RGB", "RGBA"])
def test_8bit_png_round_trip(tmp_path, mode):
  samples = random_samples((7, 9, CHANNELS[mode]), 8)
  pil_array(samples).save(tmp_path / "in.png")
  image = jio.read_image(tmp_path / "in.png")
  check_read(image, samples, 8, mode)
  jio.write_image(tmp_path / "out.png", upscale(image))
  with PIL.Image.open(tmp_path / "out.png") as written:
    assert written.mode == mode
    np.testing.assert_array_equal(as_hwc(np.asarray(written)), nearest_x2(samples))


def test_16bit_gray_png_round_trip(tmp_path):
  samples = random_samples((11, 6, 1), 16)
  assert len(np.unique(samples)) > 60  # Every value is a distinct 16-bit level.
  PIL.Image.fromarray(samples[..., 0]).save(tmp_path / "in.png")  # Pillow's "I;16".
  image = jio.read_image(tmp_path / "in.png")
  check_read(image, samples, 16, "L")
  jio.write_image(tmp_path / "out.png", upscale(image))
  with PIL.Image.open(tmp_path / "out.png") as written:
    assert written.mode == "I;16"
    np.testing.assert_array_equal(as_hwc(np.asarray(written)), nearest_x2(samples))


def test_16bit_gray_png_keeps_more_than_256_levels(tmp_path):
  ramp = np.arange(0, 65536, 64, dtype=np.uint16).reshape(32, 32, 1)  # 1024 levels.
  PIL.Image.fromarray(ramp[..., 0]).save(tmp_path / "in.png")
  jio.write_image(tmp_path / "out.png", upscale(jio.read_image(tmp_path / "in.png")))
  with PIL.Image.open(tmp_path / "out.png") as written:
    levels = np.unique(np.asarray(written))
  assert len(levels) == 1024
  np.testing.assert_array_equal(levels, np.arange(0, 65536, 64))


@pytest.mark.parametrize("mode", ["LA", "RGB", "RGBA"])
def test_16bit_colour_png_round_trip(tmp_path, mode):
  # Pillow would silently keep only the high byte of these; TensorFlow's libpng keeps all 16.
  samples = random_samples((5, 8, CHANNELS[mode]), 16, seed=1)
  (tmp_path / "in.png").write_bytes(tf_encode_png16(samples))
  image = jio.read_image(tmp_path / "in.png")
  check_read(image, samples, 16, mode)
  jio.write_image(tmp_path / "out.png", upscale(image))
  np.testing.assert_array_equal(tf_decode_png16(tmp_path / "out.png"), nearest_x2(samples))


@pytest.mark.parametrize("mode", ["L", "RGBA"])
def test_16bit_png_spanning_several_encode_blocks(tmp_path, monkeypatch, mode):
  # Quantising and PNG filtering work a block of rows at a time; a block boundary must not show
  # (the "Up" filter of a block's first row refers to the previous block's last row).
  monkeypatch.setattr(jio.image, "ROWS_PER_BLOCK", 4)
  samples = random_samples((11, 3, CHANNELS[mode]), 16, seed=3)  # 2 full blocks + a short one.
  (tmp_path / "in.png").write_bytes(tf_encode_png16(samples))
  jio.write_image(tmp_path / "out.png", upscale(jio.read_image(tmp_path / "in.png")))
  np.testing.assert_array_equal(tf_decode_png16(tmp_path / "out.png"), nearest_x2(samples))


@pytest.mark.parametrize("bits", [8, 16])
@pytest.mark.parametrize("mode", ["L", "LA", "RGB", "RGBA"])
def test_tiff_round_trip(tmp_path, mode, bits):
  samples = random_samples((6, 10, CHANNELS[mode]), bits, seed=2)
  tifffile.imwrite(tmp_path / "in.tif", samples[..., 0] if mode == "L" else samples,
                   photometric="minisblack" if mode.startswith("L") else "rgb",
                   extrasamples=["unassalpha"] if mode.endswith("A") else None)
  image = jio.read_image(tmp_path / "in.tif")
  check_read(image, samples, bits, mode)
  jio.write_image(tmp_path / "out.tiff", upscale(image))
  with tifffile.TiffFile(tmp_path / "out.tiff") as written:
    page = written.pages[0]
    assert page.dtype == np.dtype(f"uint{bits}")
    assert page.photometric.name == ("MINISBLACK" if mode.startswith("L") else "RGB")
    assert [e.name for e in page.extrasamples] == (["UNASSALPHA"] if mode.endswith("A") else [])
    np.testing.assert_array_equal(as_hwc(page.asarray()), nearest_x2(samples))
  if mode == "L":  # A second, independent decoder.
    with PIL.Image.open(tmp_path / "out.tiff") as written:
      np.testing.assert_array_equal(as_hwc(np.asarray(written)), nearest_x2(samples))


def test_miniswhite_tiff_is_read_as_white_is_high(tmp_path):
  samples = random_samples((4, 5, 1), 16, seed=3)
  tifffile.imwrite(tmp_path / "in.tif", samples[..., 0], photometric="miniswhite")
  image = jio.read_image(tmp_path / "in.tif")
  np.testing.assert_allclose(image.pixels, 1.0 - samples / 65535.0, atol=1e-7)
  jio.write_image(tmp_path / "out.tif", image)  # Written back as min-is-black.
  np.testing.assert_array_equal(tifffile.imread(tmp_path / "out.tif"), 65535 - samples[..., 0])


def smooth_image(channels: int) -> np.ndarray:
  y, x = np.mgrid[0:48, 0:64]
  planes = [96 + 80 * np.sin(x / 9.0 + c) * np.cos(y / 7.0 - c) for c in range(channels)]
  return np.rint(np.stack(planes, axis=-1)).astype(np.uint8)


@pytest.mark.parametrize("mode", ["L", "RGB"])
def test_jpeg_round_trip_keeps_mode_and_quality(tmp_path, mode):
  pil_array(smooth_image(CHANNELS[mode])).save(tmp_path / "in.jpg", quality=95, subsampling=0)
  with PIL.Image.open(tmp_path / "in.jpg") as source:
    decoded = as_hwc(np.asarray(source))
  image = jio.read_image(tmp_path / "in.jpg")
  check_read(image, decoded, 8, mode)
  jio.write_image(tmp_path / "out.jpeg", upscale(image))
  with PIL.Image.open(tmp_path / "out.jpeg") as written:
    assert written.format == "JPEG" and written.mode == mode
    if mode == "RGB":
      assert PIL.JpegImagePlugin.get_sampling(written) == 0  # 4:4:4, no chroma subsampling.
    error = np.abs(as_hwc(np.asarray(written)).astype(int) - nearest_x2(decoded))
  assert error.mean() < 1.0 and error.max() <= 12


@pytest.mark.parametrize("suffix,bits", [(".png", 8), (".png", 16), (".tif", 8), (".tif", 16),
                                         (".jpg", 8)])
def test_dpi_scales_with_the_image_and_icc_profile_is_kept(tmp_path, suffix, bits):
  samples = random_samples((6, 8, 3 if bits == 8 else 1), bits, seed=4)
  profile = srgb_profile()
  source = tmp_path / f"in{suffix}"
  if suffix == ".tif":
    tifffile.imwrite(source, samples if bits == 8 else samples[..., 0], resolution=(150, 300),
                     resolutionunit="INCH", iccprofile=profile)
  else:
    pil_array(samples).save(source, dpi=(150, 300), icc_profile=profile)
  image = jio.read_image(source)
  assert image.icc_profile == profile
  np.testing.assert_allclose(image.dpi, (150, 300), rtol=1e-3)
  jio.write_image(tmp_path / f"out{suffix}", upscale(image))
  if suffix == ".tif":
    with tifffile.TiffFile(tmp_path / "out.tif") as written:
      np.testing.assert_allclose(written.pages[0].resolution, (300, 600), rtol=1e-3)
      assert bytes(written.pages[0].tags["InterColorProfile"].value) == profile
  else:
    with PIL.Image.open(tmp_path / f"out{suffix}") as written:
      np.testing.assert_allclose(written.info["dpi"], (300, 600), rtol=1e-3)
      assert written.info["icc_profile"] == profile
      if bits == 16:
        assert written.mode == "I;16"


def test_with_pixels_keeps_gray_gray_and_alpha_alpha():
  gray = jio.Image(pixels=np.zeros((4, 4, 1), np.float32), bit_depth=16,
                       source_format="png")
  with pytest.raises(ValueError, match="gray|mode L"):
    gray.with_pixels(np.zeros((8, 8, 3), np.float32))
  rgba = jio.Image(pixels=np.zeros((4, 4, 3), np.float32), bit_depth=8, source_format="png",
                       alpha=np.ones((4, 4, 1), np.float32))
  with pytest.raises(ValueError, match="alpha"):
    rgba.with_pixels(np.zeros((8, 8, 3), np.float32))
  assert rgba.with_pixels(np.zeros((8, 8, 3)), np.ones((8, 8, 1))).source_shape == (4, 4)


def test_output_is_clipped_to_the_sample_range(tmp_path):
  pixels = np.array([[-0.3, 0.5, 1.7]], np.float32).reshape(1, 3, 1)
  jio.write_image(tmp_path / "out.png",
                      jio.Image(pixels=pixels, bit_depth=16, source_format="png"))
  with PIL.Image.open(tmp_path / "out.png") as written:
    np.testing.assert_array_equal(np.asarray(written), [[0, 32768, 65535]])


# ----------------------------------------------------------------------------------------------
# Failed and refused writes.


@pytest.mark.parametrize("name", ["out.png", "out.tif", "out.jpg"])
def test_failed_write_leaves_no_partial_file_and_keeps_the_old_one(tmp_path, monkeypatch, name):
  image = jio.Image(pixels=np.full((8, 8, 3), 0.5, np.float32), bit_depth=8,
                        source_format="png")
  target = tmp_path / name
  target.write_bytes(b"previous result")

  def disk_full(fd):  # The file's bytes were written; flushing them to disk fails.
    assert os.fstat(fd).st_size > 0
    raise OSError(28, "No space left on device")

  monkeypatch.setattr(os, "fsync", disk_full)
  with pytest.raises(OSError, match="No space"):
    jio.write_image(target, image)
  assert os.listdir(tmp_path) == [name] and target.read_bytes() == b"previous result"
  with pytest.raises(OSError, match="No space"):
    jio.write_image(tmp_path / ("new" + target.suffix), image)
  assert os.listdir(tmp_path) == [name]


def test_refused_writes_create_nothing(tmp_path):
  rgba = jio.Image(pixels=np.zeros((4, 4, 3), np.float32), bit_depth=8, source_format="png",
                       alpha=np.ones((4, 4, 1), np.float32))
  with pytest.raises(ValueError, match="JPEG has no alpha"):
    jio.write_image(tmp_path / "out.jpg", rgba)
  with pytest.raises(ValueError, match="output format"):
    jio.write_image(tmp_path / "out.bmp", rgba)
  with pytest.raises(ValueError, match="only images read from DICOM"):
    jio.write_image(tmp_path / "out.dcm", rgba)
  assert os.listdir(tmp_path) == []


def test_file_format_overrides_the_suffix(tmp_path):
  samples = random_samples((3, 4, 1), 16)
  image = jio.Image(pixels=samples / np.float32(65535), bit_depth=16, source_format="tiff")
  jio.write_image(tmp_path / "result.bin", image, file_format="png")
  with PIL.Image.open(tmp_path / "result.bin") as written:
    assert written.format == "PNG"
    np.testing.assert_array_equal(np.asarray(written), samples[..., 0])


def test_written_files_get_ordinary_permissions(tmp_path):
  umask = os.umask(0o022)
  try:
    jio.write_image(tmp_path / "out.png", jio.Image(
        pixels=np.zeros((2, 2, 1), np.float32), bit_depth=8, source_format="png"))
  finally:
    os.umask(umask)
  assert stat.S_IMODE(os.stat(tmp_path / "out.png").st_mode) == 0o644
