"""The one DICOM reader (pixels and their intensity mapping) and the derived-DICOM writer.

Every command reads DICOM here: training (at 16 bits: `files.read_samples`), evaluation,
upscaling and the degrade preview, so one file gives the same intensities everywhere.

Reading (`read_frames`): MONOCHROME1/MONOCHROME2 and colour (RGB; YBR sources are decoded to
RGB). Compressed pixel data is decoded by pydicom's plugins: Pillow (JPEG baseline, JPEG 2000),
GDCM (JPEG Lossless, the usual compression of archived radiographs, and JPEG-LS) and pydicom
itself (RLE). Multi-frame objects (MR/CT series, ultrasound loops, enhanced objects) give one
`Image` per frame, all sharing one intensity mapping. Palette colour, Modality LUT Sequences and
BitsAllocated > 16 are refused (`UnsupportedImageError`).

The intensity mapping, monochrome images (one documented rule for every command):
  1. modality values = stored values * RescaleSlope + RescaleIntercept (looked up where enhanced
     objects keep them too: the frame's functional groups, then the shared ones, then the top
     level; slope 1 and intercept 0 when absent);
  2. [low, high] -> [0, 1], linearly, clipped, where `dicom_range` chooses low and high:
       "data"   (default) the image's own min..max (over all its frames): full contrast, nothing
                clipped, invertible; a constant image maps to 0;
       "bits"   the full range BitsStored allows (Real-ESRGAN's "/65535" convention), through
                the rescale;
       "window" the header's VOI window (what a viewer shows first; the first frame's; LINEAR
                or LINEAR_EXACT, PS3.3 C.11.2.1.2); values outside it are clipped;
  3. MONOCHROME1 is inverted (1 - x), so the network always sees MONOCHROME2, "white = dense".
Colour images map their stored values over the range BitsStored allows. The result is float32;
`files.read_samples` (training) rounds it to uint16, round(x * 65535), which is within half a
16-bit level of what evaluation and upscaling see.

Writing (`derived_dataset`, `derived_frames_dataset`) inverts the mapping and the rescale into
the source's stored representation (same BitsAllocated/BitsStored/sign and photometric
interpretation), updates Rows/Columns, divides PixelSpacing, ImagerPixelSpacing and
NominalScannedPixelSpacing by the scale (also in the functional groups' Pixel Measures of
enhanced objects), marks the image DERIVED/SECONDARY with a DerivationDescription and a
SourceImageSequence pointing at the source, gives it a new SOP Instance UID and puts it in a new
series of the same study (see `derived_series`; `keep_series=True` keeps the source's), and
keeps every other element (retired group lengths are left to pydicom). Compressed sources are
written uncompressed (Explicit VR Little Endian); big-endian sources can be read, and written
only as PNG/TIFF.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import BinaryIO, Iterable

import numpy as np
import pydicom
import pydicom.multival
import pydicom.uid
import pydicom.valuerep

from jaxsr.io.image import DicomInfo
from jaxsr.io.image import Image
from jaxsr.io.image import UnreadableImageError
from jaxsr.io.image import UnsupportedImageError
from jaxsr.io.raster import decoding

DICOM_RANGES = ("data", "bits", "window")
# Physical pixel spacings (row spacing \ column spacing, mm) that shrink as the pixels get smaller.
DICOM_SPACINGS = ("PixelSpacing", "ImagerPixelSpacing", "NominalScannedPixelSpacing")
DEFAULT_DESCRIPTION = "Super-resolved by jaxsr (Real-ESRGAN)"
# A derived series is numbered after its source series: this much higher (or this, without one).
SERIES_NUMBER_OFFSET = 1000
SERIES_DESCRIPTION_LENGTH = 64  # LO value representation.


def read_frames(source: Path | BinaryIO, name, intensity_range: str = "data") -> list[Image]:
  """A DICOM file's frames (one for a single-frame object), sharing one intensity mapping.

  `source` is a path or a binary file object; `name` names it in errors.
  """
  if intensity_range not in DICOM_RANGES:
    raise ValueError(f"dicom_range must be one of {DICOM_RANGES}, got {intensity_range!r}")
  with decoding(name, "DICOM"):
    dataset = pydicom.dcmread(source, force=True)
    if "PixelData" not in dataset:
      raise UnreadableImageError(name, "the DICOM object has no pixel data")
    frames = int(dataset.get("NumberOfFrames") or 1)
    photometric = str(dataset.PhotometricInterpretation)
    monochrome = photometric in ("MONOCHROME1", "MONOCHROME2")
    if not monochrome and photometric not in ("RGB", "YBR_FULL", "YBR_FULL_422", "YBR_ICT",
                                              "YBR_RCT"):
      raise UnsupportedImageError(name, f"PhotometricInterpretation {photometric} is not "
                                  "supported")
    if int(dataset.BitsAllocated) > 16:
      # float32 pixels hold 24 bits exactly; keep a margin and the round trip stays exact.
      raise UnsupportedImageError(name, f"BitsAllocated {dataset.BitsAllocated} > 16 is not "
                                  "supported")
    if "ModalityLUTSequence" in dataset:
      raise UnsupportedImageError(name, "a Modality LUT Sequence is not supported (only a "
                                  "linear RescaleSlope/RescaleIntercept)")
    stored = dataset.pixel_array  # Masked to BitsStored and sign-extended; YBR comes as RGB.
    stored = stored.reshape((frames,) + stored.shape[-3 + monochrome:])  # (frames, H, W[, 3])
  del dataset.PixelData  # Written anew; no need to keep the (maybe compressed) original.
  bits_stored = int(dataset.BitsStored)
  common = dict(bit_depth=8 if bits_stored <= 8 else 16, source_format="dicom")
  frame_index = (lambda i: i) if frames > 1 else (lambda i: None)

  if not monochrome:
    low, high = _stored_range(dataset)  # Colour: stored values are the values.
    return [Image(pixels=((stored[i] - np.float32(low)) / np.float32(high - low)).astype(
                      np.float32),
                  dicom=DicomInfo(dataset=dataset, low=low, high=high, invert=False,
                                  intensity_range="bits", frame=frame_index(i)), **common)
            for i in range(frames)]

  rescales = [_rescale(dataset, i) for i in range(frames)]  # Enhanced objects: per frame.
  values = np.empty(stored.shape, np.float64)
  for i, (slope, intercept) in enumerate(rescales):
    values[i] = stored[i] * slope + intercept
  low, high = _modality_range(name, dataset, values, rescales, intensity_range)
  invert = photometric == "MONOCHROME1"
  images = []
  for i in range(frames):
    pixels = np.clip((values[i] - low) / (high - low), 0.0, 1.0)
    if invert:
      pixels = 1.0 - pixels
    info = DicomInfo(dataset=dataset, low=low, high=high, invert=invert,
                     intensity_range=intensity_range, frame=frame_index(i))
    images.append(Image(pixels=pixels.astype(np.float32)[..., None], dicom=info, **common))
  return images


def _frame_value(dataset: pydicom.Dataset, frame: int | None, group: str, keyword: str):
  """`keyword` for one frame: from its functional group `group`, the shared one, or the top level.

  Enhanced (multi-frame) objects keep rescale, window and spacing in functional group
  sequences (PS3.3 C.7.6.16); classic objects keep them at the top level.
  """
  items = []
  per_frame = dataset.get("PerFrameFunctionalGroupsSequence")
  if per_frame and (frame or 0) < len(per_frame):
    items.append(per_frame[frame or 0])
  shared = dataset.get("SharedFunctionalGroupsSequence")
  if shared:
    items.append(shared[0])
  for item in items:
    sequence = item.get(group)
    if sequence and keyword in sequence[0]:
      return sequence[0][keyword].value
  return dataset.get(keyword)


def _rescale(dataset: pydicom.Dataset, frame: int | None = None) -> tuple[float, float]:
  slope = _frame_value(dataset, frame, "PixelValueTransformationSequence", "RescaleSlope")
  intercept = _frame_value(dataset, frame, "PixelValueTransformationSequence",
                           "RescaleIntercept")
  return (1.0 if slope in (None, "") else float(slope),
          0.0 if intercept in (None, "") else float(intercept))


def _stored_range(dataset: pydicom.Dataset) -> tuple[int, int]:
  bits = int(dataset.BitsStored)
  if int(dataset.get("PixelRepresentation", 0)) == 1:
    return -(2 ** (bits - 1)), 2 ** (bits - 1) - 1
  return 0, 2 ** bits - 1


def _modality_range(name, dataset: pydicom.Dataset, values: np.ndarray,
                    rescales: list[tuple[float, float]],
                    intensity_range: str) -> tuple[float, float]:
  """The modality values shown as black and white (see the module docstring)."""
  if intensity_range == "data":
    low, high = float(values.min()), float(values.max())
    return low, (high if high > low else low + 1.0)  # A constant image maps to 0.
  if intensity_range == "bits":
    ends = [v * slope + intercept for v in _stored_range(dataset)
            for slope, intercept in rescales]
    return float(min(ends)), float(max(ends))
  center = _frame_value(dataset, 0, "FrameVOILUTSequence", "WindowCenter")
  width = _frame_value(dataset, 0, "FrameVOILUTSequence", "WindowWidth")
  if center in (None, "") or width in (None, ""):
    raise UnsupportedImageError(name, "dicom_range='window' needs WindowCenter/WindowWidth, "
                                "which this file lacks; use 'data' or 'bits'")
  center, width = float(_first(center)), float(_first(width))
  function = str(_frame_value(dataset, 0, "FrameVOILUTSequence", "VOILUTFunction") or "LINEAR")
  # PS3.3 C.11.2.1.2: both functions are linear between two ends and clip outside them.
  if function == "LINEAR" and width >= 1:
    return center - 0.5 - (width - 1) / 2, center - 0.5 + (width - 1) / 2
  if function == "LINEAR_EXACT" and width > 0:
    return center - width / 2, center + width / 2
  raise UnsupportedImageError(name, f"VOI LUT function {function} with width {width} is not "
                              "supported")


def _first(value):
  return value[0] if isinstance(value, pydicom.multival.MultiValue) else value


def derived_dataset(image: Image, description: str = DEFAULT_DESCRIPTION, *,
                    series_description: str | None = None, series_key: str = "",
                    keep_series: bool = False) -> pydicom.Dataset:
  """The DICOM dataset of `image` (a DICOM source's pixels, maybe resized) as a derived image.

  `description` becomes the DerivationDescription; the series is as `derived_series` says
  (`series_key` names what made it, e.g. the model's weights digest).
  """
  if image.dicom is not None and image.dicom.frame is not None:
    raise ValueError("a frame of a multi-frame DICOM is written with its other frames: use "
                     "write_frames")
  dataset = derived_header(image, description, series_description, keep_series, series_key)
  set_pixel_data(dataset, stored_values(image.pixels, image.dicom))
  return dataset



def derived_frames_dataset(frames: Iterable[Image], count: int,
                           description: str = DEFAULT_DESCRIPTION, *,
                           series_description: str | None = None, series_key: str = "",
                           keep_series: bool = False) -> pydicom.Dataset:
  """The multi-frame DICOM dataset of the `count` frames of one source (see `read_frames`).

  `frames` may be a generator: each frame is converted to its stored values as it arrives, so
  only those, never all float frames, are held at once. The rest is as `derived_dataset`.
  """
  stored, first, index = None, None, -1
  for index, image in enumerate(frames):
    if index >= count:
      raise ValueError(f"expected {count} frames, got more")
    if image.dicom is None or image.dicom.frame is None:
      raise ValueError(f"image {index} is not a frame of a multi-frame DICOM source")
    if image.dicom.frame != index:
      raise ValueError(f"frame {image.dicom.frame} came where frame {index} belongs")
    if first is not None and (image.dicom.dataset is not first.dicom.dataset
                              or image.pixels.shape != first.pixels.shape):
      raise ValueError(f"frame {index} does not belong with frame 0 (another source or size)")
    values = stored_values(image.pixels, image.dicom)
    if stored is None:
      first, stored = image, np.empty((count,) + values.shape, values.dtype)
    stored[index] = values
  if first is None or index + 1 != count:
    raise ValueError(f"expected {count} frames, got {0 if first is None else index + 1}")
  dataset = derived_header(first, description, series_description, keep_series, series_key)
  set_pixel_data(dataset, stored)
  return dataset

def set_pixel_data(dataset: pydicom.Dataset, stored: np.ndarray) -> None:
  dataset.PixelData = stored.tobytes()
  dataset["PixelData"].VR = "OW" if stored.itemsize > 1 else "OB"


def derived_series(source: pydicom.Dataset, series_description: str, key: str = ""
                   ) -> dict[str, object]:
  """SeriesInstanceUID, SeriesNumber and SeriesDescription of the series derived from `source`'s.

  Derived images belong in a series of their own in the source's study, not in the acquisition
  series (a PACS would otherwise file the x4 image among the originals):
  * SeriesInstanceUID: new, but the same for every image derived from one source series with one
    `series_description` and `key` (a hash of the three, as `pydicom.uid.generate_uid` makes
    from entropy sources), so the slices of a CT series written one file at a time, or an
    interrupted run resumed, end up in one derived series, while two different models (`key`:
    their weights' digest) never share one even under the same file name. A source without a
    series UID is hashed by its SOP Instance UID instead.
  * SeriesNumber: the source's plus SERIES_NUMBER_OFFSET (1000), or 1000 without one.
  * SeriesDescription: `series_description`, cut to the 64 characters DICOM allows (e.g.
    "jaxsr x4 RealESRGAN_x4plus": name the model and the scale).
  """
  source_key = source.get("SeriesInstanceUID") or source.get("SOPInstanceUID") or ""
  try:
    number = int(source.get("SeriesNumber")) + SERIES_NUMBER_OFFSET
  except (TypeError, ValueError):
    number = SERIES_NUMBER_OFFSET
  return {
      "SeriesInstanceUID": pydicom.uid.generate_uid(
          entropy_srcs=["jaxsr derived series", str(source_key), series_description, key]),
      "SeriesNumber": number,
      "SeriesDescription": series_description[:SERIES_DESCRIPTION_LENGTH],
  }


def derived_header(image: Image, description: str, series_description: str | None = None,
                    keep_series: bool = False, series_key: str = "") -> pydicom.Dataset:
  """The dataset of a derived image of `image`'s geometry, without its PixelData."""
  info = image.dicom
  if info is None:
    raise ValueError(f"only images read from DICOM can be written as DICOM (this one is "
                     f"{image.source_format}); write PNG or TIFF instead")
  source = info.dataset
  transfer_syntax = source.file_meta.get("TransferSyntaxUID")
  _, little_endian = getattr(source, "original_encoding", (None, None))
  if (transfer_syntax and not transfer_syntax.is_little_endian) or little_endian is False:
    raise ValueError("writing a DICOM from a big-endian source (a retired transfer syntax) is "
                     "not supported; convert the source to little endian first")
  dataset = copy.deepcopy(source)
  height, width = image.pixels.shape[:2]
  scale_y, scale_x = height / image.source_shape[0], width / image.source_shape[1]

  if not str(source.PhotometricInterpretation).startswith("MONOCHROME"):
    dataset.PhotometricInterpretation = "RGB"  # Pixel data is written uncompressed RGB.
    dataset.PlanarConfiguration = 0
  dataset.Rows, dataset.Columns = height, width
  if transfer_syntax is None or transfer_syntax.is_compressed:
    dataset.file_meta.TransferSyntaxUID = pydicom.uid.ExplicitVRLittleEndian
  # Elements that describe the old pixel data or its encoding, not the new image.
  for keyword in ("SmallestImagePixelValue", "LargestImagePixelValue", "ExtendedOffsetTable",
                  "ExtendedOffsetTableLengths"):
    if keyword in dataset:
      del dataset[keyword]

  # The top level (classic objects) and the Pixel Measures of every functional group (enhanced).
  places = [dataset]
  for groups in (dataset.get("SharedFunctionalGroupsSequence") or [],
                 dataset.get("PerFrameFunctionalGroupsSequence") or []):
    for group in groups:
      places.extend(group.get("PixelMeasuresSequence") or [])
  for place in places:
    for keyword in DICOM_SPACINGS:
      spacing = place.get(keyword)
      if spacing is not None and len(spacing) == 2:
        place[keyword].value = [
            pydicom.valuerep.DSfloat(float(spacing[0]) / scale_y, auto_format=True),
            pydicom.valuerep.DSfloat(float(spacing[1]) / scale_x, auto_format=True)]

  # Provenance: a new instance, derived from (and pointing at) the source.
  image_type = list(dataset.get("ImageType") or [])
  image_type += [""] * (2 - len(image_type))
  dataset.ImageType = ["DERIVED", "SECONDARY"] + image_type[2:]
  previous = dataset.get("DerivationDescription")
  dataset.DerivationDescription = f"{previous}; {description}" if previous else description
  if "SOPClassUID" in source and "SOPInstanceUID" in source:
    reference = pydicom.Dataset()
    reference.ReferencedSOPClassUID = source.SOPClassUID
    reference.ReferencedSOPInstanceUID = source.SOPInstanceUID
    dataset.SourceImageSequence = [reference]
  dataset.SOPInstanceUID = pydicom.uid.generate_uid()
  dataset.file_meta.MediaStorageSOPInstanceUID = dataset.SOPInstanceUID
  if not keep_series:
    series = derived_series(source, description if series_description is None
                            else series_description, series_key)
    for keyword, value in series.items():
      setattr(dataset, keyword, value)
  if "SOPClassUID" in dataset:
    dataset.file_meta.MediaStorageSOPClassUID = dataset.SOPClassUID
  return dataset


def stored_values(pixels: np.ndarray, info: DicomInfo, rows_per_block: int = 256) -> np.ndarray:
  """[0, 1] pixels -> modality values -> stored values in the source's representation.

  Computed in float64 a block of rows at a time, so the temporaries stay small however large
  the upscaled image is.
  """
  source = info.dataset
  signed = int(source.get("PixelRepresentation", 0)) == 1
  dtype = np.dtype(f"<{'i' if signed else 'u'}{int(source.BitsAllocated) // 8}")
  monochrome = str(source.PhotometricInterpretation).startswith("MONOCHROME")
  slope, intercept = _rescale(source, info.frame) if monochrome else (1.0, 0.0)
  stored = np.empty(pixels.shape[:2] if monochrome else pixels.shape, dtype)
  for top in range(0, pixels.shape[0], rows_per_block):
    x = np.clip(pixels[top:top + rows_per_block].astype(np.float64), 0.0, 1.0)
    if monochrome:
      x = 1.0 - x[..., 0] if info.invert else x[..., 0]
    values = (info.low + x * (info.high - info.low) - intercept) / slope
    stored[top:top + rows_per_block] = np.clip(np.rint(values), *_stored_range(source))
  return stored
