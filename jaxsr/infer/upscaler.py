"""`Upscaler`: a converted or fine-tuned generator as a plain array-in, array-out function.

    from jaxsr.infer.upscaler import Upscaler
    up = Upscaler("models/x4plus")                 # any jaxsr generator directory
    sr = up.upscale(image)                         # HxW or HxWxC, uint8/uint16/float in [0, 1]
    up = Upscaler("models/x4plus", tile=256)       # large images: tiles, bounded memory

The instance holds only immutable things (configuration, device params, jitted functions), so
one Upscaler can serve several threads. Output dtype follows the input: uint8 -> uint8, uint16 ->
uint16, float -> float32 in [0, 1]. Gray images stay gray: the network sees the gray value in all
three channels and BT.601 luma of its clipped output comes back, as Real-ESRGAN does. An alpha
channel is resized separately with Lanczos (a mask should not get invented texture).

Memory: `tile=0` (the default) runs the whole image in one jitted call, exactly as the PyTorch
original with `--tile 0` (its rows split over the devices: XLA exchanges the halo rows, so the
result is bit-identical to one device); its activations grow with the image. With `tile > 0` the
network sees windows of at most `tile + 2 * tile_pad` pixels a side (see `jaxsr.infer.tiling`:
an image that fits in one window runs at its own shape, larger ones all share one window shape,
and every output pixel has `tile_pad` of context or the image border), so what it needs is
bounded, and output buffers larger than `memmap_above` bytes are `np.memmap`s on an unlinked
temporary file: a 3K x 3K radiograph x4 (a 12K x 12K output) does not need the output in RAM
twice over. The `--outscale` Lanczos resize reads and writes in strips of rows, so it needs no
full-size temporary either.

Devices: with tiles, each batch of windows is split over a mesh of all local devices
(`jaxsr.infer.devices`): every GPU or TPU chip of the host, or every CPU core once
`devices.use_cpu_cores()` has run before JAX started (`python -m jaxsr.upscale` does). The batch
is rounded up to a multiple of the device count, so by default each device gets one window.
"""

from __future__ import annotations

import functools
import math
import tempfile

import jax
import jax.numpy as jnp
import numpy as np
import PIL.Image

from jaxsr import checkpoint
from jaxsr import io as jio
from jaxsr.infer import devices as devices_lib
from jaxsr.infer import intensity
from jaxsr.infer import tiling
from jaxsr.models import precision
from jaxsr.models.generators import for_inference, receptive_radius

LUMA_BT601 = np.array([0.299, 0.587, 0.114], np.float32)
# Output buffers above this many bytes live in an unlinked temporary file instead of RAM.
MEMMAP_ABOVE_BYTES = 1 << 30
# Lanczos strips hold about this many float32 output pixels (4 MiB), whatever the image width.
RESIZE_STRIP_PIXELS = 1 << 20
LANCZOS_LOBES = 3  # PIL's LANCZOS filter is Lanczos-3.


def to_float(image: np.ndarray) -> np.ndarray:
  """uint8/uint16/float image -> float32 in [0, 1] (floats are assumed to be in [0, 1] already)."""
  if image.dtype == np.uint8:
    return image.astype(np.float32) / 255.0
  if image.dtype == np.uint16:
    return image.astype(np.float32) / 65535.0
  if np.issubdtype(image.dtype, np.floating):
    return image.astype(np.float32)
  raise TypeError(f"unsupported pixel type {image.dtype}; expected uint8, uint16 or float")


def from_float(image: np.ndarray, dtype) -> np.ndarray:
  image = np.clip(image, 0.0, 1.0)
  if dtype == np.uint8:
    return np.round(image * 255.0).astype(np.uint8)
  if dtype == np.uint16:
    return np.round(image * 65535.0).astype(np.uint16)
  return image.astype(np.float32)


def allocate(shape: tuple[int, ...], *, memmap_above: int = MEMMAP_ABOVE_BYTES,
             scratch_dir=None) -> np.ndarray:
  """An uninitialised float32 array; above `memmap_above` bytes, file-backed.

  The file is created unlinked (`tempfile.TemporaryFile`) in `scratch_dir` (default: the system
  temporary folder, which may be RAM-backed; pass a folder on disk for huge images), so it
  disappears with the array, even if the process dies.
  """
  if math.prod(shape) * 4 <= memmap_above:
    return np.empty(shape, np.float32)
  with tempfile.TemporaryFile(dir=scratch_dir) as backing:
    # The mapping keeps the (nameless) file alive after `backing` is closed.
    return np.memmap(backing, dtype=np.float32, mode="w+", shape=shape)


def resize_lanczos(image: np.ndarray, height: int, width: int, *,
                   out: np.ndarray | None = None) -> np.ndarray:
  """Float (H, W, C) -> (height, width, C) with PIL's Lanczos-3, clipped to [0, 1].

  Works a channel and a strip of output rows at a time, handing PIL only the source rows the
  strip's filter reaches, so the temporaries stay small however large the image (`image` and
  `out` may be memmaps). PIL weighs exactly the same source pixels as when resizing the whole
  image: its filter support is clipped at the edges of the full image only, which each strip's
  source rows reach wherever the full image's do.
  """
  source_height, source_width, channels = image.shape
  if out is None:
    out = np.empty((height, width, channels), np.float32)
  ratio = source_height / height  # Source rows per output row.
  # Lanczos-3 reaches 3 output-pixel widths (at least 3 source pixels) either side of a centre;
  # one more row each side absorbs PIL's rounding of the support ends.
  reach = LANCZOS_LOBES * max(ratio, 1.0) + 1
  strip_rows = max(1, RESIZE_STRIP_PIXELS // width)
  for channel in range(channels):
    for top in range(0, height, strip_rows):
      bottom = min(top + strip_rows, height)
      first = max(math.floor(top * ratio - reach), 0)
      last = min(math.ceil(bottom * ratio + reach), source_height)
      rows = PIL.Image.fromarray(np.ascontiguousarray(image[first:last, :, channel], np.float32))
      box = (0.0, top * ratio - first, float(source_width),
             min(bottom * ratio, source_height) - first)
      strip = np.asarray(rows.resize((width, bottom - top), PIL.Image.LANCZOS, box=box))
      out[top:bottom, :, channel] = np.clip(strip, 0.0, 1.0)  # Lanczos overshoots at edges.
  return out


@functools.lru_cache(maxsize=16)
def _jitted(module, mesh, *, whole_image: bool):
  """(network, {channels: clipped}) jitted for `module` (a Flax module: hashable) on `mesh`.

  `network(variables, batch)`: the raw NHWC output. `clipped[3]` / `clipped[1]`: (B, h, w, 3 | 1)
  -> (B, scale*h, scale*w, 3 | 1) in [0, 1], by input channel count. Windows (tiles) are a batch
  split over the mesh's devices (the batch is a multiple of their count). A whole image has its
  rows split instead: XLA partitions each convolution by rows and exchanges the halo rows, so
  the result is the one-device result exactly, computed by every core; a height the devices do
  not divide is computed whole on each of them (the wall time of one device, no transfers).
  """
  def network(variables, batch):
    return module.apply(variables, batch).astype(jnp.float32)

  def rgb(variables, batch):
    return jnp.clip(network(variables, batch), 0.0, 1.0)

  def gray(variables, batch):
    # Multiply-add rather than a matmul: on GPUs a default-precision matmul runs in TF32,
    # whose 10-bit mantissa would cost 16-bit outputs dozens of levels.
    out = rgb(variables, jnp.repeat(batch, 3, axis=-1))
    return jnp.sum(out * LUMA_BT601, axis=-1, keepdims=True)

  replicated = devices_lib.replicated(mesh)
  if not whole_image:
    split = devices_lib.batch_split(mesh)
    clipped = {channels: jax.jit(fn, in_shardings=(replicated, split), out_shardings=split)
               for channels, fn in ((3, rgb), (1, gray))}
    return jax.jit(network), clipped
  rows, count = devices_lib.row_split(mesh), mesh.devices.size

  def split_rows(fn):
    spread = jax.jit(fn, in_shardings=(replicated, rows), out_shardings=rows)
    whole = jax.jit(fn, in_shardings=(replicated, replicated), out_shardings=replicated)
    return lambda variables, batch: (spread if batch.shape[1] % count == 0 else whole)(
        variables, batch)

  return jax.jit(network), {channels: split_rows(fn) for channels, fn in ((3, rgb), (1, gray))}


DEFAULT_TILE_PAD = 24
# Automatic tile batches on accelerators: the share of a device's memory the windows of one
# batch may fill (the rest holds the parameters, XLA's workspace and the next batch in transit),
# and a cap past which larger batches no longer raise throughput but delay the first result.
BATCH_MEMORY_FRACTION = 0.5
MAX_WINDOWS_PER_DEVICE = 32


def windows_per_device(module, variables, window: int, device_memory: int | None) -> int:
  """How many `window` x `window` tiles one device computes per call.

  On a CPU (no `device_memory`) one: each core is a device and computes one window, and more
  windows per core do not run faster. On an accelerator: as many as fit in
  BATCH_MEMORY_FRACTION of `device_memory`, from XLA's own memory analysis of the compiled
  network on one window (its temporaries and output; the parameters once), at most
  MAX_WINDOWS_PER_DEVICE.
  """
  if not device_memory:
    return 1
  window_bytes = window * window * 3 * 4
  compiled = jax.jit(module.apply).lower(
      variables, jax.ShapeDtypeStruct((1, window, window, 3), jnp.float32)).compile()
  usage = compiled.memory_analysis()
  per_window = usage.temp_size_in_bytes + usage.output_size_in_bytes + window_bytes
  parameters = usage.argument_size_in_bytes - window_bytes
  budget = BATCH_MEMORY_FRACTION * device_memory - parameters
  return int(max(1, min(MAX_WINDOWS_PER_DEVICE, budget // per_window)))


def device_memory(device) -> int | None:
  """The memory an accelerator lets JAX use, in bytes; None on a CPU (no such limit)."""
  stats = device.memory_stats() if device.platform != "cpu" else None
  return (stats or {}).get("bytes_limit")


def default_tile_pad(module) -> int:
  """Context that makes tiles equal the whole-image output where a network's receptive field is
  small enough (its radius); DEFAULT_TILE_PAD for RRDBNet, whose field is far larger."""
  radius = receptive_radius(module)
  return DEFAULT_TILE_PAD if radius is None else radius


class Upscaler:
  """Super-resolves images with a jaxsr generator directory.

  Args:
    model_dir: a generator directory (`python -m jaxsr.convert`), or a generator already in
      memory as a `(variables, checkpoint.ModelMetadata)` pair (for example a blend of two from
      `jaxsr.convert.interpolation.blend`); anything else is refused with a
      `checkpoint.CheckpointError`.
    dtype: "fp32" (or "float32"), or "bf16" ("bfloat16") to compute in bfloat16 (GPU/TPU;
      parameters stay fp32); see `jaxsr.models.precision`.
    tile: 0 runs each image whole (on one device). Otherwise the original's tile size: windows
      are `tile + 2 * tile_pad` pixels, less than `tile` apart, and an image that fits in one
      window runs at its own shape (compiled once per shape; see `jaxsr.infer.tiling`).
    tile_pad: context every output pixel gets on each side that is not the image border; where
      neighbouring windows both have it, they are cross-faded. Default (None): the network's
      receptive-field radius where it has a small one (SRVGGNetCompact: num_conv + 2, so tiles
      equal the whole-image output), else DEFAULT_TILE_PAD (24). RRDBNet sees far beyond any
      practical pad, so tiles differ slightly from a whole-image run, as the original's do: with
      the real x4plus weights (tile 64, a 160 x 160 fundus crop, every pixel) the largest
      difference was 16 / 10 / 6 / 2 levels of 255 for pads 10 / 16 / 24 / 32 (mean 0.40 /
      0.25 / 0.15 / 0.06), where the original's tiling gives 26 / 18 / 11 / 6 (mean 0.80 /
      0.58 / 0.34 / 0.19). An image that fits in one window is exact.
    pre_pad: whole-image mode only: reflected rows/columns added at the bottom/right and
      cropped from the output, as the original's `--pre_pad` (tiles get `tile_pad` of context
      on every side that is not the image border instead).
    batch: windows per call, rounded up to a multiple of the number of devices. Default (None):
      one window per CPU device (core); on GPUs / TPUs as many per device as fit in half its
      memory, measured on the compiled network (`windows_per_device`).
    devices: the devices each batch is split over (default: every local device; see
      `jaxsr.infer.devices`). A whole image (tile 0) is split over them by rows, exactly.
    intensity_lock: 0 (default) returns the network's output. > 0: the Gaussian sigma, in input
      pixels, of the intensity lock (`jaxsr.infer.intensity`), which gives the output the
      input's intensities at coarse scales (applied before any `outscale` resize).
  """

  def __init__(self, model_dir, *, dtype: str = "fp32", tile: int = 0,
               tile_pad: int | None = None, pre_pad: int = 0, batch: int | None = None,
               devices=None, intensity_lock: float = 0.0):
    compute_dtype = precision.compute_dtype(dtype)  # A name outside the vocabulary fails here.
    for name, value, least in (("tile", tile, 0), ("tile_pad", tile_pad, 0),
                               ("pre_pad", pre_pad, 0), ("batch", batch, 1)):
      if value is not None and (int(value) != value or value < least):
        raise ValueError(f"{name} must be an integer >= {least}, got {value!r}")
    if not (math.isfinite(intensity_lock) and intensity_lock >= 0):
      raise ValueError(f"intensity_lock must be >= 0 (0 = off), got {intensity_lock!r}")
    self.intensity_lock = float(intensity_lock)
    devices = list(jax.local_devices() if devices is None else devices)
    self.mesh = devices_lib.batch_mesh(devices)
    self.devices: int = len(devices)
    if isinstance(model_dir, tuple):
      variables, metadata = model_dir
      if metadata.kind != "generator":
        raise checkpoint.CheckpointError(f"a {metadata.kind} cannot upscale; a generator is needed")
    else:
      variables, metadata = checkpoint.load(model_dir, expect_kind="generator")
    self.metadata = metadata
    # The weights' identity (derived DICOM series are keyed by it, not by a directory's name).
    self.weights_digest: str = checkpoint.weights_digest(variables)
    self.scale: int = int(metadata.arch["scale"])
    module = for_inference(checkpoint.build_model(metadata, compute_dtype))
    self.tile, self.pre_pad = tile, pre_pad
    self.tile_pad: int = default_tile_pad(module) if tile_pad is None else tile_pad
    if not tile:  # Whole images are split by rows instead (see below): one at a time.
      self.batch: int = 1 if batch is None else batch
    else:
      if batch is None:
        window = tile + 2 * self.tile_pad
        batch = self.devices * windows_per_device(module, variables, window,
                                                  device_memory(devices[0]))
      self.batch = devices_lib.round_up(batch, self.devices)
    self.input_multiple: int = module.input_multiple
    self._variables = jax.device_put(variables, devices_lib.replicated(self.mesh))
    # Shared by every Upscaler of the same network, mesh and mode (jaxsr.evaluate runs several
    # models of one architecture): each shape compiles once per process, not once per model.
    self._network, self._clipped = _jitted(module, self.mesh, whole_image=tile == 0)

  def network(self, batch: jax.Array) -> jax.Array:
    """The raw network on an NHWC float batch (no padding, no clipping); jitted per shape.

    Not split over the devices (any batch size works); each device of the mesh computes it.
    """
    return self._network(self._variables, batch)

  def output_size(self, height: int, width: int, outscale: float | None = None) -> tuple[int, int]:
    """(rows, columns) of the result for an input of `height` x `width`."""
    outscale = self.scale if outscale is None else float(outscale)
    if not outscale > 0:
      raise ValueError(f"outscale must be positive, got {outscale}")
    return int(round(height * outscale)), int(round(width * outscale))

  def upscale_pixels(self, pixels: np.ndarray, outscale: float | None = None, *,
                     progress: bool = False, scratch_dir=None,
                     memmap_above: int = MEMMAP_ABOVE_BYTES) -> np.ndarray:
    """Float (H, W, 1) gray or (H, W, 3) RGB in [0, 1] -> float32 result in [0, 1].

    The network's output is resized with Lanczos to `outscale` times the input (default: the
    network's own scale, which is never applied silently in its place). Buffers larger than
    `memmap_above` bytes are memmaps in `scratch_dir` (see `allocate`); the result may be one.
    """
    if pixels.ndim != 3 or pixels.shape[2] not in self._clipped:
      raise ValueError(f"expected (H, W, 1) or (H, W, 3) pixels, got shape {pixels.shape}")
    height, width, channels = pixels.shape
    if min(height, width) < 1:
      raise ValueError(f"empty image of shape {pixels.shape}")
    target = self.output_size(height, width, outscale)
    buffer = functools.partial(allocate, memmap_above=memmap_above, scratch_dir=scratch_dir)
    network_out = buffer((self.scale * height, self.scale * width, channels))
    tiling.upscale_tiled(
        pixels, functools.partial(self._clipped[channels], self._variables), scale=self.scale,
        tile=self.tile, tile_pad=self.tile_pad, batch=self.batch,
        batch_multiple=self.devices if self.tile else 1,
        pad_multiple=self.input_multiple, pre_pad=self.pre_pad, out=network_out,
        progress=progress)
    if self.intensity_lock:
      intensity.lock_intensity(network_out, pixels, self.scale, self.intensity_lock)
    if target == network_out.shape[:2]:
      return network_out
    return resize_lanczos(network_out, *target, out=buffer(target + (channels,)))

  def upscale_image(self, image: jio.Image, outscale: float | None = None, *,
                    progress: bool = False, scratch_dir=None,
                    memmap_above: int = MEMMAP_ABOVE_BYTES) -> jio.Image:
    """A `jaxsr.io.Image` (e.g. from `jaxsr.io.read_image`) super-resolved, metadata kept."""
    pixels = self.upscale_pixels(image.pixels, outscale, progress=progress,
                                 scratch_dir=scratch_dir, memmap_above=memmap_above)
    alpha = None
    if image.alpha is not None:
      alpha = resize_lanczos(image.alpha, *pixels.shape[:2], out=allocate(
          pixels.shape[:2] + (1,), memmap_above=memmap_above, scratch_dir=scratch_dir))
    return image.with_pixels(pixels, alpha)

  def upscale(self, image: np.ndarray, outscale: float | None = None, *,
              progress: bool = False) -> np.ndarray:
    """Super-resolves an HxW (gray), HxWx1, HxWx3 or HxWx4 (alpha upscaled separately) image.

    `outscale` (default: the network's own scale) resizes the network output with Lanczos, so a
    x4 network can produce x2; the network's scale is never applied silently in its place.
    """
    if image.ndim not in (2, 3) or (image.ndim == 3 and image.shape[2] not in (1, 3, 4)):
      raise ValueError(f"expected an HxW, HxWx1, HxWx3 or HxWx4 image, got shape {image.shape}")
    if min(image.shape[:2]) < 1:
      raise ValueError(f"empty image of shape {image.shape}")
    pixels = to_float(image)
    pixels = pixels.reshape(pixels.shape[0], pixels.shape[1], -1)
    colour = pixels[..., :3] if pixels.shape[2] >= 3 else pixels
    out = self.upscale_pixels(colour, outscale, progress=progress)
    if pixels.shape[2] == 4:
      out = np.concatenate([out, resize_lanczos(pixels[..., 3:], *out.shape[:2])], axis=2)
    if image.ndim == 2:
      out = out[..., 0]
    return from_float(out, image.dtype)
