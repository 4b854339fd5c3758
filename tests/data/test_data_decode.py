"""jaxsr.data.decode: training's conventions for decoded samples (decoding: tests/io)."""

import numpy as np

from jaxsr.data import decode


def test_to_float_rgb_divides_by_the_container_range_and_repeats_gray():
  gray8 = np.array([[[0], [51], [255]]], np.uint8)
  rgba16 = np.array([[[65535, 0, 32768, 7]]], np.uint16)
  out8 = decode.to_float_rgb(gray8)
  assert out8.shape == (1, 3, 3) and out8.dtype == np.float32
  np.testing.assert_array_equal(out8[..., 1], np.float32([[0.0, 0.2, 1.0]]))
  np.testing.assert_array_equal(out8[..., 0], out8[..., 2])
  np.testing.assert_array_equal(
      decode.to_float_rgb(rgba16), np.float32([[[1.0, 0.0, 32768 / 65535]]]))


def test_drop_alpha_and_bit_depth():
  la = np.zeros((2, 3, 2), np.uint16)
  rgba = np.zeros((2, 3, 4), np.uint8)
  assert decode.drop_alpha(la).shape == (2, 3, 1) and decode.drop_alpha(rgba).shape == (2, 3, 3)
  assert decode.bit_depth(rgba) == 8 and decode.bit_depth(la) == 16
