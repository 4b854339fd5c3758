"""Stateless random draws keyed by a shape-[2] seed tensor.

Every random decision of the degradation goes through these helpers so that a sample is a pure
function of (image, seed): the same seed gives the same pair in any tf.data order and with any
number of parallel calls. Each helper consumes its seed completely; callers `split` a seed first
when they need several independent draws.
"""

from __future__ import annotations

from typing import Sequence

import tensorflow as tf


def as_seed(seed) -> tf.Tensor:
  """Checks and converts a seed to the int64 shape-[2] tensor the stateless ops take."""
  seed = tf.convert_to_tensor(seed)
  if not seed.dtype.is_integer:
    raise TypeError(f"seed must be an integer tensor, got {seed.dtype}")
  seed = tf.cast(seed, tf.int64)
  seed.shape.assert_is_compatible_with([2])
  return tf.ensure_shape(seed, [2])


def split(seed: tf.Tensor, num: int) -> list[tf.Tensor]:
  """Returns `num` independent seeds derived from `seed`."""
  return tf.unstack(tf.random.experimental.stateless_split(as_seed(seed), num=num))


def uniform(seed: tf.Tensor, low: float, high: float) -> tf.Tensor:
  """A float32 scalar from U(low, high)."""
  return tf.random.stateless_uniform([], as_seed(seed), minval=low, maxval=high)


def bernoulli(seed: tf.Tensor, prob: float) -> tf.Tensor:
  """A bool scalar that is True with probability `prob`."""
  return tf.random.stateless_uniform([], as_seed(seed)) < prob


def randint(seed: tf.Tensor, low, high) -> tf.Tensor:
  """An int32 scalar uniform over low..high, both ends included (ends may be tensors)."""
  return tf.random.stateless_uniform(
      [], as_seed(seed), minval=tf.cast(low, tf.int32), maxval=tf.cast(high, tf.int32) + 1,
      dtype=tf.int32)


def choice(seed: tf.Tensor, probs: Sequence[float]) -> tf.Tensor:
  """An int32 scalar index drawn with the given (not necessarily normalised) probabilities."""
  num = len(probs)
  probs = tf.constant(probs, tf.float32)
  edges = tf.math.cumsum(probs) / tf.reduce_sum(probs)
  u = tf.random.stateless_uniform([1], as_seed(seed))
  index = tf.searchsorted(edges, u, side="right")[0]
  # u < 1 always, but float rounding of the last edge must never yield len(probs).
  return tf.minimum(index, num - 1)
