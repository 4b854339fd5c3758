"""One way to write a file so that it appears complete or not at all: `atomic_write`."""

from __future__ import annotations

import os
import uuid
from pathlib import Path
from typing import Any, BinaryIO, Callable


def atomic_write(path: str | os.PathLike, write: Callable[[BinaryIO], Any]) -> Path:
  """Calls `write(f)` on a new temporary file next to `path`, then renames it over `path`.

  * The temporary file is in the target's folder (created if missing), so the rename is atomic:
    `path` is either its old self or the complete new file, never a partial one.
  * Its bytes are flushed and fsync'ed before the rename, so a crash cannot leave an empty file
    in the new name.
  * It is created like any new file (mode 0666 less the umask: 0644 under the usual umask 022),
    not private like a `tempfile.mkstemp` file (0600), and never reuses an existing name.
  * If anything fails (in `write`, the fsync or the rename), the temporary file is removed and
    the exception propagates; a previous `path` is left as it was.

  Returns `path` as an absolute Path.
  """
  path = Path(path).absolute()
  path.parent.mkdir(parents=True, exist_ok=True)
  temporary = path.with_name(f".{path.name}.{uuid.uuid4().hex}.partial")
  try:
    # "x": create, never reuse (O_EXCL); mode 0o666 reduced by the umask like any new file's.
    with open(temporary, "xb") as f:
      write(f)
      f.flush()
      os.fsync(f.fileno())
    os.replace(temporary, path)
  except BaseException:
    temporary.unlink(missing_ok=True)
    raise
  return path
