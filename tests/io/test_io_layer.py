"""jaxsr.io is the bottom layer: it imports no other jaxsr package, and only at module level."""

import ast
import pathlib

import jaxsr.io

IO_DIR = pathlib.Path(jaxsr.io.__file__).parent


def jaxsr_imports(tree: ast.AST):
  for node in ast.walk(tree):
    if isinstance(node, ast.Import):
      names = [alias.name for alias in node.names]
    elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
      names = [node.module + "." + alias.name for alias in node.names]
    else:
      continue
    for name in names:
      if name == "jaxsr" or name.startswith("jaxsr."):
        yield node, name


def test_io_imports_only_itself_at_module_level():
  files = sorted(IO_DIR.glob("*.py"))
  assert {f.name for f in files} >= {"image.py", "raster.py", "dicom.py", "png.py", "tiff.py",
                                     "atomic.py", "listing.py", "files.py", "formats.py"}
  for file in files:
    tree = ast.parse(file.read_text())
    top_level = {id(node) for node in tree.body}
    for node, name in jaxsr_imports(tree):
      assert name.startswith("jaxsr.io."), f"{file.name} imports {name}"
      assert id(node) in top_level, f"{file.name} imports {name} inside a function"


def test_the_old_readers_are_gone():
  root = IO_DIR.parent
  assert not (root / "infer" / "imageio.py").exists()
  for file in root.rglob("*.py"):
    text = file.read_text()
    assert "infer.imageio" not in text and "infer import imageio" not in text, file
