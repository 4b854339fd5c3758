"""Flax networks: the RRDBNet generator, the U-Net discriminator and the VGG19 feature extractor."""

from jaxsr.models.discriminator import SPECTRAL_COLLECTION, UNetDiscriminatorSN
from jaxsr.models.rrdbnet import RRDBNet
from jaxsr.models.vgg import PERCEPTUAL_LAYERS, VGG19Features

__all__ = ["RRDBNet", "UNetDiscriminatorSN", "VGG19Features", "SPECTRAL_COLLECTION",
           "PERCEPTUAL_LAYERS"]
