"""Exception chains are kept: a jaxsr error raised while handling another names it as its cause
(`raise X(...) from e`), so a user's traceback shows what actually failed. Read from the source
with `ast`; `from None` is allowed only where `CAUSE_DROPPED` says why the cause is noise."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from jaxsr.convert import ncnn

PACKAGE = Path(__file__).resolve().parents[1] / "jaxsr"

CAUSE_DROPPED = {
    # The KeyError of the allow-list lookup is the refusal itself.
    ("evaluate/lpips.py", "find_class"),
}


def _dropped_causes() -> set[tuple[str, str]]:
  found = set()
  for path in PACKAGE.rglob("*.py"):
    tree = ast.parse(path.read_text(), filename=str(path))
    for function in ast.walk(tree):
      if not isinstance(function, (ast.FunctionDef, ast.AsyncFunctionDef)):
        continue
      for node in ast.walk(function):
        if (isinstance(node, ast.Raise) and isinstance(node.cause, ast.Constant)
            and node.cause.value is None):
          found.add((path.relative_to(PACKAGE).as_posix(), function.name))
  return found


def test_no_cause_is_dropped_without_a_reason():
  assert _dropped_causes() == CAUSE_DROPPED


def test_a_malformed_ncnn_file_names_the_parse_error_as_its_cause(tmp_path):
  param = tmp_path / "broken.param"
  param.write_text(f"{ncnn.NCNN_MAGIC}\nnot-a-number 3\n")
  with pytest.raises(ncnn.NcnnError, match="second line") as raised:
    ncnn._read_graph(param)  # pylint: disable=protected-access
  assert isinstance(raised.value.__cause__, ValueError)
