"""Flax networks: the generators (RRDBNet, SRVGGNetCompact), the U-Net discriminator and the
VGG19 feature extractor."""

from jaxsr.models.discriminator import SPECTRAL_COLLECTION, UNetDiscriminatorSN
from jaxsr.models.generators import (GENERATORS, GeneratorArchError, arch_of, build_generator,
                                     for_inference, generator_type)
from jaxsr.models.rrdbnet import RRDBNet
from jaxsr.models.srvgg import SRVGGNetCompact
from jaxsr.models.vgg import PERCEPTUAL_LAYERS, VGG19Features

__all__ = ["RRDBNet", "SRVGGNetCompact", "UNetDiscriminatorSN", "VGG19Features",
           "SPECTRAL_COLLECTION", "PERCEPTUAL_LAYERS", "GENERATORS", "GeneratorArchError",
           "arch_of", "build_generator", "for_inference", "generator_type"]
