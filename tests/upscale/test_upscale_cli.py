"""`python -m jaxsr.upscale` on folders, globs, bad files, 16-bit PNG and DICOM.

Fixtures are written here with Pillow and pydicom (plus pydicom-data's broken, palette and
multi-frame files); expected pixels come from the PyTorch network on the same weights, run whole (the CLI is
given --tile 0 where values are compared, so both see zero padding at the border), NumPy luma
and PIL's Lanczos.
"""

import gzip
import json
import os
import shutil
import subprocess
import sys

import numpy as np
import pydicom
import pytest
import torch
from PIL import Image
from pydicom.data import get_testdata_file
from pydicom.dataset import FileDataset, FileMetaDataset
from pydicom.uid import ComputedRadiographyImageStorage, ExplicitVRLittleEndian, generate_uid

from convert import torch_networks as tn
from jaxsr import upscale as cli
from jaxsr.infer import compilation_cache
from tests.infer import test_compilation_cache as cache_test
from tests.upscale import reference


def run(*args) -> int:
  return cli.main([str(a) for a in args])


def files_under(folder):
  return sorted(str(p.relative_to(folder)) for p in folder.rglob("*") if p.is_file())


def write_cr(path, stored, *, bits_stored=12, series_uid=None):
  """A small MONOCHROME1 computed-radiography DICOM file holding `stored` (uint16)."""
  meta = FileMetaDataset()
  meta.MediaStorageSOPClassUID = ComputedRadiographyImageStorage
  meta.MediaStorageSOPInstanceUID = generate_uid()
  meta.TransferSyntaxUID = ExplicitVRLittleEndian
  ds = FileDataset(str(path), {}, file_meta=meta, preamble=b"\0" * 128)
  ds.SOPClassUID = ComputedRadiographyImageStorage
  ds.SOPInstanceUID = meta.MediaStorageSOPInstanceUID
  ds.PatientName, ds.PatientID, ds.Modality = "Test^Patient", "P-0001", "CR"
  ds.StudyInstanceUID, ds.SeriesInstanceUID = generate_uid(), series_uid or generate_uid()
  ds.Rows, ds.Columns = stored.shape
  ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME1"
  ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, bits_stored, 11, 0
  ds.PixelSpacing, ds.ImagerPixelSpacing = [0.2, 0.3], [0.25, 0.35]
  ds.PixelData = stored.astype("<u2").tobytes()
  ds.save_as(path, enforce_file_format=True)


def test_folder_keeps_relative_paths_formats_and_modes(models, tmp_path, capsys):
  nets, dirs = models
  src = tmp_path / "in"
  (src / "sub" / "deeper").mkdir(parents=True)
  (src / ".cache").mkdir()
  rgb = reference.random_image((16, 20, 3))
  Image.fromarray(rgb).save(src / "a.png")
  Image.fromarray(reference.random_image((10, 12), seed=1)).save(src / "sub" / "b.jpg",
                                                                 quality=95)
  Image.fromarray(reference.random_image((8, 6, 4), seed=2)).save(src / "sub" / "deeper" / "c.tif")
  (src / "notes.txt").write_text("not an image")
  Image.fromarray(rgb).save(src / ".cache" / "hidden.png")
  Image.fromarray(rgb).save(src / "sub" / ".hidden.png")

  assert run("-i", src, "-o", tmp_path / "out", "--model", dirs[2], "--tile", 0) == 0
  out = tmp_path / "out"
  assert files_under(out) == ["a.png", "sub/b.jpg", "sub/deeper/c.tif"]
  assert "3 written, 1 skipped (1 not image files), 0 failed" in capsys.readouterr().out
  with Image.open(out / "a.png") as a, Image.open(out / "sub" / "b.jpg") as b, \
       Image.open(out / "sub" / "deeper" / "c.tif") as c:
    assert (a.mode, a.size, b.mode, b.size, c.mode, c.size) == (
        "RGB", (40, 32), "L", (24, 20), "RGBA", (12, 16))
    expected = np.round(np.clip(reference.torch_sr(nets[2], rgb / np.float32(255)), 0, 1) * 255)
    assert np.abs(np.asarray(a).astype(int) - expected).max() <= 1


def test_glob_keeps_paths_below_its_fixed_folders_and_names_suffixless_dicom(models, tmp_path):
  _, dirs = models
  data = tmp_path / "data"
  for sub in ("p1", "p2"):
    (data / sub).mkdir(parents=True)
    Image.fromarray(reference.random_image((12, 14, 3))).save(data / sub / "scan.png")
  Image.fromarray(reference.random_image((12, 14, 3))).save(data / "p2" / "other.png")
  write_cr(data / "p2" / "IM0001", np.arange(16 * 18, dtype=np.uint16).reshape(16, 18))

  assert run("-i", f"{data}/**/scan.png", "-o", tmp_path / "out", "--model", dirs[2]) == 0
  assert files_under(tmp_path / "out") == ["p1/scan.png", "p2/scan.png"]
  with Image.open(tmp_path / "out" / "p2" / "scan.png") as out:
    assert out.size == (28, 24)  # The x2 network's own scale, never a default x4.
  # A glob tries every file it matches, so DICOM files without a suffix can be named.
  assert run("-i", f"{data}/p2/IM*", "-o", tmp_path / "dcm", "--model", dirs[2]) == 0
  assert files_under(tmp_path / "dcm") == ["IM0001.dcm"]
  assert pydicom.dcmread(tmp_path / "dcm" / "IM0001.dcm").Rows == 32


def test_bmp_and_gzipped_pgm_are_upscaled_like_any_image_and_written_as_png(models, tmp_path,
                                                                            capsys):
  # Training always read these; the one listing rule and decoder make upscaling read them too.
  nets, dirs = models
  src = tmp_path / "in"
  src.mkdir()
  rgb = reference.random_image((12, 10, 3), seed=3)
  Image.fromarray(rgb).save(src / "a.bmp")
  gray16 = reference.random_image((8, 6), seed=4).astype(np.uint16) * 257
  (src / "b.pgm.gz").write_bytes(gzip.compress(
      b"P5\n6 8\n65535\n" + gray16.astype(">u2").tobytes()))
  assert run("-i", src, "-o", tmp_path / "out", "--model", dirs[2], "--tile", 0) == 0
  assert "2 written, 0 skipped, 0 failed" in capsys.readouterr().out
  assert files_under(tmp_path / "out") == ["a.png", "b.png"]
  with Image.open(tmp_path / "out" / "a.png") as a, Image.open(tmp_path / "out" / "b.png") as b:
    assert (a.mode, a.size, b.mode, b.size) == ("RGB", (20, 24), "I;16", (12, 16))
    expected = np.round(np.clip(reference.torch_sr(nets[2], rgb / np.float32(255)), 0, 1) * 255)
    assert np.abs(np.asarray(a).astype(int) - expected).max() <= 1
    expected = np.round(reference.torch_sr_gray(nets[2], gray16 / np.float32(65535)) * 65535)
    assert np.abs(np.asarray(b).astype(int) - expected).max() <= 1


def test_bad_files_are_reported_the_others_written_and_nothing_partial_left(models, tmp_path,
                                                                              capsys):
  _, dirs = models
  src = tmp_path / "in"
  src.mkdir()
  Image.fromarray(reference.random_image((12, 10, 3))).save(src / "good.png")
  shutil.copy(get_testdata_file("SC_rgb.dcm"), src / "colour.dcm")
  png = (src / "good.png").read_bytes()
  (src / "truncated.png").write_bytes(png[:len(png) // 2])
  (src / "empty.tif").write_bytes(b"")
  shutil.copy(get_testdata_file("MR_truncated.dcm"), src / "truncated.dcm")
  shutil.copy(get_testdata_file("OBXXXX1A_rle.dcm"), src / "palette.dcm")

  assert run("-i", src, "-o", tmp_path / "out", "--model", dirs[2], "--tile", 32) == 1
  out, err = capsys.readouterr()
  errors = [line for line in err.splitlines() if line.startswith("error:")]
  assert len(errors) == 4
  for name, reason in [("truncated.png", "cannot be read"), ("empty.tif", "file is empty"),
                       ("truncated.dcm", "cannot be read"),
                       ("palette.dcm", "PhotometricInterpretation PALETTE COLOR is not supported")]:
    assert any(name in line and reason in line for line in errors), (name, errors)
  assert "2 written, 0 skipped, 4 failed" in out
  assert files_under(tmp_path / "out") == ["colour.dcm", "good.png"]  # No partial files.
  colour = pydicom.dcmread(tmp_path / "out" / "colour.dcm")
  assert colour.PhotometricInterpretation == "RGB" and colour.pixel_array.shape == (200, 200, 3)


def test_multi_frame_mr_series_comes_back_as_one_multi_frame_object(models, tmp_path, capsys):
  nets, dirs = models
  path = get_testdata_file("emri_small.dcm")  # Enhanced MR: 10 frames of 64x64, 12 bits.
  source = pydicom.dcmread(path)
  assert run("-i", path, "-o", tmp_path / "mr_x2.dcm", "--model", dirs[2], "--tile", 0) == 0
  assert "64x64x10 frames -> " in capsys.readouterr().out
  written = pydicom.dcmread(tmp_path / "mr_x2.dcm")
  assert int(written.NumberOfFrames) == 10 and (written.Rows, written.Columns) == (128, 128)
  assert written.SOPInstanceUID != source.SOPInstanceUID
  assert written.StudyInstanceUID == source.StudyInstanceUID

  # Each frame through the PyTorch network, with the series' one min..max intensity mapping.
  stored = source.pixel_array.astype(np.float64)
  low, high = stored.min(), stored.max()
  expected = np.stack([
      np.rint(low + reference.torch_sr_gray(nets[2], ((frame - low) / (high - low)).astype(
          np.float32)) * (high - low)) for frame in stored])
  assert np.abs(written.pixel_array.astype(int) - expected).max() <= 1

  # A PNG holds one frame: refused before the network runs, with the way out.
  assert run("-i", path, "-o", tmp_path / "png", "--model", dirs[2], "--format", "png") == 1
  assert "multi-frame DICOM or a multi-page TIFF (--format dcm or tiff)" in (
      capsys.readouterr().err)
  assert run("-i", path, "-o", tmp_path / "tif", "--model", dirs[2], "--format", "tiff") == 0
  assert files_under(tmp_path / "tif") == ["emri_small.tif"]


def test_sixteen_bit_png_stays_sixteen_bit_with_all_its_levels(models, tmp_path):
  nets, dirs = models
  rows, cols = np.mgrid[0:24, 0:28]
  gray16 = (rows * 2000 + cols * 97 + 1234).astype(np.uint16)  # 672 distinct levels.
  Image.fromarray(gray16).save(tmp_path / "in.png")
  assert run("-i", tmp_path / "in.png", "-o", tmp_path / "out.png", "--model", dirs[4],
             "--tile", 0) == 0
  with Image.open(tmp_path / "out.png") as out:
    assert out.mode == "I;16" and out.size == (112, 96)
    out = np.asarray(out)
  assert out.dtype == np.uint16 and len(np.unique(out)) > 256
  expected = np.round(reference.torch_sr_gray(nets[4], gray16 / np.float32(65535)) * 65535)
  assert np.abs(out.astype(int) - expected).max() <= 1


def test_outscale_2_with_a_x4_network_is_lanczos_of_its_output(models, tmp_path):
  nets, dirs = models
  rgb = reference.random_image((20, 24, 3), seed=5)
  Image.fromarray(rgb).save(tmp_path / "in.png")
  assert run("-i", tmp_path / "in.png", "-o", tmp_path / "out.png", "--model", dirs[4],
             "--outscale", 2, "--tile", 0) == 0
  x4 = np.clip(reference.torch_sr(nets[4], rgb / np.float32(255)), 0, 1)
  expected = np.stack([reference.lanczos(x4[..., c], 40, 48) for c in range(3)], axis=-1)
  with Image.open(tmp_path / "out.png") as out:
    assert out.size == (48, 40)
    assert np.abs(np.asarray(out).astype(int) - np.round(np.clip(expected, 0, 1) * 255)).max() <= 1


@pytest.fixture
def radiograph(tmp_path):
  """A 12-bit MONOCHROME1 CR file; its values and what the network is shown (white = dense)."""
  stored = np.random.default_rng(6).integers(300, 3800, (18, 22)).astype(np.uint16)
  write_cr(tmp_path / "cr.dcm", stored)
  low, high = stored.min(), stored.max()
  shown = 1.0 - (stored.astype(np.float64) - low) / (high - low)  # "data" range, inverted.
  return tmp_path / "cr.dcm", stored, shown.astype(np.float32)


def test_dicom_to_png_shows_what_a_viewer_shows(models, tmp_path, radiograph):
  nets, dirs = models
  path, _, shown = radiograph
  assert run("-i", path, "-o", tmp_path / "png", "--model", dirs[2], "--format", "png",
             "--tile", 0) == 0
  with Image.open(tmp_path / "png" / "cr.png") as out:
    assert out.mode == "I;16" and out.size == (44, 36)  # BitsStored 12 > 8: 16-bit PNG.
    out = np.asarray(out).astype(int)
  expected = np.round(reference.torch_sr_gray(nets[2], shown) * 65535)
  assert np.abs(out - expected).max() <= 1


def test_dicom_in_dicom_out_keeps_its_conventions(models, tmp_path, radiograph):
  nets, dirs = models
  path, stored, shown = radiograph
  assert run("-i", path, "-o", tmp_path / "cr_x2.dcm", "--model", dirs[2], "--tile", 0) == 0
  source, out = pydicom.dcmread(path), pydicom.dcmread(tmp_path / "cr_x2.dcm")
  assert (out.Rows, out.Columns) == (36, 44)
  assert (out.PhotometricInterpretation, out.BitsAllocated, out.BitsStored) == (
      "MONOCHROME1", 16, 12)
  assert [float(v) for v in out.PixelSpacing] == [0.1, 0.15]
  assert [float(v) for v in out.ImagerPixelSpacing] == [0.125, 0.175]
  assert out.SOPInstanceUID != source.SOPInstanceUID
  assert out.SourceImageSequence[0].ReferencedSOPInstanceUID == source.SOPInstanceUID
  assert "Super-resolved x2 by jaxsr" in out.DerivationDescription
  assert (out.PatientName, out.StudyInstanceUID) == (source.PatientName, source.StudyInstanceUID)
  # A new series of the same study, named after the model and the scale.
  assert out.SeriesInstanceUID != source.SeriesInstanceUID
  assert (out.SeriesNumber, out.SeriesDescription) == (1000, "jaxsr x2 x2_f16_s2")
  # Back to stored values: invert the luma (MONOCHROME1) and undo the data-range mapping.
  sr = reference.torch_sr_gray(nets[2], shown)
  expected = np.round(stored.min() + (1.0 - sr) * (stored.max() - stored.min()))
  assert np.abs(out.pixel_array.astype(int) - expected).max() <= 1


def test_intensity_lock_holds_a_radiograph_to_its_coarse_intensities_and_says_so(models, tmp_path,
                                                                                  radiograph):
  nets, dirs = models
  path, stored, shown = radiograph
  assert run("-i", path, "-o", tmp_path / "locked.dcm", "--model", dirs[2], "--tile", 0,
             "--intensity-lock", "1.5") == 0
  out = pydicom.dcmread(tmp_path / "locked.dcm")
  assert "intensity lock sigma 1.5" in out.DerivationDescription
  # The lock works on what the network was shown (white = dense), before the stored-value mapping.
  sr = reference.torch_sr_gray(nets[2], shown)
  locked = reference.reference_lock(sr[..., None], shown[..., None], 2, 1.5)[..., 0]
  expected = np.round(stored.min() + (1.0 - locked) * (stored.max() - stored.min()))
  assert np.abs(out.pixel_array.astype(int) - expected).max() <= 1


def test_a_series_folder_goes_to_one_new_series_or_stays_with_keep_series(models, tmp_path):
  _, dirs = models
  series = generate_uid()
  (tmp_path / "in").mkdir()
  for index in range(2):
    write_cr(tmp_path / "in" / f"IM{index}.dcm",
             np.arange(100 * index, 100 * index + 144, dtype=np.uint16).reshape(12, 12),
             series_uid=series)
  assert run("-i", tmp_path / "in", "-o", tmp_path / "new", "--model", dirs[2]) == 0
  assert run("-i", tmp_path / "in", "-o", tmp_path / "kept", "--model", dirs[2],
             "--keep-series") == 0
  new = [pydicom.dcmread(tmp_path / "new" / f"IM{i}.dcm") for i in range(2)]
  kept = [pydicom.dcmread(tmp_path / "kept" / f"IM{i}.dcm") for i in range(2)]
  assert new[0].SeriesInstanceUID == new[1].SeriesInstanceUID != series
  assert all(ds.SeriesDescription == "jaxsr x2 x2_f16_s2" for ds in new)
  assert all(ds.SeriesInstanceUID == series and "SeriesDescription" not in ds for ds in kept)
  assert len({ds.SOPInstanceUID for ds in new + kept}) == 4
  # The derived series is keyed by the weights, not the model directory's name: the same
  # weights under another name join the same series (an interrupted run resumed elsewhere),
  # other weights under the same name make another series.
  shutil.copytree(dirs[2], tmp_path / "same" / dirs[2].name)
  other = tmp_path / "other" / dirs[2].name
  shutil.copytree(dirs[4], other)
  meta = json.loads((other / "jaxsr_model.json").read_text())
  meta["source"]["file"] = f"{dirs[2].name}.pth"  # Named as the x2 model, but other weights.
  (other / "jaxsr_model.json").write_text(json.dumps(meta))
  for folder, model in (("again", tmp_path / "same" / dirs[2].name), ("other", other)):
    assert run("-i", tmp_path / "in" / "IM0.dcm", "-o", tmp_path / folder, "--model", model,
               "--outscale", "2") == 0
  again = pydicom.dcmread(tmp_path / "again" / "IM0.dcm")
  by_other = pydicom.dcmread(tmp_path / "other" / "IM0.dcm")
  assert again.SeriesInstanceUID == new[0].SeriesInstanceUID
  assert by_other.SeriesDescription == new[0].SeriesDescription
  assert by_other.SeriesInstanceUID != new[0].SeriesInstanceUID


def test_skip_existing_leaves_outputs_alone(models, tmp_path, capsys):
  _, dirs = models
  Image.fromarray(reference.random_image((8, 8, 3))).save(tmp_path / "in.png")
  args = ["-i", tmp_path / "in.png", "-o", tmp_path / "out", "--model", dirs[2]]
  assert run(*args) == 0
  written = (tmp_path / "out" / "in.png").stat().st_mtime_ns
  capsys.readouterr()
  assert run(*args, "--skip-existing") == 0
  assert "0 written, 1 skipped (1 with existing outputs), 0 failed" in capsys.readouterr().out
  assert (tmp_path / "out" / "in.png").stat().st_mtime_ns == written


@pytest.mark.parametrize("args,message", [
    (["-i", "in.png", "-o", "out.png", "--format", "dcm"], "contradicts the output name"),
    (["-i", "in.png", "-o", "out.bmp"], "cannot tell the output format"),
    (["-i", "missing.png", "-o", "out"], "does not exist"),
    (["-i", "empty", "-o", "out"], "no image files found"),
    (["-i", "*.webp", "-o", "out"], "no image files found"),
    (["-i", ".", "-o", "."], "no image files found"),  # Never its own outputs, nor overwrites.
    (["-i", ".", "-o", "in.png"], "is a file"),
    (["-i", "in.png", "-o", "out", "--outscale", "0"], "--outscale must be positive"),
    (["-i", "in.png", "-o", "out", "--intensity-lock", "-1"], "intensity_lock must be >= 0"),
])
def test_unusable_arguments_exit_2_and_write_nothing(models, tmp_path, capsys, monkeypatch, args,
                                                     message):
  _, dirs = models
  monkeypatch.chdir(tmp_path)
  Image.fromarray(reference.random_image((8, 8, 3))).save("in.png")
  os.mkdir("empty")
  before = {p: p.stat().st_mtime_ns for p in tmp_path.rglob("*")}
  assert run(*args, "--model", dirs[2]) == 2
  assert message in capsys.readouterr().err
  assert {p: p.stat().st_mtime_ns for p in tmp_path.rglob("*")} == before


def test_dicom_output_from_a_png_fails_before_the_network_runs(models, tmp_path, capsys):
  _, dirs = models
  Image.fromarray(reference.random_image((8, 8, 3))).save(tmp_path / "in.png")
  assert run("-i", tmp_path / "in.png", "-o", tmp_path / "out", "--model", dirs[2],
             "--format", "dcm") == 1
  assert "a DICOM output needs a DICOM input" in capsys.readouterr().err
  assert not (tmp_path / "out").exists()


def test_the_next_file_is_read_and_the_last_written_while_the_network_runs(models, tmp_path,
                                                                           monkeypatch, capsys):
  # Host/device overlap, shown by events rather than timing: the network's work on file 1 waits
  # until file 2's read has started (and on file 2 until file 1's write has started); a
  # sequential loop would never get there and the waits would time out. Outputs and the order
  # of the report stay those of a plain loop; a file that fails to write is reported alone.
  import threading

  from jaxsr import io as jio
  from jaxsr.infer.upscaler import Upscaler

  _, dirs = models
  src = tmp_path / "in"
  src.mkdir()
  for i in range(3):
    Image.fromarray(reference.random_image((8, 10, 3), seed=i)).save(src / f"{i}.png")
  started = {name: threading.Event() for name in ("read 1", "read 2", "write 0", "write 1")}
  timed_out = []
  read, write, upscale_image = jio.read_frames, jio.write_frames, Upscaler.upscale_image

  def reading(path, **kw):
    started.get(f"read {path.stem}", threading.Event()).set()
    return read(path, **kw)

  def writing(path, *a, **kw):
    started.get(f"write {path.stem}", threading.Event()).set()
    if path.stem == "2":
      raise OSError("disk full")
    return write(path, *a, **kw)

  def computing(self, image, *a, **kw):
    index = computing.calls
    computing.calls += 1
    for name in {0: ["read 1"], 1: ["read 2", "write 0"]}.get(index, []):
      if not started[name].wait(timeout=30):
        timed_out.append(name)
    return upscale_image(self, image, *a, **kw)

  computing.calls = 0
  monkeypatch.setattr(cli.jio, "read_frames", reading)
  monkeypatch.setattr(cli.jio, "write_frames", writing)
  monkeypatch.setattr(Upscaler, "upscale_image", computing)
  assert run("-i", src, "-o", tmp_path / "out", "--model", dirs[4], "--tile", "0") == 1
  assert timed_out == []
  assert files_under(tmp_path / "out") == ["0.png", "1.png"]
  out, err = capsys.readouterr()
  assert "disk full" in err and "2 written, 0 skipped, 1 failed" in out
  assert out.index("0.png") < out.index("1.png")  # Reported in input order.
  net = models[0][4]
  for i in range(2):
    expected = np.clip(reference.torch_sr(net, reference.random_image((8, 10, 3), seed=i)
                                          .astype(np.float32) / 255), 0, 1)
    got = np.asarray(Image.open(tmp_path / "out" / f"{i}.png")).astype(np.float32) / 255
    assert np.abs(got - expected).max() <= 1 / 255 + 1e-6


def test_blend_with_dials_between_two_generators_as_numpy_blends_their_weights(models, tmp_path,
                                                                              radiograph, capsys):
  nets, dirs = models
  path, stored, shown = radiograph
  other_net, other_dir = reference.small_generator(tmp_path, 2, seed=7)
  alpha = 0.3
  assert run("-i", path, "-o", tmp_path / "cr_x2.dcm", "--model", dirs[2], "--blend-with",
             other_dir, "--alpha", alpha, "--tile", 0) == 0
  # The reference: the official state dicts blended by NumPy in float64, in a PyTorch RRDBNet.
  state_a, state_b = nets[2].state_dict(), other_net.state_dict()
  blended = tn.RRDBNet(scale=2, num_block=1, num_feat=16, num_grow_ch=8).eval()
  blended.load_state_dict({k: torch.from_numpy(
      ((1 - alpha) * state_a[k].numpy().astype(np.float64)
       + alpha * state_b[k].numpy().astype(np.float64)).astype(np.float32)) for k in state_a},
      strict=True)
  sr = reference.torch_sr_gray(blended, shown)
  expected = np.round(stored.min() + (1.0 - sr) * (stored.max() - stored.min()))
  out = pydicom.dcmread(tmp_path / "cr_x2.dcm")
  assert np.abs(out.pixel_array.astype(int) - expected).max() <= 1
  # Neither model alone gives this image: the dial is not a no-op.
  alone = np.round(stored.min() + (1.0 - reference.torch_sr_gray(nets[2], shown))
                   * (stored.max() - stored.min()))
  assert np.abs(out.pixel_array.astype(int) - alone).max() > 1
  # The blend names both models and alpha (its series UID is keyed by the blended weights, as
  # test_a_series_folder_goes_to_one_new_series_or_stays_with_keep_series checks for any model).
  assert out.SeriesDescription == f"jaxsr x2 x2_f16_s2 0.3 to {other_dir.name}"
  assert f"x2_f16_s2.pth blended 0.3 towards {other_dir.name}.pth" in out.DerivationDescription
  # What cannot be blended is refused before anything is written.
  for args, message in (
      (["--alpha", 0.5], "--blend-with MODEL_B and --alpha X go together"),
      (["--blend-with", other_dir], "--blend-with MODEL_B and --alpha X go together"),
      (["--blend-with", other_dir, "--alpha", 1.5], "between 0 (model A) and 1 (model B)"),
      (["--blend-with", dirs[4], "--alpha", 0.5], "different architectures (scale: 2 vs 4)"),
      (["--blend-with", dirs["D"], "--alpha", 0.5], "holds a discriminator")):
    assert run("-i", path, "-o", tmp_path / "refused", "--model", dirs[2], *args) == 2
    assert message in capsys.readouterr().err
    assert not (tmp_path / "refused").exists()


def test_upscale_command_keeps_its_programs_in_the_user_cache(tmp_path, models):
  _, dirs = models
  rng = np.random.default_rng(0)
  Image.fromarray(rng.integers(0, 256, (24, 20, 3), np.uint8)).save(tmp_path / "in.png")
  folder = tmp_path / "xdg" / "jaxsr" / "xla" / compilation_cache.host_tag()
  outputs = []
  for attempt in range(2):
    out = subprocess.run(
        [sys.executable, "-m", "jaxsr.upscale", "-i", str(tmp_path / "in.png"),
         "-o", str(tmp_path / f"out{attempt}.png"), "--model", str(dirs[4])],
        capture_output=True, text=True, cwd=cache_test.REPO, timeout=300,
        env=cache_test.environment(tmp_path))
    assert out.returncode == 0, out.stderr[-3000:]
    outputs.append(np.asarray(Image.open(tmp_path / f"out{attempt}.png")))
    if attempt == 0:
      entries = cache_test.cache_entries(folder)
      assert entries  # The network's program (and the small ones around it) were written.
  assert cache_test.cache_entries(folder) == entries  # The second run compiled nothing new.
  np.testing.assert_array_equal(outputs[0], outputs[1])
