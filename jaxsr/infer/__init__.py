"""Inference: tiling, the devices tiles are split over, and the Upscaler (image files: jaxsr.io)."""
