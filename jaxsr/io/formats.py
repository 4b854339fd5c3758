"""File formats: their suffixes and how a file's first bytes tell which one it is.

Reading goes by content, never by name (a DICOM file often has no suffix, a TIFF may be called
.tif or .tiff). Names matter in two places only: choosing an output format from an output
name (`SUFFIXES`, the formats jaxsr writes), and listing a folder (`jaxsr.io.listing`).
"""

from __future__ import annotations

# Output suffix -> format written (jaxsr writes these four).
SUFFIXES = {".png": "png", ".tif": "tiff", ".tiff": "tiff", ".jpg": "jpeg", ".jpeg": "jpeg",
            ".dcm": "dicom", ".dicom": "dicom"}
# Suffixes of the raster files jaxsr reads; each may also be gzipped (name + ".gz").
RASTER_SUFFIXES = (".png", ".tif", ".tiff", ".jpg", ".jpeg", ".bmp", ".pgm", ".ppm", ".pnm")
DICOM_SUFFIXES = (".dcm", ".dicom")
GZIP_SUFFIX = ".gz"

GZIP_MAGIC = b"\x1f\x8b"
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
JPEG_MAGIC = b"\xff\xd8\xff"
TIFF_MAGICS = (b"II*\x00", b"MM\x00*", b"II+\x00", b"MM\x00+")  # Classic and BigTIFF.
BMP_MAGIC = b"BM"
PNM_MAGICS = (b"P1", b"P2", b"P3", b"P4", b"P5", b"P6")
# A DICOM Part 10 file: a 128-byte preamble, then b"DICM".
DICOM_PREAMBLE = 128
DICOM_MAGIC = b"DICM"
# Bytes `sniff` needs to see.
HEAD_BYTES = DICOM_PREAMBLE + len(DICOM_MAGIC)
KNOWN = "a PNG, TIFF, JPEG, BMP, PNM or DICOM file"


def is_dicom_head(head: bytes) -> bool:
  """The first HEAD_BYTES bytes of a file are those of a DICOM Part 10 file."""
  return head[DICOM_PREAMBLE:DICOM_PREAMBLE + len(DICOM_MAGIC)] == DICOM_MAGIC


def sniff(head: bytes, name: str = "") -> str | None:
  """The format ("png", "tiff", "jpeg", "bmp", "pnm", "dicom") of a file that starts with `head`.

  `name` is looked at only for bare DICOM datasets (old files without preamble and "DICM"),
  which have no magic: they are recognised by a .dcm/.dicom suffix. None: none of these.
  """
  # First: the 128-byte preamble of a DICOM file may itself hold a TIFF header (dual-format).
  if is_dicom_head(head):
    return "dicom"
  if head.startswith(PNG_MAGIC):
    return "png"
  if head.startswith(JPEG_MAGIC):
    return "jpeg"
  if head[:4] in TIFF_MAGICS:
    return "tiff"
  if head[:2] == BMP_MAGIC:
    return "bmp"
  if head[:2] in PNM_MAGICS and head[2:3].isspace():
    return "pnm"
  if name.lower().endswith(DICOM_SUFFIXES):
    return "dicom"
  return None


def output_format(source_format: str) -> str:
  """The format a result is written in by default: its source's, or PNG (lossless, 8 or 16 bits)
  for formats jaxsr reads but does not write (BMP, PNM)."""
  return source_format if source_format in SUFFIXES.values() else "png"
