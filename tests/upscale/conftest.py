"""Small random generators (PyTorch reference nets and their converted directories), shared."""

import pytest

from tests.upscale import reference


@pytest.fixture(scope="session")
def models(tmp_path_factory):
  """(nets, dirs): x4 and x2 RRDBNets (1 block, 16 features) and a discriminator directory."""
  root = tmp_path_factory.mktemp("models")
  nets, dirs = {}, {}
  for scale in (4, 2):
    nets[scale], dirs[scale] = reference.small_generator(root, scale, seed=scale)
  dirs["D"] = reference.small_discriminator(root)
  return nets, dirs
