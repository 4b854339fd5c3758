"""Tiled super-resolution: any image size, one compiled shape, bounded memory, no seams.

    out = upscale_tiled(image, apply_fn, scale=4, tile=256, tile_pad=16, batch=4)

`apply_fn` maps a float32 batch `(B, L, L, C)` to `(B, scale*L, scale*L, C')` (typically a
jitted network). In tiled mode it only ever sees `L = tile + 2 * tile_pad` and `B = batch`:
windows at the image border are completed by reflection and the last batch is padded, so a
jitted `apply_fn` compiles once for every image size.

How this differs from Real-ESRGAN's tiling (which crops each tile's core and pastes it):

* Tiles are blended. Each tile's output is weighted by a ramp that is 1 in its middle and falls
  linearly to 0 over `tile_pad` pixels centred on the core's edge, and the weights are normalised
  to sum to 1 (a partition of unity), so neighbouring tiles cross-fade instead of meeting at a
  hard line. A tile contributes only where it has at least `tile_pad // 2` input pixels of
  context on every side, so for a network whose receptive-field radius is at most
  `tile_pad // 2` input pixels the tiled result equals the whole image run on the
  reflect-padded image (tested, to float rounding); that is half of what crop-and-paste needs,
  the price of the cross-fade. For deeper networks (RRDBNet's receptive field is far larger
  than any practical pad) the cross-fade hides what cropping shows as a seam.
* The grid is uniform and the last tile in each direction is moved back to end at the image edge
  (overlapping its neighbour more) instead of being a smaller tile, so no window is mostly
  padding and the input shape never changes.
* Memory is bounded by the batch: windows are gathered straight from `image` by index (no
  padded copy of the image), the blend weights are separable and normalised per axis (no
  full-size weight buffer), and each batch's output is added into `out`, which may be an
  `np.memmap` for images that do not fit in memory.

Border handling: the image is extended by reflection (`a b c | b a`, NumPy's "reflect"); the
same extension gives the tiled windows their context at the image edge and provides the padding
to a multiple of `pad_multiple` (scale-2 and scale-1 Real-ESRGAN models pixel-unshuffle by 2 and
4, so they need 2 and 4). Whole-image mode (`tile=0`) pads only the bottom and right, by
`pre_pad` and then up to the multiple, as the original does; its input shape follows the image,
so a jitted `apply_fn` compiles once per image size there.
"""

from __future__ import annotations

import dataclasses
import functools
import math
from typing import Callable

import numpy as np
import tqdm

# (B, L, L, C) float32 -> (B, scale*L, scale*L, C'); anything np.asarray accepts (jax.Array too).
ApplyFn = Callable[[np.ndarray], np.ndarray]


def reflect_indices(start: int, stop: int, size: int) -> np.ndarray:
  """Source indices of positions `start..stop-1` on an axis of `size` extended by reflection.

  Reflection mirrors about the edge sample without repeating it; repeated reflections make it
  periodic with period `2 * (size - 1)`, which is what `np.pad(mode="reflect")` does for pads
  longer than the axis.
  """
  positions = np.arange(start, stop)
  if size == 1:  # A one-pixel axis reflects onto itself.
    return np.zeros_like(positions)
  period = 2 * (size - 1)
  phase = np.mod(positions, period)
  return np.where(phase < size, phase, period - phase)


def blend_ramp(length: int, width: int) -> np.ndarray:
  """Blend weights along one axis of a tile's output of `length` pixels.

  1 in the middle; at each end 0 for the outer `width / 2` pixels, then rising linearly to 1 over
  the next `width` pixels. Two tiles whose outputs overlap by `2 * width` (neighbours at stride
  `tile` with `tile_pad = width / scale`) have ramps that sum to exactly 1 across the overlap.
  `width == 0` means no blending (all ones).
  """
  if width == 0:
    return np.ones(length)
  rise = np.clip((np.arange(length) + 0.5 - width / 2) / width, 0.0, 1.0)
  return np.minimum(rise, rise[::-1])


@dataclasses.dataclass(frozen=True)
class AxisTile:
  """Where one tile sits along one axis.

  Attributes:
    source: input indices of the tile's window (reflected where it leaves the image).
    out_start, out_stop: the output range the tile writes to, already clipped to the output.
    local_start: where `out_start` falls in the tile's own output.
    weight: normalised blend weights for `out_start..out_stop` (the tiles covering any output
      position have weights summing to 1).
  """
  source: np.ndarray
  out_start: int
  out_stop: int
  local_start: int
  weight: np.ndarray


def plan_axis(size: int, *, tile: int, tile_pad: int, scale: int,
              pad_multiple: int = 1) -> list[AxisTile]:
  """Tiles along one axis of `size` input pixels.

  Cores of `tile` pixels start at multiples of `tile` (so at multiples of `pad_multiple` when
  `tile` is one); the last core is moved back to end at the axis, rounded up to `pad_multiple`.
  Each window adds `tile_pad` pixels of context on both sides.
  """
  extent = -(-size // pad_multiple) * pad_multiple
  count = max(1, math.ceil(extent / tile))
  starts = [min(k * tile, max(extent - tile, 0)) for k in range(count)]
  window = tile + 2 * tile_pad
  ramp = blend_ramp(scale * window, scale * tile_pad)

  out_size = scale * size
  placed = []  # (tile start, first output position of its window, clipped output range)
  total = np.zeros(out_size)
  for start in starts:
    origin = scale * (start - tile_pad)
    lo, hi = max(origin, 0), min(origin + scale * window, out_size)
    total[lo:hi] += ramp[lo - origin:hi - origin]
    placed.append((start, origin, lo, hi))
  # Every output position lies in some tile's core, where that tile's ramp is >= 1/2.
  assert total.min() > 0, "tile grid leaves output uncovered"

  return [
      AxisTile(
          source=reflect_indices(start - tile_pad, start + tile + tile_pad, size),
          out_start=lo, out_stop=hi, local_start=lo - origin,
          weight=(ramp[lo - origin:hi - origin] / total[lo:hi]).astype(np.float32))
      for start, origin, lo, hi in placed
  ]


def upscale_tiled(image: np.ndarray, apply_fn: ApplyFn, *, scale: int, tile: int = 0,
                  tile_pad: int = 10, batch: int = 1, pad_multiple: int = 1, pre_pad: int = 0,
                  out: np.ndarray | None = None, progress: bool = False) -> np.ndarray:
  """Applies a super-resolution function to an image of any size, tile by tile.

  Args:
    image: `(H, W, C)` float image (an `np.memmap` works: only each window is read).
    apply_fn: `(B, L, L, C)` float32 -> `(B, scale*L, scale*L, C')`.
    scale: the output/input size ratio of `apply_fn`; checked on every result.
    tile: core size of a tile in input pixels; 0 runs the whole image in one call.
    tile_pad: context added on each side of a tile (input pixels); also the blend width.
    batch: tiles per `apply_fn` call; the last call is padded to this size.
    pad_multiple: `apply_fn` needs H and W divisible by this (4 for scale-1 and 2 for scale-2
      pixel-unshuffle networks). In tiled mode `tile` and `tile_pad` are rounded up to multiples
      of it, which keeps every window aligned with the whole-image block grid.
    pre_pad: whole-image mode only: extra reflected rows/columns at the bottom/right, cropped
      from the output (tiled mode gives every edge `tile_pad` pixels of reflected context).
    out: optional `(scale*H, scale*W, C')` float array (e.g. `np.memmap`) to write into; it is
      overwritten. Without it an array is allocated.
    progress: show a tqdm bar over tiles.

  Returns:
    `out` (or the new array), float: the unclipped output of `apply_fn`, cropped to
    `(scale*H, scale*W)`.
  """
  if image.ndim != 3 or not np.issubdtype(image.dtype, np.floating):
    raise TypeError(f"image must be a float (H, W, C) array, got {image.dtype} {image.shape}")
  for name, value, least in (("scale", scale, 1), ("tile", tile, 0), ("tile_pad", tile_pad, 0),
                             ("batch", batch, 1), ("pad_multiple", pad_multiple, 1),
                             ("pre_pad", pre_pad, 0)):
    if int(value) != value or value < least:
      raise ValueError(f"{name} must be an integer >= {least}, got {value!r}")
  height, width, _ = image.shape
  out_shape = (scale * height, scale * width)
  if out is not None and out.shape[:2] != out_shape:
    raise ValueError(f"out has shape {out.shape}; expected {out_shape} + (channels,)")

  if tile == 0:
    return _upscale_whole(image, apply_fn, scale=scale, pad_multiple=pad_multiple,
                          pre_pad=pre_pad, out=out)

  tile = -(-tile // pad_multiple) * pad_multiple
  tile_pad = -(-tile_pad // pad_multiple) * pad_multiple
  window = tile + 2 * tile_pad
  axis_plan = dict(tile=tile, tile_pad=tile_pad, scale=scale, pad_multiple=pad_multiple)
  tiles = [(row, col) for row in plan_axis(height, **axis_plan)
           for col in plan_axis(width, **axis_plan)]
  if out is not None:
    out[...] = 0  # Tiles are added in; no temporary, so a memmap stays out of memory.

  blend = functools.partial(_blend_into, batch=batch, scale=scale, window=window,
                            out_shape=out_shape)
  with tqdm.tqdm(total=len(tiles), unit="tile", desc="tiles", leave=False,
                 disable=not progress) as bar:
    in_flight = None  # (tiles, result) of the batch dispatched last.
    for first in range(0, len(tiles), batch):
      group = tiles[first:first + batch]
      windows = np.zeros((batch, window, window, image.shape[2]), np.float32)
      for slot, (row, col) in enumerate(group):
        windows[slot] = image[np.ix_(row.source, col.source)]
      # Dispatch this batch before blending the previous one: with an asynchronous apply_fn
      # (any jitted JAX function) the accelerator works while the host blends.
      result = apply_fn(windows)
      if in_flight is not None:
        out = blend(out, *in_flight)
        bar.update(len(in_flight[0]))
      in_flight = (group, result)
    out = blend(out, *in_flight)
    bar.update(len(in_flight[0]))
  return out


def _blend_into(out, group, result, *, batch, scale, window, out_shape):
  """Adds each tile of one batch's result, weighted, into `out` (allocated on first use)."""
  result = _checked_result(result, batch=batch, rows=scale * window, cols=scale * window)
  if out is None:
    out = np.zeros(out_shape + result.shape[3:], np.float32)
  elif out.shape[2:] != result.shape[3:]:
    raise ValueError(f"out has {out.shape[2:]} channels, apply_fn returns {result.shape[3:]}")
  for slot, (row, col) in enumerate(group):
    rows = slice(row.local_start, row.local_start + row.out_stop - row.out_start)
    cols = slice(col.local_start, col.local_start + col.out_stop - col.out_start)
    weight = row.weight[:, None, None] * col.weight[None, :, None]
    out[row.out_start:row.out_stop, col.out_start:col.out_stop] += result[slot, rows, cols] * weight
  return out


def _upscale_whole(image, apply_fn, *, scale, pad_multiple, pre_pad, out):
  """One call on the image reflect-padded at the bottom/right; the output is cropped back."""
  height, width, _ = image.shape
  padded_height = -(-(height + pre_pad) // pad_multiple) * pad_multiple
  padded_width = -(-(width + pre_pad) // pad_multiple) * pad_multiple
  rows = reflect_indices(0, padded_height, height)
  cols = reflect_indices(0, padded_width, width)
  padded = np.asarray(image[np.ix_(rows, cols)], np.float32)
  result = _checked_result(apply_fn(padded[None]), batch=1, rows=scale * padded_height,
                           cols=scale * padded_width)
  cropped = result[0, :scale * height, :scale * width]
  if out is None:
    return np.array(cropped, np.float32)
  if out.shape[2:] != cropped.shape[2:]:
    raise ValueError(f"out has {out.shape[2:]} channels, apply_fn returns {cropped.shape[2:]}")
  out[...] = cropped
  return out


def _checked_result(result, *, batch: int, rows: int, cols: int) -> np.ndarray:
  """`apply_fn`'s output as float32 NumPy, after checking it has the promised shape."""
  result = np.asarray(result)
  if result.ndim != 4 or result.shape[:3] != (batch, rows, cols):
    raise ValueError(
        f"apply_fn returned shape {result.shape}; expected ({batch}, {rows}, {cols}, channels) "
        "for the given scale (is `scale` the network's own scale?)")
  return result.astype(np.float32, copy=False)
