"""Image files in and out: the bottom layer of jaxsr (it imports no other jaxsr package).

  image.py    the `Image` type (+ `DicomInfo`) and the read errors
  formats.py  suffixes, magic numbers, recognising a file's format by its first bytes
  raster.py   the one raster decoder: PNG, TIFF, JPEG, BMP, PNM; 8/16 bits; gray/RGB/alpha/palette
  dicom.py    the one DICOM reader (one documented intensity mapping, multi-frame) and the
              derived-DICOM writer (headers, series)
  png.py      the streaming PNG writer (8/16-bit, any channels)
  tiff.py     the TIFF writer
  files.py    read any file by content (`read_image`, `read_frames`, training's `read_samples`)
              and write PNG/TIFF/JPEG/DICOM (`write_image`, `write_frames`)
  atomic.py   `atomic_write`: complete or absent, mode 0666 less the umask
  listing.py  the one rule for which files are images (suffix, or DICOM by content), and
              file / folder / glob specs

The names below are the package's interface; `from jaxsr import io as jio` reads well where the
standard library's `io` is also used.
"""

from jaxsr.io.atomic import atomic_write
from jaxsr.io.dicom import DEFAULT_DESCRIPTION
from jaxsr.io.dicom import DICOM_RANGES
from jaxsr.io.dicom import derived_dataset
from jaxsr.io.dicom import derived_series
from jaxsr.io.files import decode_frames
from jaxsr.io.files import decode_samples
from jaxsr.io.files import read_frames
from jaxsr.io.files import read_image
from jaxsr.io.files import read_samples
from jaxsr.io.files import write_frames
from jaxsr.io.files import write_image
from jaxsr.io.formats import SUFFIXES
from jaxsr.io.formats import output_format
from jaxsr.io.image import FORMATS
from jaxsr.io.image import SOURCE_FORMATS
from jaxsr.io.image import CorruptImageError
from jaxsr.io.image import DicomInfo
from jaxsr.io.image import Image
from jaxsr.io.image import ImageNotFoundError
from jaxsr.io.image import UnreadableImageError
from jaxsr.io.image import UnsupportedImageError
from jaxsr.io.listing import Listing
from jaxsr.io.listing import find_images
from jaxsr.io.listing import is_image_file
from jaxsr.io.listing import list_folder
