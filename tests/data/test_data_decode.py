"""jaxsr.data.decode: every format and bit depth comes back exactly as written."""

import io

import numpy as np
from PIL import Image
import pytest
import tifffile

from jaxsr.data import decode

from tests.data import fixture_images as fx


@pytest.fixture
def rng():
  return np.random.default_rng(1234)


@pytest.mark.parametrize("shape", [(30, 40), (30, 40, 2), (30, 40, 3), (30, 40, 4)])
@pytest.mark.parametrize("dtype", [np.uint8, np.uint16])
def test_png_every_layout_and_depth(tmp_path, rng, shape, dtype):
  image = fx.random_image(rng, shape, dtype)
  path = fx.write(tmp_path / "x.png", fx.png_bytes(image))
  decoded = decode.read_image(path)
  expected = image if image.ndim == 3 else image[..., None]
  assert decoded.dtype == dtype
  np.testing.assert_array_equal(decoded, expected)


def test_16bit_values_above_255_survive(tmp_path):
  image = np.array([[0, 256, 4095], [30000, 65534, 65535]], np.uint16)
  decoded = decode.read_image(fx.write(tmp_path / "xray.png", fx.png_bytes(image)))
  assert decoded.dtype == np.uint16
  np.testing.assert_array_equal(decoded[..., 0], image)
  # float32 keeps all 16 bits: the result is the correctly rounded x / 65535.
  np.testing.assert_array_equal(decode.to_float_rgb(decoded)[..., 0],
                                (image.astype(np.float64) / 65535.0).astype(np.float32))


@pytest.mark.parametrize("gzipped", [False, True])
def test_ppm_8bit_plain_and_gzipped(tmp_path, rng, gzipped):
  image = fx.random_image(rng, (30, 40, 3))
  path = fx.write(tmp_path / ("im0001.ppm.gz" if gzipped else "im0001.ppm"),
                  fx.pnm_bytes(image, comment=b"# made by a test\n"), gzipped=gzipped)
  decoded = decode.read_image(path)
  assert decoded.dtype == np.uint8
  np.testing.assert_array_equal(decoded, image)


def test_pnm_16bit_gray_and_colour(tmp_path, rng):
  gray = fx.random_image(rng, (30, 40), np.uint16)
  colour = fx.random_image(rng, (30, 40, 3), np.uint16)
  np.testing.assert_array_equal(
      decode.read_image(fx.write(tmp_path / "g.pgm", fx.pnm_bytes(gray))), gray[..., None])
  decoded = decode.read_image(fx.write(tmp_path / "c.ppm", fx.pnm_bytes(colour)))
  assert decoded.dtype == np.uint16
  np.testing.assert_array_equal(decoded, colour)


def test_pnm_10bit_is_stretched_to_full_16bit_range(tmp_path):
  image = np.array([[0, 1, 512, 1023]], np.uint16)
  decoded = decode.read_image(fx.write(tmp_path / "x.pgm", fx.pnm_bytes(image, maxval=1023)))
  np.testing.assert_array_equal(decoded[..., 0], np.round(image * (65535 / 1023)))


def test_tiff_8bit_rgb_16bit_gray_and_16bit_colour(tmp_path, rng):
  rgb8 = fx.random_image(rng, (30, 40, 3))
  gray16 = fx.random_image(rng, (30, 40), np.uint16)
  rgb16 = fx.random_image(rng, (30, 40, 3), np.uint16)
  tifffile.imwrite(tmp_path / "a.tif", rgb8, photometric="rgb")
  tifffile.imwrite(tmp_path / "b.tif", gray16, photometric="minisblack")
  tifffile.imwrite(tmp_path / "c.tif", rgb16, photometric="rgb", compression="zlib")
  np.testing.assert_array_equal(decode.read_image(tmp_path / "a.tif"), rgb8)
  np.testing.assert_array_equal(decode.read_image(tmp_path / "b.tif"), gray16[..., None])
  decoded = decode.read_image(tmp_path / "c.tif")
  assert decoded.dtype == np.uint16
  np.testing.assert_array_equal(decoded, rgb16)


def test_jpeg_is_read_as_8bit_rgb_close_to_what_was_written(tmp_path):
  # A smooth image survives JPEG at quality 100 to within a few levels.
  yy, xx = np.mgrid[0:32, 0:48]
  image = np.stack([yy * 6, xx * 4, (yy + xx) * 3], axis=-1).astype(np.uint8)
  Image.fromarray(image).save(tmp_path / "x.jpg", quality=100)
  decoded = decode.read_image(tmp_path / "x.jpg")
  assert decoded.shape == (32, 48, 3) and decoded.dtype == np.uint8
  assert np.abs(decoded.astype(int) - image).max() <= 4


def test_palette_png_becomes_rgb(tmp_path):
  indices = np.array([[0, 1], [2, 1]], np.uint8)
  palette = [10, 20, 30, 200, 100, 0, 255, 255, 255]
  im = Image.fromarray(indices, mode="P")
  im.putpalette(palette)
  buffer = io.BytesIO()
  im.save(buffer, format="PNG")
  decoded = decode.decode_image(buffer.getvalue())
  lut = np.array(palette, np.uint8).reshape(3, 3)
  np.testing.assert_array_equal(decoded, lut[indices])


@pytest.mark.parametrize("data", [
    b"",
    b"not an image at all",
    fx.png_bytes(np.zeros((8, 8), np.uint8))[:40],  # truncated PNG
    fx.pnm_bytes(np.zeros((8, 8, 3), np.uint8))[:30],  # truncated raster
])
def test_corrupt_file_error_names_the_file(tmp_path, data):
  path = fx.write(tmp_path / "broken_scan.png", data)
  with pytest.raises(decode.CorruptImageError, match="broken_scan.png"):
    decode.read_image(path)


def test_missing_file_error_names_the_file(tmp_path):
  with pytest.raises(decode.CorruptImageError, match="nowhere.png"):
    decode.read_image(tmp_path / "nowhere.png")


def test_to_float_rgb_divides_by_the_container_range_and_repeats_gray():
  gray8 = np.array([[[0], [51], [255]]], np.uint8)
  rgba16 = np.array([[[65535, 0, 32768, 7]]], np.uint16)
  out8 = decode.to_float_rgb(gray8)
  assert out8.shape == (1, 3, 3) and out8.dtype == np.float32
  np.testing.assert_array_equal(out8[..., 1], np.float32([[0.0, 0.2, 1.0]]))
  np.testing.assert_array_equal(out8[..., 0], out8[..., 2])
  np.testing.assert_array_equal(
      decode.to_float_rgb(rgba16), np.float32([[[1.0, 0.0, 32768 / 65535]]]))
