"""Fixed-size ground-truth windows cut from images of any size (TensorFlow, stateless).

The original (BasicSR's RealESRGANDataset) pads an image that is smaller than 400 px at the bottom
and right with OpenCV's BORDER_REFLECT_101 and then takes a random 400x400 crop. We do the same,
but gather only the window's rows and columns through a reflect-101 index map instead of padding
the whole image, and draw the position from a stateless seed so the stream is reproducible.
"""

from __future__ import annotations

import tensorflow as tf


def reflect101_indices(positions: tf.Tensor, length: tf.Tensor) -> tf.Tensor:
  """Source indices of `positions` (>= 0) on an axis of `length` extended by reflect-101.

  Reflect-101 mirrors about the edge sample without repeating it (`a b c | b a`); repeated
  reflections make it periodic with period `2 * (length - 1)`, which is what OpenCV's
  BORDER_REFLECT_101 and `np.pad(mode="reflect")` give for pads longer than the axis.

  Args:
    positions: int32 positions on the extended axis.
    length: int32 length of the real axis.

  Returns:
    int32 indices in `[0, length)`.
  """
  period = tf.maximum(2 * (length - 1), 1)  # A 1-pixel axis reflects onto itself.
  phase = positions % period
  return tf.where(phase < length, phase, period - phase)


def window_at(image: tf.Tensor, top: tf.Tensor, left: tf.Tensor, size: int) -> tf.Tensor:
  """The `size`x`size` window at (`top`, `left`) of `image` reflect-101-extended down and right."""
  height, width = tf.shape(image)[0], tf.shape(image)[1]
  rows = reflect101_indices(top + tf.range(size), height)
  cols = reflect101_indices(left + tf.range(size), width)
  window = tf.gather(tf.gather(image, rows, axis=0), cols, axis=1)
  return tf.ensure_shape(window, [size, size, None])


def random_window(image: tf.Tensor, size: int, seed: tf.Tensor) -> tf.Tensor:
  """A uniformly placed `size`x`size` window; images smaller than `size` are padded first.

  Args:
    image: `[H, W, C]` of any dtype.
    size: window side (400 in the original recipe).
    seed: shape-[2] integer seed of the stateless RNG.

  Returns:
    `[size, size, C]`, same dtype as `image`.
  """
  height, width = tf.shape(image)[0], tf.shape(image)[1]
  # Padding only brings an axis up to `size`, so the choice is over max(H, size) - size + 1 rows.
  row_seed, col_seed = tf.unstack(tf.random.experimental.stateless_split(seed, 2))
  top = tf.random.stateless_uniform(
      [], row_seed, minval=0, maxval=tf.maximum(height, size) - size + 1, dtype=tf.int32)
  left = tf.random.stateless_uniform(
      [], col_seed, minval=0, maxval=tf.maximum(width, size) - size + 1, dtype=tf.int32)
  return window_at(image, top, left, size)


def to_float_rgb(image: tf.Tensor) -> tf.Tensor:
  """uint8/uint16 `[H, W, 1 or 3]` -> float32 RGB in [0, 1]; 16-bit is divided by 65535.

  float32 holds every uint16 value exactly, so no precision is lost; gray is repeated to three
  channels because the networks are RGB.
  """
  full_scale = float(image.dtype.max)
  image = tf.cast(image, tf.float32) / full_scale
  rgb = tf.broadcast_to(image, tf.concat([tf.shape(image)[:-1], [3]], axis=0))
  rgb.set_shape(image.shape[:-1].concatenate([3]))
  return rgb
