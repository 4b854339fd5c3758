"""The one raster decoder (jaxsr.io.raster, through jaxsr.io.files): every format, depth and layout.

This suite holds the tests of both former decoders (training's `jaxsr.data.decode` and the
inference reader `jaxsr.infer.imageio`). Fixtures are written byte by byte from the format
specifications (tests/io/fixture_images.py) or with Pillow, tifffile and TensorFlow; expected
values come from those writers' inputs, Pillow's or tifffile's own decoding, or NumPy, never
from jaxsr's reader. Each file is read the ways commands read it: `read_samples` (training,
from a path), `decode_samples` (training, from TFDS bytes) and `read_image` (evaluation,
upscaling), and these must agree.
"""

import io
import os

import numpy as np
import PIL.Image
import pytest
import tifffile

from jaxsr import io as jio
from jaxsr.data import decode
from tests.io import fixture_images as fx
from tests.io.test_write import check_read
from tests.io.test_write import pil_array
from tests.io.test_write import random_samples
from tests.io.test_write import smooth_image


@pytest.fixture
def rng():
  return np.random.default_rng(1234)


def read_all_ways(path) -> np.ndarray:
  """`read_samples`, after checking that bytes and `read_image` give the same."""
  samples = jio.read_samples(path)
  np.testing.assert_array_equal(jio.decode_samples(open(path, "rb").read(), name=str(path)),
                                samples)
  image = jio.read_image(path)
  assert image.bit_depth == (8 if samples.dtype == np.uint8 else 16)
  values = samples.astype(np.float64) / np.iinfo(samples.dtype).max
  colour = 1 if samples.shape[2] in (1, 2) else 3
  np.testing.assert_allclose(image.pixels, values[..., :colour], atol=1e-7)
  if samples.shape[2] in (2, 4):
    np.testing.assert_allclose(image.alpha, values[..., colour:], atol=1e-7)
  else:
    assert image.alpha is None
  return samples


# ----------------------------------------------------------------------------------------------
# PNG.


@pytest.mark.parametrize("shape", [(30, 40), (30, 40, 2), (30, 40, 3), (30, 40, 4)])
@pytest.mark.parametrize("dtype", [np.uint8, np.uint16])
def test_png_every_layout_and_depth(tmp_path, rng, shape, dtype):
  image = fx.random_image(rng, shape, dtype)
  path = fx.write(tmp_path / "x.png", fx.png_bytes(image))
  decoded = read_all_ways(path)
  expected = image if image.ndim == 3 else image[..., None]
  assert decoded.dtype == dtype
  np.testing.assert_array_equal(decoded, expected)


def test_16bit_values_above_255_survive(tmp_path):
  image = np.array([[0, 256, 4095], [30000, 65534, 65535]], np.uint16)
  decoded = read_all_ways(fx.write(tmp_path / "xray.png", fx.png_bytes(image)))
  assert decoded.dtype == np.uint16
  np.testing.assert_array_equal(decoded[..., 0], image)
  # float32 keeps all 16 bits: the result is the correctly rounded x / 65535.
  np.testing.assert_array_equal(decode.to_float_rgb(decoded)[..., 0],
                                (image.astype(np.float64) / 65535.0).astype(np.float32))


def test_palette_png_becomes_rgb(tmp_path):
  indices = np.array([[0, 1], [2, 1]], np.uint8)
  palette = [10, 20, 30, 200, 100, 0, 255, 255, 255]
  im = PIL.Image.fromarray(indices, mode="P")
  im.putpalette(palette)
  buffer = io.BytesIO()
  im.save(buffer, format="PNG")
  decoded = jio.decode_samples(buffer.getvalue())
  lut = np.array(palette, np.uint8).reshape(3, 3)
  np.testing.assert_array_equal(decoded, lut[indices])
  np.testing.assert_array_equal(read_all_ways(fx.write(tmp_path / "p.png", buffer.getvalue())),
                                lut[indices])


def test_palette_pngs_expand_to_colour_and_alpha(tmp_path):
  indices = np.random.default_rng(5).integers(0, 4, (6, 7), dtype=np.uint8)
  palette = np.array([[0, 0, 0], [255, 0, 0], [10, 200, 30], [90, 90, 250]], np.uint8)
  paletted = PIL.Image.fromarray(indices, mode="P")
  paletted.putpalette(palette.ravel().tolist())
  paletted.save(tmp_path / "opaque.png")
  paletted.save(tmp_path / "keyed.png", transparency=2)
  opaque = jio.read_image(tmp_path / "opaque.png")
  check_read(opaque, palette[indices], 8, "RGB")
  keyed = jio.read_image(tmp_path / "keyed.png")
  alpha = np.where(indices == 2, 0, 255).astype(np.uint8)[..., None]
  check_read(keyed, np.concatenate([palette[indices], alpha], axis=2), 8, "RGBA")
  np.testing.assert_array_equal(read_all_ways(tmp_path / "keyed.png"),
                                np.concatenate([palette[indices], alpha], axis=2))


@pytest.mark.parametrize("channels", [1, 3])
def test_png_colour_key_becomes_an_alpha_channel(tmp_path, channels):
  # tRNS on a gray or RGB PNG: the keyed colour is transparent. (Training's former decoder,
  # TensorFlow's decode_png, dropped the key; training drops alpha, so its pixels are the same.)
  samples = random_samples((6, 5, channels), 8, seed=6)
  key = samples[0, 0]
  pil_array(samples).save(tmp_path / "keyed.png",
                          transparency=int(key[0]) if channels == 1 else tuple(map(int, key)))
  alpha = np.where(np.all(samples == key, axis=2), 0, 255).astype(np.uint8)[..., None]
  np.testing.assert_array_equal(read_all_ways(tmp_path / "keyed.png"),
                                np.concatenate([samples, alpha], axis=2))


@pytest.mark.parametrize("depth", [1, 2, 4])
def test_low_bit_gray_png_is_scaled_to_8_bits(tmp_path, depth):
  levels = np.random.default_rng(depth).integers(0, 2 ** depth, (3, 8))
  packed = b"".join(b"\x00" + np.packbits(
      np.unpackbits(row.astype(np.uint8)[:, None], axis=1)[:, 8 - depth:].ravel()).tobytes()
                    for row in levels)
  (tmp_path / "low.png").write_bytes(fx.png_raw(packed, 8, 3, depth, colour_type=0))
  expected = (levels * (255 // (2 ** depth - 1))).astype(np.uint8)[..., None]
  np.testing.assert_array_equal(read_all_ways(tmp_path / "low.png"), expected)


def test_animated_png_is_refused(tmp_path):
  frames = [PIL.Image.new("RGB", (4, 4), colour) for colour in ("red", "blue")]
  frames[0].save(tmp_path / "anim.png", save_all=True, append_images=frames[1:])
  with pytest.raises(jio.UnsupportedImageError, match="animated PNG"):
    jio.read_samples(tmp_path / "anim.png")


# ----------------------------------------------------------------------------------------------
# PNM, gzip, BMP, JPEG.


@pytest.mark.parametrize("gzipped", [False, True])
def test_ppm_8bit_plain_and_gzipped(tmp_path, rng, gzipped):
  image = fx.random_image(rng, (30, 40, 3))
  path = fx.write(tmp_path / ("im0001.ppm.gz" if gzipped else "im0001.ppm"),
                  fx.pnm_bytes(image, comment=b"# made by a test\n"), gzipped=gzipped)
  decoded = read_all_ways(path)
  assert decoded.dtype == np.uint8
  np.testing.assert_array_equal(decoded, image)
  assert jio.read_image(path).source_format == "pnm"


def test_pnm_16bit_gray_and_colour(tmp_path, rng):
  gray = fx.random_image(rng, (30, 40), np.uint16)
  colour = fx.random_image(rng, (30, 40, 3), np.uint16)
  np.testing.assert_array_equal(
      read_all_ways(fx.write(tmp_path / "g.pgm", fx.pnm_bytes(gray))), gray[..., None])
  decoded = read_all_ways(fx.write(tmp_path / "c.ppm", fx.pnm_bytes(colour)))
  assert decoded.dtype == np.uint16
  np.testing.assert_array_equal(decoded, colour)


def test_pnm_10bit_is_stretched_to_full_16bit_range(tmp_path):
  image = np.array([[0, 1, 512, 1023]], np.uint16)
  decoded = read_all_ways(fx.write(tmp_path / "x.pgm", fx.pnm_bytes(image, maxval=1023)))
  np.testing.assert_array_equal(decoded[..., 0], np.round(image * (65535 / 1023)))


def test_plain_text_pgm_goes_through_pillow(tmp_path):
  image = np.array([[0, 7, 255], [1, 128, 254]], np.uint8)
  text = b"P2\n3 2\n255\n" + b"\n".join(b" ".join(b"%d" % v for v in row) for row in image)
  np.testing.assert_array_equal(read_all_ways(fx.write(tmp_path / "t.pgm", text)),
                                image[..., None])


def test_gzipped_16bit_png(tmp_path, rng):
  image = fx.random_image(rng, (9, 7, 3), np.uint16)
  path = fx.write(tmp_path / "scan.png.gz", fx.png_bytes(image), gzipped=True)
  np.testing.assert_array_equal(read_all_ways(path), image)


@pytest.mark.parametrize("mode", ["L", "RGB", "P"])
def test_bmp_is_read_as_pillow_decodes_it(tmp_path, mode):
  # Training always read BMP; upscaling and evaluation of folders now do too.
  samples = random_samples((7, 9, 1 if mode in ("L", "P") else 3), 8, seed=7)
  image = pil_array(samples)
  if mode == "P":
    image = image.convert("P")  # A palette of the (web) colours.
  image.save(tmp_path / "x.bmp")
  with PIL.Image.open(tmp_path / "x.bmp") as reference:
    expected = np.asarray(reference.convert("RGB" if reference.mode == "P" else reference.mode))
  decoded = read_all_ways(tmp_path / "x.bmp")
  np.testing.assert_array_equal(decoded, expected.reshape(expected.shape[:2] + (-1,)))
  assert jio.read_image(tmp_path / "x.bmp").source_format == "bmp"


def test_jpeg_is_read_as_8bit_rgb_close_to_what_was_written(tmp_path):
  # A smooth image survives JPEG at quality 100 to within a few levels.
  yy, xx = np.mgrid[0:32, 0:48]
  image = np.stack([yy * 6, xx * 4, (yy + xx) * 3], axis=-1).astype(np.uint8)
  PIL.Image.fromarray(image).save(tmp_path / "x.jpg", quality=100)
  decoded = read_all_ways(tmp_path / "x.jpg")
  assert decoded.shape == (32, 48, 3) and decoded.dtype == np.uint8
  assert np.abs(decoded.astype(int) - image).max() <= 4
  with PIL.Image.open(tmp_path / "x.jpg") as reference:  # Exactly Pillow's decoding.
    np.testing.assert_array_equal(decoded, np.asarray(reference))


# ----------------------------------------------------------------------------------------------
# TIFF.


def test_tiff_8bit_rgb_16bit_gray_and_16bit_colour(tmp_path, rng):
  rgb8 = fx.random_image(rng, (30, 40, 3))
  gray16 = fx.random_image(rng, (30, 40), np.uint16)
  rgb16 = fx.random_image(rng, (30, 40, 3), np.uint16)
  tifffile.imwrite(tmp_path / "a.tif", rgb8, photometric="rgb")
  tifffile.imwrite(tmp_path / "b.tif", gray16, photometric="minisblack")
  tifffile.imwrite(tmp_path / "c.tif", rgb16, photometric="rgb", compression="zlib")
  np.testing.assert_array_equal(read_all_ways(tmp_path / "a.tif"), rgb8)
  np.testing.assert_array_equal(read_all_ways(tmp_path / "b.tif"), gray16[..., None])
  decoded = read_all_ways(tmp_path / "c.tif")
  assert decoded.dtype == np.uint16
  np.testing.assert_array_equal(decoded, rgb16)


@pytest.mark.parametrize("bits", [8, 16])
def test_miniswhite_tiff_is_inverted_at_every_depth(tmp_path, bits):
  # Pillow, training's former TIFF decoder, inverted 8-bit MINISWHITE but not 16-bit.
  samples = random_samples((4, 5), bits, seed=8)
  tifffile.imwrite(tmp_path / "w.tif", samples, photometric="miniswhite")
  np.testing.assert_array_equal(read_all_ways(tmp_path / "w.tif")[..., 0],
                                (2 ** bits - 1) - samples)


@pytest.mark.parametrize("mode", ["L", "LA", "RGB", "RGBA", "I;16"])
def test_lzw_tiff_is_decoded_without_imagecodecs(tmp_path, mode):
  # LZW is the most common TIFF compression; tifffile needs the optional imagecodecs package for
  # it, so such pages go through Pillow (which training always used for them).
  samples = random_samples((6, 7, {"L": 1, "LA": 2, "RGB": 3, "RGBA": 4, "I;16": 1}[mode]),
                           16 if mode == "I;16" else 8, seed=9)
  pil_array(samples).save(tmp_path / "lzw.tif", compression="tiff_lzw")
  with tifffile.TiffFile(tmp_path / "lzw.tif") as written:
    assert written.pages[0].compression.name == "LZW"
  np.testing.assert_array_equal(read_all_ways(tmp_path / "lzw.tif"), samples)


def test_16bit_colour_lzw_tiff_needs_imagecodecs(tmp_path):
  import tifffile  # noqa: F401  (required: fails loudly if missing)
  try:
    import imagecodecs  # noqa: F401  pylint: disable=import-outside-toplevel,unused-import
    pytest.skip("imagecodecs is installed: tifffile decodes LZW itself")
  except ImportError:
    pass
  # tifffile cannot write LZW without imagecodecs: patch the compression tag of a raw file.
  samples = random_samples((4, 5, 3), 16, seed=10)
  buffer = io.BytesIO()
  tifffile.imwrite(buffer, samples, photometric="rgb")
  with tifffile.TiffFile(io.BytesIO(buffer.getvalue())) as tiff:
    offset = tiff.pages[0].tags["Compression"].valueoffset
  data = bytearray(buffer.getvalue())
  data[offset:offset + 2] = (5).to_bytes(2, "little")  # LZW
  with pytest.raises(jio.UnsupportedImageError, match="imagecodecs"):
    jio.decode_samples(bytes(data), name="wide.tif")


def test_palette_and_bilevel_tiffs_expand_as_pillow_expands_them(tmp_path):
  indices = np.random.default_rng(11).integers(0, 4, (5, 6), dtype=np.uint8)
  paletted = PIL.Image.fromarray(indices, mode="P")
  paletted.putpalette([0, 0, 0, 250, 10, 3, 7, 200, 90, 128, 128, 255])
  paletted.save(tmp_path / "p.tif")
  bilevel = PIL.Image.fromarray(indices > 1)
  bilevel.save(tmp_path / "b.tif")
  for name in ("p.tif", "b.tif"):
    with PIL.Image.open(tmp_path / name) as reference:
      expected = np.asarray(reference.convert("RGB" if reference.mode == "P" else "L"))
    np.testing.assert_array_equal(read_all_ways(tmp_path / name),
                                  expected.reshape(expected.shape[:2] + (-1,)))


# ----------------------------------------------------------------------------------------------
# Errors.


@pytest.mark.parametrize("data", [
    b"",
    b"not an image at all",
    fx.png_bytes(np.zeros((8, 8), np.uint8))[:40],  # truncated PNG
    fx.pnm_bytes(np.zeros((8, 8, 3), np.uint8))[:30],  # truncated raster
])
def test_corrupt_file_error_names_the_file(tmp_path, data):
  path = fx.write(tmp_path / "broken_scan.png", data)
  for read in (jio.read_samples, jio.read_image):
    with pytest.raises(jio.UnreadableImageError, match="broken_scan.png") as error:
      read(path)
    # Training's former name for the error, and a ValueError as it was.
    assert isinstance(error.value, jio.CorruptImageError)
    assert isinstance(error.value, ValueError)


def test_missing_file_error_names_the_file(tmp_path):
  with pytest.raises(jio.UnreadableImageError, match="nowhere.png"):
    jio.read_samples(tmp_path / "nowhere.png")


def test_missing_file_is_file_not_found(tmp_path):
  with pytest.raises(FileNotFoundError):
    jio.read_image(tmp_path / "absent.png")
  with pytest.raises(FileNotFoundError):
    jio.read_samples(tmp_path / "absent.png")


def truncated(data: bytes) -> bytes:
  return data[:len(data) * 2 // 3]


def encoded(samples, fmt, **options) -> bytes:
  buffer = io.BytesIO()
  if fmt == "TIFF":
    tifffile.imwrite(buffer, samples, **options)
  else:
    pil_array(samples).save(buffer, format=fmt, **options)
  return buffer.getvalue()


@pytest.mark.parametrize("name,content,cause", [
    ("empty.png", b"", "empty"),
    ("notes.png", b"these are not pixels" * 20, "not a PNG, TIFF, JPEG, BMP, PNM or DICOM"),
    ("cut.png", truncated(encoded(random_samples((64, 64, 3), 8), "PNG")), "cannot decode PNG"),
    ("cut.jpg", truncated(encoded(smooth_image(3), "JPEG")), "cannot decode JPEG"),
    ("cut.tif", truncated(encoded(random_samples((64, 64), 16), "TIFF")), "cannot decode TIFF"),
])
def test_unreadable_files_raise_a_named_error(tmp_path, name, content, cause):
  (tmp_path / name).write_bytes(content)
  for read in (jio.read_image, jio.read_samples):
    with pytest.raises(jio.UnreadableImageError, match=cause) as error:
      read(tmp_path / name)
    assert error.value.path == tmp_path / name and name in str(error.value)
  assert os.listdir(tmp_path) == [name]  # Nothing else appeared.


def cmyk_jpeg() -> bytes:
  buffer = io.BytesIO()
  PIL.Image.new("CMYK", (8, 8), (0, 50, 100, 0)).save(buffer, format="JPEG")
  return buffer.getvalue()


@pytest.mark.parametrize("name,content,cause", [
    ("float.tif", encoded(np.zeros((4, 4), np.float32), "TIFF"), "float32"),
    ("pages.tif", encoded(np.zeros((3, 4, 4), np.uint8), "TIFF", photometric="minisblack",
                          metadata=None), "multi-page"),
    ("cmyk.jpg", cmyk_jpeg(), "CMYK"),
])
def test_images_of_unsupported_kinds_are_refused(tmp_path, name, content, cause):
  # Refused by every command alike (training's former decoder converted CMYK to RGB without its
  # colour profile and read the first page of a multi-page TIFF).
  (tmp_path / name).write_bytes(content)
  for read in (jio.read_image, jio.read_samples):
    with pytest.raises(jio.UnsupportedImageError, match=cause):
      read(tmp_path / name)
