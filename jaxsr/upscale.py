"""python -m jaxsr.upscale: super-resolve PNG, TIFF, JPEG, BMP, PNM and DICOM files with a jaxsr
generator.

  python -m jaxsr.upscale -i chest.dcm -o chest_x4.dcm --model models/x4plus
  python -m jaxsr.upscale -i study/ -o study_x4/ --model models/x4plus --batch 4
  python -m jaxsr.upscale -i 'fundus/**/*.jpg' -o fundus_x2/ --model models/x4plus --outscale 2
  python -m jaxsr.upscale -i study/ -o study_png/ --model models/x4plus --format png
  python -m jaxsr.upscale -i chest.dcm -o out/ --model models/x4plus --blend-with models/ft --alpha 0.8

INPUT is a file, a folder (searched recursively) or a quoted glob (`**` recurses), and the image
files among them are those training and evaluation take too (jaxsr.io.listing): the suffixes
.png .tif .tiff .jpg .jpeg .bmp .pgm .ppm .pnm (each optionally .gz) .dcm .dicom, and DICOM files
of any name by content (e.g. 'series/IM*'). Hidden files and OUTPUT's own files are left out.
Outputs keep their path relative to the folder (or the glob's fixed leading folders) under OUTPUT,
which is a folder unless INPUT is one file and OUTPUT has an image suffix. Files are read by
content and written back in their own format, bit depth, gray/colour and (DICOM) photometric
convention (BMP and PNM, which jaxsr does not write, as PNG), unless --format says otherwise.
A multi-frame DICOM (an MR or CT series, an ultrasound loop) is
super-resolved frame by frame into one multi-frame DICOM, or a multi-page TIFF with --format
tiff. A DICOM output goes in a new series of the source's study (new SeriesInstanceUID, shared by
every file derived from one source series; SeriesNumber + 1000; a SeriesDescription naming the
model and the scale), or in the source's own series with --keep-series. Each output appears
complete or not at all.

Tiles (--tile, default 256): windows of tile + 2 * tile-pad pixels, the edge ones on the image
border; every output pixel is computed with tile-pad pixels of context on each side that is not
the image border, as in Real-ESRGAN's tiling, and neighbouring windows are cross-faded only where
both have that context. An image that fits in one window runs whole, at its own shape. The default
tile-pad follows the network: an SRVGGNetCompact's receptive-field radius (num_conv + 2 pixels,
so its tiles equal the whole-image output), 24 for RRDBNet. Each batch
of windows is split over all devices: every GPU, or one CPU device per core.

Host work overlaps the network's: the next file is decoded and the previous one encoded and
written on two threads while the current one is super-resolved.

Exit status: 0 when every file was written or skipped, 1 when any failed (each is reported and
the others are still processed), 2 for bad arguments or a model directory that is not a generator.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import dataclasses
import os
import sys
import time
from pathlib import Path

import tqdm

from jaxsr import checkpoint
from jaxsr import io as jio
from jaxsr.convert import interpolation
from jaxsr.io import formats
from jaxsr.io import listing
from jaxsr.models import precision

# --format choices -> jaxsr.io format names; the suffix a new output name gets for each format.
FORMATS = {"auto": None, "png": "png", "tiff": "tiff", "dcm": "dicom"}
NEW_SUFFIX = {"png": ".png", "tiff": ".tif", "jpeg": ".jpg", "dicom": ".dcm"}


class UsageError(Exception):
  """The command line cannot be carried out as given (exit status 2)."""


@dataclasses.dataclass(frozen=True)
class Job:
  """One input file and where its result goes.

  Attributes:
    source: the input file.
    output: the output file if `named`, else the output path whose suffix is still to be fitted
      to the output format (known once the file has been read).
    named: the user gave `output` as the output file name.
  """
  source: Path
  output: Path
  named: bool


def parse_args(argv) -> argparse.Namespace:
  parser = argparse.ArgumentParser(prog="python -m jaxsr.upscale", description=__doc__,
                                   formatter_class=argparse.RawDescriptionHelpFormatter)
  parser.add_argument("-i", "--input", required=True, help="file, folder or quoted glob")
  parser.add_argument("-o", "--output", required=True, type=Path, help="output file or folder")
  parser.add_argument("--model", required=True, type=Path, help="jaxsr generator directory")
  parser.add_argument("--blend-with", type=Path, default=None, metavar="MODEL_B",
                      help="a second generator of the same architecture: the weights used are "
                           "(1 - ALPHA) * MODEL + ALPHA * MODEL_B, blended in memory (the "
                           "strength dial; `python -m jaxsr.convert --interpolate` writes it)")
  parser.add_argument("--alpha", type=float, default=None,
                      help="with --blend-with: 0 is --model, 1 is MODEL_B")
  parser.add_argument("--intensity-lock", type=float, default=0.0, metavar="SIGMA",
                      help="hold the output to the input's intensities at coarse scales: a "
                           "back-projection low-passed with a Gaussian of SIGMA input pixels "
                           "(2 is a good start; removes a generator's brightness drift, keeps "
                           "its detail). Default 0: the network's output as it is")
  parser.add_argument("--outscale", type=float, default=None,
                      help="final scale; other than the network's, the output is resized with "
                           "Lanczos (default: the network's own scale)")
  parser.add_argument("--tile", type=int, default=256,
                      help="tile size in input pixels (windows are tile + 2 * tile-pad); 0 = "
                           "whole image at once, with memory that grows with the image "
                           "(default: 256)")
  parser.add_argument("--tile-pad", type=int, default=None,
                      help="context each output pixel gets on every side that is not the image "
                           "border (default: the receptive-field radius of a compact network, "
                           "which makes tiles exact; 24 for RRDBNet)")
  parser.add_argument("--pre-pad", type=int, default=0,
                      help="with --tile 0: reflected rows/columns added at the bottom/right")
  parser.add_argument("--batch", type=int, default=None,
                      help="windows per call, rounded up to a multiple of the device count "
                           "(default: one per CPU core; on GPUs/TPUs as many per device as fit "
                           "in half its memory)")
  parser.add_argument("--dtype", default="fp32", choices=precision.NAMES,
                      help="compute precision; bf16 is for GPUs and TPUs")
  parser.add_argument("--format", default="auto", choices=tuple(FORMATS),
                      help="output format (default auto: the input's, or OUTPUT's suffix)")
  parser.add_argument("--dicom-range", default="data", choices=jio.DICOM_RANGES,
                      help="DICOM values mapped to [0, 1]: the image's own min..max (data), "
                           "all that BitsStored allows (bits) or the VOI window (window)")
  parser.add_argument("--keep-series", action="store_true",
                      help="DICOM: keep the source's SeriesInstanceUID, SeriesNumber and "
                           "SeriesDescription (default: a new series of the same study)")
  parser.add_argument("--skip-existing", action="store_true",
                      help="leave outputs that exist alone (resumes an interrupted run)")
  return parser.parse_args(argv)


def find_jobs(spec: str, output: Path) -> tuple[list[Job], list[Path]]:
  """The files INPUT names, with their outputs; and the files passed over (not images)."""
  path = Path(spec)
  if path.is_file():
    if not listing.is_image_file(path):
      raise UsageError(f"{path} is not an image file (image files: {listing.describe()})")
    if output.is_dir() or not output.suffix:
      return [Job(path, output / path.name, named=False)], []
    if output.suffix.lower() not in jio.SUFFIXES:
      raise UsageError(f"cannot tell the output format from {output.name}; use one of "
                       f"{', '.join(sorted(jio.SUFFIXES))}, or a folder")
    return [Job(path, output, named=True)], []
  if output.is_file():
    raise UsageError(f"{output} is a file; with a folder or a glob as input, -o names a folder")
  try:
    found = listing.find_images(spec, exclude=output)  # Never earlier runs' outputs.
  except FileNotFoundError as e:
    raise UsageError(str(e)) from e
  jobs = [Job(p, output / os.path.relpath(p, found.root), named=False) for p in found.files]
  if not jobs:
    raise UsageError(f"no image files found in {spec}" + (
        f" ({len(found.passed_over)} other files)" if found.passed_over else ""))
  return jobs, found.passed_over


def output_path(job: Job, file_format: str) -> Path:
  """The output file of `job` when written as `file_format` (one of jaxsr.io.FORMATS)."""
  if job.named:
    return job.output
  output = job.output
  if output.name.lower().endswith(formats.GZIP_SUFFIX):  # scan.ppm.gz -> scan.ppm -> scan.png
    output = output.with_name(output.name[:-len(formats.GZIP_SUFFIX)])
  suffix = output.suffix.lower()
  if jio.SUFFIXES.get(suffix) == file_format:
    return output
  if suffix in formats.RASTER_SUFFIXES + formats.DICOM_SUFFIXES:  # Another format's suffix.
    return output.with_suffix(NEW_SUFFIX[file_format])
  # No suffix (DICOM files often have none) or a part of the name such as a UID's last digits.
  return output.with_name(output.name + NEW_SUFFIX[file_format])


def check_writable(image: jio.Image, file_format: str, frames: int = 1) -> None:
  """Refuses, before the network runs, what `jio.write_frames` would refuse after it."""
  if frames > 1 and file_format not in ("dicom", "tiff"):
    raise ValueError(f"{frames} frames can be written as a multi-frame DICOM or a multi-page "
                     "TIFF (--format dcm or tiff), not as one PNG/JPEG")
  if file_format == "dicom" and image.dicom is None:
    raise ValueError(f"a DICOM output needs a DICOM input (this is {image.source_format}); "
                     "use --format png or tiff")
  if file_format == "jpeg" and image.alpha is not None:
    raise ValueError("JPEG has no alpha channel; write PNG or TIFF (--format png)")


def describe_failure(source: Path, error: Exception) -> str:
  if isinstance(error, jio.UnsupportedImageError):
    return f"{source} cannot be processed: {error.reason}"
  if isinstance(error, jio.UnreadableImageError):
    return f"{source} cannot be read: {error.reason}"
  if isinstance(error, (ValueError, OSError)):
    return f"{source}: {error}"
  return f"{source}: {type(error).__name__}: {error} (unexpected; please report it)"


@dataclasses.dataclass
class Planned:
  """A job whose input has been read: where and how its result is written."""
  job: Job
  frames: list
  output: Path
  file_format: str
  started: float


def plan(job: Job, frames: list, args: argparse.Namespace, reserved: set[Path],
         started: float) -> Planned | None:
  """Fits the output to what was read and checks it can be written; None if it is skipped.

  Reserves the output path, so two inputs of one run never write the same file."""
  image = frames[0]
  file_format = FORMATS[args.format] or (
      jio.SUFFIXES[job.output.suffix.lower()] if job.named
      else jio.output_format(image.source_format))
  out = output_path(job, file_format)
  if args.skip_existing and out.exists():
    return None
  if out.resolve() == job.source.resolve():
    raise ValueError(f"{out} is the input itself; choose another output")
  if out.resolve() in reserved:
    raise ValueError(f"{out} was already written from another input in this run")
  check_writable(image, file_format, len(frames))
  reserved.add(out.resolve())
  out.parent.mkdir(parents=True, exist_ok=True)
  return Planned(job, frames, out, file_format, started)


def report(planned: Planned, upscaler, args: argparse.Namespace) -> str:
  height, width = planned.frames[0].pixels.shape[:2]
  out_height, out_width = upscaler.output_size(height, width, args.outscale)
  count = "" if len(planned.frames) == 1 else f"x{len(planned.frames)} frames"
  return (f"{planned.job.source} {width}x{height}{count} -> {planned.output} "
          f"{out_width}x{out_height}{count} ({time.perf_counter() - planned.started:.1f} s)")


class Pipeline:
  """Runs the jobs with host work beside the network: while one file is super-resolved, the
  next one is read (decoded) on a reader thread and the previous result is encoded and written
  on a writer thread. One file read ahead and one write in flight bound the memory to about
  three files; results are reported, and failures counted, in input order.

  A multi-frame file is written as its frames are computed (a long series never holds more than
  one float frame), so it does not overlap with the next file's network work.
  """

  def __init__(self, upscaler, args: argparse.Namespace, description: str,
               series_description: str | None):
    self.upscaler, self.args = upscaler, args
    self.write_options = dict(description=description, series_description=series_description,
                              series_key=upscaler.weights_digest, keep_series=args.keep_series)
    self.reserved: set[Path] = set()
    self.written, self.existing, self.failed = 0, 0, []
    self._in_flight: tuple[Planned, concurrent.futures.Future] | None = None

  def _read(self, job: Job) -> tuple[list, float]:
    started = time.perf_counter()
    return jio.read_frames(job.source, dicom_range=self.args.dicom_range), started

  def _fail(self, source: Path, error: Exception) -> None:
    self.failed.append(source)
    tqdm.tqdm.write(f"error: {describe_failure(source, error)}", file=sys.stderr)

  def _finish_write(self) -> None:
    """Waits for the write in flight and reports it."""
    if self._in_flight is None:
      return
    planned, future = self._in_flight
    self._in_flight = None
    try:
      future.result()
    except Exception as e:  # The file's failure, reported; the others go on.
      self._fail(planned.job.source, e)
      return
    self.written += 1
    tqdm.tqdm.write(report(planned, self.upscaler, self.args))

  def _upscale(self, planned: Planned, writer) -> None:
    frames, args = planned.frames, self.args
    if len(frames) == 1:
      # Buffers too big for RAM go next to the output: on its disk, not a RAM-backed /tmp.
      result = self.upscaler.upscale_image(frames[0], args.outscale, progress=True,
                                           scratch_dir=planned.output.parent)
      self._finish_write()  # At most one write in flight.
      self._in_flight = (planned, writer.submit(
          jio.write_frames, planned.output, [result], 1, file_format=planned.file_format,
          **self.write_options))
      return
    self._finish_write()
    results = (self.upscaler.upscale_image(frame, args.outscale, scratch_dir=planned.output.parent)
               for frame in tqdm.tqdm(frames, desc="frames", unit="frame", leave=False))
    jio.write_frames(planned.output, results, len(frames), file_format=planned.file_format,
                     **self.write_options)
    self.written += 1
    tqdm.tqdm.write(report(planned, self.upscaler, args))

  def run(self, jobs: list[Job]) -> None:
    with (concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="read") as reader,
          concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="write") as writer):
      ahead = reader.submit(self._read, jobs[0]) if jobs else None
      for index, job in enumerate(tqdm.tqdm(jobs, desc="files", unit="file",
                                            disable=len(jobs) < 2)):
        current = ahead
        ahead = reader.submit(self._read, jobs[index + 1]) if index + 1 < len(jobs) else None
        try:
          frames, started = current.result()
          planned = plan(job, frames, self.args, self.reserved, started)
          if planned is None:
            self.existing += 1
            continue
          self._upscale(planned, writer)
        except Exception as e:  # One bad file must not stop the others; each one is reported.
          self._fail(job.source, e)
      self._finish_write()


def summary(written: int, existing: int, ignored: int, failed: list[Path]) -> str:
  reasons = []
  if existing:
    reasons.append(f"{existing} with existing outputs")
  if ignored:
    reasons.append(f"{ignored} not image files")
  line = f"{written} written, {existing + ignored} skipped"
  line += f" ({', '.join(reasons)})" if reasons else ""
  line += f", {len(failed)} failed"
  return line + (": " + ", ".join(map(str, failed)) if failed else "")


def model_label(directory: Path) -> str:
  """The name outputs record for a model: the weights file it was converted from, else the
  directory's name."""
  return checkpoint.load_metadata(directory).source.get("file") or directory.name


def main(argv=None) -> int:
  args = parse_args(argv)
  try:
    if (args.blend_with is None) != (args.alpha is None):
      raise UsageError("--blend-with MODEL_B and --alpha X go together (weights "
                       "(1 - X) * MODEL + X * MODEL_B)")
    if args.outscale is not None and not args.outscale > 0:
      raise UsageError(f"--outscale must be positive, got {args.outscale}")
    jobs, ignored = find_jobs(args.input, args.output)
    if (jobs[0].named and args.format != "auto"
        and FORMATS[args.format] != jio.SUFFIXES[args.output.suffix.lower()]):
      raise UsageError(f"--format {args.format} contradicts the output name {args.output.name}")
  except UsageError as e:
    print(f"error: {e}", file=sys.stderr)
    return 2

  # Before JAX's backends start (nothing has run on them yet): one CPU device per core, so
  # the windows of a batch run in parallel on CPU-only machines. No effect on GPUs and TPUs.
  from jaxsr.infer import compilation_cache, devices  # After argument checks: --help stays instant.
  devices.use_cpu_cores()
  compilation_cache.use_persistent_cache()  # The user's cache folder: compiled once per shape.
  from jaxsr.infer.upscaler import Upscaler

  try:
    model = args.model
    if args.blend_with is not None:
      model = interpolation.blend(args.model, args.blend_with, args.alpha)
    upscaler = Upscaler(model, dtype=args.dtype, tile=args.tile, tile_pad=args.tile_pad,
                        pre_pad=args.pre_pad, batch=args.batch,
                        intensity_lock=args.intensity_lock)
  except (checkpoint.CheckpointError, ValueError) as e:
    print(f"error: {e}", file=sys.stderr)
    return 2
  outscale = upscaler.scale if args.outscale is None else args.outscale
  model_name = model_label(args.model)
  series_name = Path(model_name).stem
  if args.blend_with is not None:
    blend_name = model_label(args.blend_with)
    model_name += f" blended {args.alpha:g} towards {blend_name}"
    series_name += f" {args.alpha:g} to {Path(blend_name).stem}"
  if args.intensity_lock:
    model_name += f", intensity lock sigma {args.intensity_lock:g}"
  description = f"Super-resolved x{outscale:g} by jaxsr (Real-ESRGAN generator {model_name})"
  series_description = f"jaxsr x{outscale:g} {series_name}"

  pipeline = Pipeline(upscaler, args, description, series_description)
  pipeline.run(jobs)
  print(summary(pipeline.written, pipeline.existing, len(ignored), pipeline.failed))
  return 1 if pipeline.failed else 0


if __name__ == "__main__":
  sys.exit(main())
