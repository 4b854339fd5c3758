"""jaxsr.data.window: windows equal NumPy slices of `np.pad(mode="reflect")` (reflect-101)."""

import numpy as np
import pytest
import tensorflow as tf

from jaxsr.data import window


def _padded(image: np.ndarray, size: int) -> np.ndarray:
  """The original's padding: bottom/right only, up to `size`, BORDER_REFLECT_101."""
  pad_h, pad_w = max(0, size - image.shape[0]), max(0, size - image.shape[1])
  return np.pad(image, ((0, pad_h), (0, pad_w), (0, 0)), mode="reflect")


@pytest.mark.parametrize("height,width", [(30, 40), (1, 7), (5, 2), (64, 64), (100, 45)])
def test_window_at_matches_numpy_reflect_padding(height, width):
  size = 64
  image = np.arange(height * width * 2, dtype=np.int32).reshape(height, width, 2)
  padded = _padded(image, size)
  for top in sorted({0, padded.shape[0] - size, (padded.shape[0] - size) // 2}):
    for left in sorted({0, padded.shape[1] - size, (padded.shape[1] - size) // 3}):
      got = window.window_at(tf.constant(image), top, left, size).numpy()
      np.testing.assert_array_equal(got, padded[top:top + size, left:left + size])


def test_reflect101_indices_repeat_with_period_2n_minus_2():
  got = window.reflect101_indices(tf.range(15), 4).numpy()
  np.testing.assert_array_equal(got, [0, 1, 2, 3, 2, 1, 0, 1, 2, 3, 2, 1, 0, 1, 2])


def _window_offset(window_array: np.ndarray, padded: np.ndarray, size: int) -> tuple[int, int]:
  matches = [(t, l) for t in range(padded.shape[0] - size + 1)
             for l in range(padded.shape[1] - size + 1)
             if np.array_equal(padded[t:t + size, l:l + size], window_array)]
  assert len(matches) == 1, "the window must be exactly one slice of the padded image"
  return matches[0]


def test_random_window_is_a_seeded_uniform_slice_of_the_padded_image():
  size = 16
  # Unique values, so a window identifies its offset. 20 rows -> 5 offsets; 10 columns -> padded.
  image = np.arange(20 * 10, dtype=np.int32).reshape(20, 10, 1)
  padded = _padded(image, size)
  offsets = []
  for s in range(200):
    got = window.random_window(tf.constant(image), size, tf.constant([7, s])).numpy()
    offsets.append(_window_offset(got, padded, size))
  tops = [t for t, _ in offsets]
  assert {l for _, l in offsets} == {0}  # the padded width is exactly the window
  assert set(tops) == set(range(5))
  # Uniform over 5 offsets: each about 40 of 200 (binomial sd ~5.7).
  assert all(20 <= tops.count(t) <= 60 for t in range(5))
  again = window.random_window(tf.constant(image), size, tf.constant([7, 3])).numpy()
  np.testing.assert_array_equal(again, padded[tops[3]:tops[3] + size, :size])


def test_to_float_rgb_is_exact_and_repeats_gray():
  gray = np.array([[[0], [1], [257], [65535]]], np.uint16)
  rgb = window.to_float_rgb(tf.constant(gray)).numpy()
  assert rgb.shape == (1, 4, 3) and rgb.dtype == np.float32
  expected = (gray[..., 0].astype(np.float64) / 65535).astype(np.float32)
  for c in range(3):
    np.testing.assert_array_equal(rgb[..., c], expected)
  colour = np.array([[[0, 128, 255]]], np.uint8)
  np.testing.assert_array_equal(window.to_float_rgb(tf.constant(colour)).numpy(),
                                np.float32([[[0.0, 128 / 255, 1.0]]]))
