"""TFDS builders on tiny trees laid out like the official downloads, built into tmp_path."""

import pathlib

import numpy as np
from PIL import Image
import pytest
import tensorflow_datasets as tfds
import tifffile

from jaxsr.data import builders
from jaxsr.data import tfds_source
from jaxsr.data.builders import __main__ as builders_cli
from jaxsr.data.builders import base
from tests.io import fixture_images as fx


def _build(builder_cls, manual_dir, data_dir, config=None, file_format="tfrecord"):
  builder = builder_cls(data_dir=str(data_dir), config=config, file_format=file_format)
  builder.download_and_prepare(
      download_config=tfds.download.DownloadConfig(manual_dir=str(manual_dir)))
  return builder


def _read_split(builder, split):
  """{file_name: example} of a TFRecord split, read back with TFDS's own decoders."""
  examples = {}
  for example in builder.as_dataset(split, shuffle_files=False).as_numpy_iterator():
    examples[example["file_name"].decode()] = example
  return examples


def test_stare_gzipped_and_plain_ppm(tmp_path):
  rng = np.random.default_rng(0)
  images = {f"im{i:04d}": fx.random_image(rng, (30, 40, 3)) for i in (1, 2, 5)}
  manual = tmp_path / "manual"
  for stem, image in images.items():
    gzipped = stem != "im0002"
    name = f"all-images/{stem}.ppm" + (".gz" if gzipped else "")
    fx.write(manual / name, fx.pnm_bytes(image), gzipped=gzipped)
  fx.write(manual / "all-images" / "im0001.txt", b"not an image")
  builder = _build(builders.Stare, manual, tmp_path / "data")
  examples = _read_split(builder, "train")
  assert sorted(examples) == ["im0001.ppm.gz", "im0002.ppm", "im0005.ppm.gz"]
  for file_name, example in examples.items():
    assert example["image"].dtype == np.uint8 and example["image"].shape == (30, 40, 3)
    assert (example["channels"], example["bit_depth"]) == (3, 8)
    np.testing.assert_array_equal(example["image"], images[file_name[:6]])
  # A TFRecord split has no random access: the source holds its encoded images instead.
  source = tfds_source.TfdsSource("stare", split="train", data_dir=str(tmp_path / "data"))
  assert sorted(source.name(i) for i in range(len(source))) == sorted(examples)
  for index in range(len(source)):
    np.testing.assert_array_equal(source.read(index), examples[source.name(index)]["image"])


def test_drive_training_and_test_tifs_form_the_test_split(tmp_path):
  rng = np.random.default_rng(1)
  manual = tmp_path / "manual" / "DRIVE"
  images = {}
  for name in ("training/images/21_training.tif", "training/images/22_training.tif",
               "test/images/01_test.tif", "test/images/02_test.tif"):
    images[pathlib.PurePath(name).name] = fx.random_image(rng, (30, 40, 3))
    (manual / name).parent.mkdir(parents=True, exist_ok=True)
    tifffile.imwrite(manual / name, images[pathlib.PurePath(name).name], photometric="rgb")
  # Not fundus images: a segmentation and a mask stay out.
  (manual / "training" / "1st_manual").mkdir()
  tifffile.imwrite(manual / "training" / "1st_manual" / "21_manual1.tif",
                   np.zeros((30, 40), np.uint8))
  Image.fromarray(np.zeros((30, 40), np.uint8)).save(manual / "training" / "21_mask.gif")
  builder = _build(builders.Drive, manual.parent, tmp_path / "data")
  assert list(builder.info.splits) == ["test"]
  examples = _read_split(builder, "test")
  assert sorted(examples) == sorted(images)
  for file_name, example in examples.items():
    np.testing.assert_array_equal(example["image"], images[file_name])


def _shenzhen_tree(manual: pathlib.Path):
  rng = np.random.default_rng(2)
  folder = manual / "ChinaSet_AllFiles" / "CXR_png"
  images = {
      "CHNCXR_0001_0.png": fx.random_image(rng, (30, 40), np.uint16),  # 16-bit gray
      "CHNCXR_0002_1.png": fx.random_image(rng, (44, 36), np.uint8),  # 8-bit gray, portrait
  }
  gray_as_rgb = fx.random_image(rng, (30, 40), np.uint8)  # stored RGB with R == G == B
  for name, image in images.items():
    fx.write(folder / name, fx.png_bytes(image))
  fx.write(folder / "CHNCXR_0003_0.png", fx.png_bytes(np.repeat(gray_as_rgb[..., None], 3, -1)))
  fx.write(folder / "Thumbs.db", b"windows thumbnail cache")
  images["CHNCXR_0003_0.png"] = gray_as_rgb
  return images


def _as_uint16(image):
  return image.astype(np.uint16) * 257 if image.dtype == np.uint8 else image


def test_shenzhen_original_keeps_16bit_and_promotes_8bit_exactly(tmp_path):
  images = _shenzhen_tree(tmp_path / "manual")
  builder = _build(builders.Shenzhen, tmp_path / "manual", tmp_path / "data", config="original")
  examples = _read_split(builder, "train")
  assert sorted(examples) == sorted(images)
  for file_name, example in examples.items():
    assert example["image"].dtype == np.uint16
    np.testing.assert_array_equal(example["image"][..., 0], _as_uint16(images[file_name]))
  sixteen = examples["CHNCXR_0001_0.png"]
  assert sixteen["image"].max() > 255 and sixteen["bit_depth"] == 16
  assert examples["CHNCXR_0002_1.png"]["bit_depth"] == 8
  assert [examples[n]["channels"] for n in sorted(examples)] == [1, 1, 3]


def test_shenzhen_multiscale_matches_pil_lanczos(tmp_path):
  images = _shenzhen_tree(tmp_path / "manual")
  builder = _build(builders.Shenzhen, tmp_path / "manual", tmp_path / "data", config="multiscale")
  examples = _read_split(builder, "train")
  assert len(examples) == 5 * len(images)
  for file_name, image in images.items():
    stem = file_name[:-4]
    height, width = image.shape
    # Real-ESRGAN's generate_multiscale_DF2K.py: int() truncation, and a copy whose shortest
    # edge is 400 with the other side int(400 * ratio).
    sizes = [(int(width * s), int(height * s)) for s in (0.75, 0.5, 1 / 3)]
    sizes.append((400, int(400 * height / width)) if width < height
                 else (int(400 * width / height), 400))
    np.testing.assert_array_equal(examples[file_name]["image"][..., 0], _as_uint16(image))
    for i, size in enumerate(sizes):
      got = examples[f"{stem}T{i}.png"]["image"][..., 0]
      assert got.shape == (size[1], size[0])
      if image.dtype == np.uint8:
        # What the script writes for an 8-bit file, stored x257.
        reference = np.asarray(Image.fromarray(image).resize(size, Image.LANCZOS)) * 257.0
      else:
        # Pillow's 32-bit "I" mode clipped to 16 bits (its I;16 resize is thousands of levels
        # off on noise, so it is no 16-bit reference).
        wide = Image.fromarray(image.astype(np.int32), mode="I").resize(size, Image.LANCZOS)
        reference = np.clip(np.asarray(wide), 0, 65535)
      np.testing.assert_array_equal(got, reference, err_msg=f"{file_name} {size}")


def _nih_tree(manual: pathlib.Path, count: int = 12):
  rng = np.random.default_rng(4)
  images = {}
  for i in range(count):
    name = f"{i:08d}_000.png"
    images[name] = fx.random_image(rng, (32, 32), np.uint8)
    archive = "images_001" if i < count // 2 else "images_002"
    pixels = images[name]
    if i % 3 == 0:  # a few ChestX-ray14 files are gray saved as RGBA
      pixels = np.dstack([pixels] * 3 + [np.full_like(pixels, 255)])
    fx.write(manual / archive / "images" / name, fx.png_bytes(pixels))
  fx.write(manual / "other" / "99999999_000.png", fx.png_bytes(np.zeros((4, 4), np.uint8)))
  return images


def _nih_subset(tmp_path, name, num_images, seed):
  config = builders.NihSubsetConfig(name=name, num_images=num_images, seed=seed)
  builder = _build(builders.NihChestXray14, tmp_path / "manual", tmp_path / "data", config=config)
  return _read_split(builder, "test")


def test_nih_subset_is_seeded(tmp_path):
  images = _nih_tree(tmp_path / "manual")
  first = _nih_subset(tmp_path, "random4_seed0", 4, 0)
  assert len(first) == 4 and set(first) <= set(images)
  for file_name, example in first.items():
    np.testing.assert_array_equal(example["image"][..., 0], _as_uint16(images[file_name]))
    assert example["channels"] == (4 if int(file_name[:8]) % 3 == 0 else 1)
  # Same seed, rebuilt elsewhere: the same files. Another seed: other files.
  (tmp_path / "data2").mkdir()
  same = _build(builders.NihChestXray14, tmp_path / "manual", tmp_path / "data2",
                config=builders.NihSubsetConfig(name="random4_seed0", num_images=4, seed=0))
  assert sorted(_read_split(same, "test")) == sorted(first)
  other = _nih_subset(tmp_path, "random4_seed1", 4, 1)
  assert len(other) == 4 and set(other) <= set(images) and set(other) != set(first)


def test_missing_download_names_manual_dir_and_says_what_to_get(tmp_path):
  # An empty manual_dir is caught by TFDS, a wrong download by the builder: both name the folder
  # and repeat the instructions.
  (tmp_path / "empty").mkdir()
  with pytest.raises(AssertionError, match=r"(?s)empty.*im0001\.ppm\.gz"):
    _build(builders.Stare, tmp_path / "empty", tmp_path / "data")
  fx.write(tmp_path / "wrong" / "CHNCXR_0001_0.png", fx.png_bytes(np.zeros((4, 4), np.uint8)))
  with pytest.raises(FileNotFoundError, match=r"(?s)wrong.*im0001\.ppm\.gz"):
    _build(builders.Stare, tmp_path / "wrong", tmp_path / "data")


def test_cli_builds_array_record_that_tfds_source_reads(tmp_path):
  rng = np.random.default_rng(5)
  images = {f"im{i:04d}.ppm.gz": fx.random_image(rng, (30, 40, 3)) for i in (3, 4)}
  for name, image in images.items():
    fx.write(tmp_path / "manual" / name, fx.pnm_bytes(image), gzipped=True)
  builders_cli.main(["stare", "--manual_dir", str(tmp_path / "manual"),
                     "--data-dir", str(tmp_path / "data")])
  source = tfds_source.TfdsSource("stare", split="train", data_dir=str(tmp_path / "data"))
  assert len(source) == 2
  for index in range(len(source)):
    np.testing.assert_array_equal(source.read(index), images[source.name(index)])


def test_colour_file_in_a_gray_set_becomes_luma_close_to_pillow():
  rng = np.random.default_rng(6)
  rgb = fx.random_image(rng, (20, 30, 3))
  gray = base.fit_layout(rgb, channels=1, dtype=np.uint16, name="x.png")
  # Pillow's "L" conversion uses the same ITU-R 601 weights in fixed point.
  pillow = np.asarray(Image.fromarray(rgb).convert("L")).astype(np.float64)
  assert gray.shape == (20, 30, 1) and gray.dtype == np.uint16
  assert np.abs(gray[..., 0] / 257.0 - pillow).max() <= 1.0


def test_16bit_file_in_an_8bit_set_is_refused_by_name():
  with pytest.raises(ValueError, match="deep.tif"):
    base.fit_layout(np.zeros((2, 2, 3), np.uint16), channels=3, dtype=np.uint8, name="deep.tif")
