"""Inference: image I/O, tiling, the devices tiles are split over, and the Upscaler."""
