"""jaxsr.io.atomic_write, and the writers that use it: complete or absent, 0644, no leftovers."""

import json
import os
import stat

import numpy as np
import pytest

from jaxsr import io as jio
from jaxsr.convert import torch_files
from jaxsr.evaluate import figures
from jaxsr.evaluate import journal
from jaxsr.train import run_record


@pytest.fixture
def umask_022():
  previous = os.umask(0o022)
  yield
  os.umask(previous)


def mode(path) -> int:
  return stat.S_IMODE(os.stat(path).st_mode)


@pytest.mark.parametrize("umask,expected", [(0o022, 0o644), (0o027, 0o640), (0o002, 0o664)])
def test_new_files_get_0666_less_the_umask(tmp_path, umask, expected):
  previous = os.umask(umask)
  try:
    written = jio.atomic_write(tmp_path / "sub" / "out.bin", lambda f: f.write(b"data"))
  finally:
    os.umask(previous)
  assert written == tmp_path / "sub" / "out.bin"
  assert written.read_bytes() == b"data" and mode(written) == expected
  assert os.listdir(tmp_path / "sub") == ["out.bin"]


class Interrupted(BaseException):
  pass


@pytest.mark.parametrize("error", [OSError(28, "No space left on device"), Interrupted()])
def test_a_failure_mid_write_keeps_the_old_file_and_leaves_no_temporary(tmp_path, error):
  target = tmp_path / "model.pth"
  target.write_bytes(b"previous")

  def half_then_fail(f):
    f.write(b"half of the new file")
    raise error

  with pytest.raises(type(error)):
    jio.atomic_write(target, half_then_fail)
  assert os.listdir(tmp_path) == ["model.pth"] and target.read_bytes() == b"previous"
  with pytest.raises(type(error)):
    jio.atomic_write(tmp_path / "new.pth", half_then_fail)
  assert os.listdir(tmp_path) == ["model.pth"]


def test_a_failed_rename_leaves_no_temporary(tmp_path, monkeypatch):
  (tmp_path / "out.json").write_text("{}")

  def refuse(source, target):
    raise PermissionError(13, "Permission denied")

  monkeypatch.setattr(os, "replace", refuse)
  with pytest.raises(PermissionError):
    jio.atomic_write(tmp_path / "out.json", lambda f: f.write(b"[1]"))
  assert os.listdir(tmp_path) == ["out.json"] and (tmp_path / "out.json").read_text() == "{}"


def test_model_exports_run_records_and_journal_figures_are_atomic_and_0644(tmp_path, umask_022,
                                                                          monkeypatch):
  state = {"conv_first.weight": np.ones((2, 3), np.float32)}
  safetensors = torch_files.write_safetensors(tmp_path / "x.safetensors", state)
  assert mode(safetensors) == 0o644
  import torch  # noqa: F401  (required: fails loudly if missing)
  pth = torch_files.write_state_dict(tmp_path / "x.pth", state, "params_ema")
  assert mode(pth) == 0o644  # Was 0600 (a tempfile.mkstemp file) before jaxsr.io.atomic_write.
  np.testing.assert_array_equal(torch_files.read_state_dict(pth)[0]["conv_first.weight"],
                                state["conv_first.weight"])

  run_json = tmp_path / "run.json"
  run_record._write(run_json, {"a": 1})  # pylint: disable=protected-access
  assert json.loads(run_json.read_text()) == {"a": 1} and mode(run_json) == 0o644

  record = journal.Journal(str(tmp_path / "eval"), {"x": 1})
  row = figures.ComparisonRow(name="im", lr=np.zeros((2, 2, 3), np.float32),
                              gt=np.ones((4, 4, 3), np.float32), region=None,
                              outputs={"m": np.zeros((4, 4, 3), np.float32)}, captions={})
  record.record("im", [{"psnr": 1.0}], row, 0)
  np.testing.assert_array_equal(record.figure_row(0).gt, row.gt)
  figure = tmp_path / "eval" / journal.DIRECTORY / "figure_0.npz"
  assert mode(figure) == 0o644
  # A failed figure write leaves the previous one and nothing else.
  monkeypatch.setattr(os, "fsync", lambda fd: (_ for _ in ()).throw(OSError(28, "full")))
  with pytest.raises(OSError, match="full"):
    record.record("im2", [{"psnr": 2.0}], row, 0)
  assert sorted(os.listdir(figure.parent)) == ["figure_0.npz", "rows.jsonl"]
  np.testing.assert_array_equal(record.figure_row(0).gt, row.gt)
