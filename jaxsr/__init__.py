"""jaxsr: Real-ESRGAN fine-tuning for medical image super-resolution, in JAX/Flax."""

__version__ = "0.1.0"
