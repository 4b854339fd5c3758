"""Inference: image I/O, tiling and the Upscaler."""
