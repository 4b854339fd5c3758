"""The PyTorch side of a benchmark, in a process of its own, answering named commands.

Both frameworks keep large caches (PyTorch's allocator and OpenMP pool, XLA's buffers and thread
pools). In one shared process each side's times depend on the other's: JAX's first train steps
often took 2-3x its steady time there, never when alone. So the PyTorch side runs as its users
run it, in a spawned process (it starts clean, and CUDA may be initialised there), while the
benchmark alternates rounds between the two through a pipe.

    with TorchProcess(build, args) as torch_side:   # build(args) -> (info, {name: function})
      torch_side.info                               # what build reported
      seconds = torch_side("step")                  # commands[name](*arguments), in the child

`build` and its arguments are pickled, so `build` must be a module-level function (one in the
benchmark script itself is fine: the spawned child imports the script as `__mp_main__`).
"""

from __future__ import annotations

import multiprocessing
import traceback
from typing import Any, Callable


class TorchProcessError(RuntimeError):
  """The PyTorch process failed; the message carries its traceback."""


def _serve(build: Callable, arguments: tuple, connection) -> None:
  """The child: builds, reports `info`, then answers (name, arguments) until None arrives."""
  try:
    info, commands = build(*arguments)
    connection.send(("ok", info))
    while (message := connection.recv()) is not None:
      name, command_arguments = message
      connection.send(("ok", commands[name](*command_arguments)))
  except Exception:  # pylint: disable=broad-except  # Sent to the parent, which raises it.
    connection.send(("error", traceback.format_exc()))


class TorchProcess:
  """A spawned process that runs `build(*arguments)`, then the commands it returned."""

  def __init__(self, build: Callable, *arguments):
    context = multiprocessing.get_context("spawn")
    self._connection, child_end = context.Pipe()
    self._process = context.Process(target=_serve, args=(build, arguments, child_end),
                                    daemon=True)
    self._process.start()
    child_end.close()  # So a child that dies makes recv() raise instead of waiting forever.
    try:
      self.info = self._receive()
    except TorchProcessError:
      self.close()
      raise

  def _receive(self) -> Any:
    try:
      status, value = self._connection.recv()
    except EOFError as error:
      raise TorchProcessError(
          f"the PyTorch process exited (code {self._process.exitcode}) without answering"
      ) from error
    if status == "error":
      raise TorchProcessError("the PyTorch process failed:\n" + value)
    return value

  def __call__(self, name: str, *arguments) -> Any:
    self._connection.send((name, arguments))
    return self._receive()

  def close(self) -> None:
    if self._process.is_alive():
      try:
        self._connection.send(None)
      except (BrokenPipeError, OSError):
        pass
      self._process.join(timeout=30)
    if self._process.is_alive():
      self._process.kill()
    self._connection.close()

  def __enter__(self) -> "TorchProcess":
    return self

  def __exit__(self, *exception) -> None:
    self.close()
