"""benchmarks/torch_process.py: commands answered in another process, failures raised here."""

import os
import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))
import torch_process  # pylint: disable=wrong-import-position


def build_adder(offset):
  """Reports its process id; `add` adds `offset` to an array, `fail` raises."""

  def fail():
    raise ValueError("asked to fail")

  return {"pid": os.getpid()}, {"add": lambda x: x + offset, "fail": fail}


def build_broken():
  raise KeyError("no such weights")


def test_commands_run_in_a_child_process_and_return_their_values():
  with torch_process.TorchProcess(build_adder, 2.5) as child:
    assert child.info["pid"] != os.getpid()
    x = np.arange(6, dtype=np.float32).reshape(2, 3)
    np.testing.assert_array_equal(child("add", x), x + 2.5)
    np.testing.assert_array_equal(child("add", x), x + 2.5)  # It keeps answering.


def test_a_failing_command_raises_here_with_the_child_traceback():
  with torch_process.TorchProcess(build_adder, 0) as child:
    with pytest.raises(torch_process.TorchProcessError, match="ValueError: asked to fail"):
      child("fail")


def test_a_failing_build_raises_here():
  with pytest.raises(torch_process.TorchProcessError, match="KeyError: 'no such weights'"):
    torch_process.TorchProcess(build_broken)
