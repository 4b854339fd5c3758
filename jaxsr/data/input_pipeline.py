"""The training input pipeline: GT images -> (lq, gt, gt_usm) batches for one host.

The stream is a pure function of the seed, so that every host, every restart and every
`num_parallel_calls` sees the same data:

* Epoch `e` visits the source's `N` images in the order of a stateless shuffle keyed by
  (seed, e). Epochs are concatenated into one endless stream of global positions
  `p = e * N + i`; global batch `s` is positions `[s * G, (s + 1) * G)` (G the global batch
  size), so a batch may straddle two epochs, as with `repeat().batch()`.
* Host `h` of `P` takes rows `[h * G/P, (h + 1) * G/P)` of every global batch: the hosts read
  disjoint images, and the global batch is the same for any number of hosts.
* Image `k` in epoch `e` gets the seed `fold_in(fold_in(fold_in(seed, 1), e), k)`, split into a
  seed for its random GT window and one for its degradation (flip, USM, blur, noise, JPEG, crop).
* Resuming at step `s` starts the index stream at position `s * G` (epoch and offset are computed,
  nothing before them is read or decoded) and gives exactly the batches of an uninterrupted run.
"""

from __future__ import annotations

import atexit
import threading
import time
from typing import Callable
import weakref

import ml_collections
import tensorflow as tf

from jaxsr.data import source as source_lib
from jaxsr.data import source_specs
from jaxsr.data import window
from jaxsr.degradation import config as degradation_config
from jaxsr.degradation import pipeline as degradation

DegradeFn = Callable[[tf.Tensor, tf.Tensor, ml_collections.ConfigDict], dict[str, tf.Tensor]]

# Purposes folded into the root seed, so the shuffle and the per-image draws never share a key.
_SHUFFLE_STREAM = 0
_EXAMPLE_STREAM = 1


def default_config() -> ml_collections.ConfigDict:
  """Options of the input pipeline, with the degradation options under `degradation`."""
  config = ml_collections.ConfigDict()
  # Side of the random GT window cut from every image (the original's hard-coded 400); smaller
  # images are reflect-101 padded at the bottom and right first. Must be >= degradation.gt_size.
  config.window_size = 400
  # Replace unreadable images by the next readable one (logged and counted in `source.skipped`)
  # instead of stopping with an error that names the file.
  config.skip_corrupt = False
  # Used when `source` is given as a spec (see `source_specs.open_source`).
  config.split = "train"
  config.data_dir = ""
  config.num_parallel_calls = -1  # tf.data.AUTOTUNE
  config.prefetch_batches = 2
  config.degradation = degradation_config.default_config()
  return config


def hide_accelerators_from_tf() -> None:
  """Keeps TensorFlow off the GPUs/TPUs, which belong to JAX."""
  try:
    tf.config.set_visible_devices([], "GPU")
    tf.config.set_visible_devices([], "TPU")
  except (RuntimeError, ValueError):
    # RuntimeError: devices were already initialised; ValueError: no such device type.
    pass


class _ExitSafeReader:
  """`source.read_for_training` for `tf.numpy_function`, made safe for interpreter exit.

  tf.data keeps prefetching while a training script ends. A Python call that is still in flight
  when the interpreter finalises can never take the GIL again, and the iterator's destructor
  then waits for it forever: the process hangs after its last line. So at exit (`atexit`, while
  Python is still whole) every reader refuses new calls, which makes the pipeline fill its
  buffers with errors within milliseconds, and waits until no call is in flight.
  """

  # No call for this long: the buffers are full, nothing more will come. 0.2 s let a call slip in
  # after it on a loaded machine (the exit test's script hung 3 times in 24 runs; with 1 s, 0 in 10
  # beside a busy core).
  _QUIET_SECONDS = 1.0

  def __init__(self, source: source_lib.ImageSource, skip_corrupt: bool):
    self._source = source
    self._skip_corrupt = skip_corrupt
    self._lock = threading.Lock()
    self._closing = False
    self._in_flight = 0
    self._last_call = time.monotonic()
    _LIVE_READERS.add(self)

  def __call__(self, index):
    with self._lock:
      self._last_call = time.monotonic()
      if self._closing:
        raise RuntimeError("the interpreter is exiting; the input pipeline is closed")
      self._in_flight += 1
    try:
      return self._source.read_for_training(int(index), self._skip_corrupt)
    finally:
      with self._lock:
        self._in_flight -= 1

  def close(self, timeout: float = 30.0) -> None:
    with self._lock:
      self._closing = True
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
      with self._lock:
        quiet = time.monotonic() - self._last_call > self._QUIET_SECONDS
        if self._in_flight == 0 and quiet:
          return
      time.sleep(0.01)


_LIVE_READERS: weakref.WeakSet[_ExitSafeReader] = weakref.WeakSet()


@atexit.register
def _close_readers() -> None:
  for reader in list(_LIVE_READERS):
    reader.close()


def _root_seed(seed: int) -> tf.Tensor:
  return tf.constant([0, seed], tf.int64)


def shuffle_seed(seed: int, epoch: tf.Tensor) -> tf.Tensor:
  """The stateless seed of epoch `epoch`'s shuffle."""
  fold_in = tf.random.experimental.stateless_fold_in
  return fold_in(fold_in(_root_seed(seed), _SHUFFLE_STREAM), tf.cast(epoch, tf.int64))


def example_seed(seed: int, epoch: tf.Tensor, index: tf.Tensor) -> tf.Tensor:
  """The stateless seed of image `index` (source order) in epoch `epoch`: shape [2], int64."""
  fold_in = tf.random.experimental.stateless_fold_in
  root = fold_in(_root_seed(seed), _EXAMPLE_STREAM)
  return fold_in(fold_in(root, tf.cast(epoch, tf.int64)), tf.cast(index, tf.int64))


def example_indices(
    num_examples: int,
    *,
    seed: int,
    global_batch_size: int,
    process_index: int,
    process_count: int,
    start_step: int = 0,
) -> tf.data.Dataset:
  """This host's endless stream of `{"epoch", "index"}` (int64 scalars), from `start_step`.

  Only index tensors are made here, so skipping to a late step costs one shuffle of `N`
  integers, not reading anything.
  """
  if num_examples <= 0:
    raise ValueError(f"need at least one example, got {num_examples}")
  if global_batch_size % process_count:
    raise ValueError(
        f"global batch {global_batch_size} does not split over {process_count} processes")
  if not 0 <= process_index < process_count:
    raise ValueError(f"process_index {process_index} not in [0, {process_count})")
  per_host = global_batch_size // process_count
  start = start_step * global_batch_size  # Python int: no overflow for long runs.
  n = tf.constant(num_examples, tf.int64)

  def epoch_slice(epoch):
    order = tf.random.experimental.stateless_shuffle(
        tf.range(n, dtype=tf.int64), seed=shuffle_seed(seed, epoch))
    position = epoch * n + tf.range(n, dtype=tf.int64)
    mine = tf.logical_and(
        (position % global_batch_size) // per_host == process_index, position >= start)
    index = tf.boolean_mask(order, mine)
    return tf.data.Dataset.from_tensor_slices(
        {"epoch": tf.fill(tf.shape(index), epoch), "index": index})

  return tf.data.Dataset.counter(start // num_examples).flat_map(epoch_slice)


def make_train_dataset(
    source: source_lib.ImageSource | str,
    config: ml_collections.ConfigDict,
    *,
    seed: int,
    global_batch_size: int,
    process_index: int | None = None,
    process_count: int | None = None,
    start_step: int = 0,
    degrade_fn: DegradeFn | None = None,
) -> tf.data.Dataset:
  """Endless per-host batches `{"lq", "gt", "gt_usm"}` of float32 NHWC, from `start_step` on.

  Args:
    source: an `ImageSource`, or a spec for `source_specs.open_source` (`tfds:NAME[/CONFIG]`,
      `bundled:train`, a folder, ...), opened with `config.split` and `config.data_dir`.
    config: see `default_config()`.
    seed: the run's seed; the whole stream is a function of it.
    global_batch_size: images per step over all hosts; each host yields
      `global_batch_size // process_count`.
    process_index: this host, default `jax.process_index()`.
    process_count: hosts, default `jax.process_count()`.
    start_step: the first step to produce (a resumed run passes its restored step).
    degrade_fn: `(gt [S, S, 3] float32, seed [2] int64, config.degradation) -> {"lq", "gt",
      "gt_usm"}`, default `jaxsr.degradation.pipeline.degrade`.

  Returns:
    A `tf.data.Dataset`; `.as_numpy_iterator()` gives dicts of NumPy arrays, `lq` of shape
    `[B, gt_size // scale, gt_size // scale, 3]`, `gt` and `gt_usm` `[B, gt_size, gt_size, 3]`.
  """
  hide_accelerators_from_tf()
  if process_index is None or process_count is None:
    import jax  # pylint: disable=g-import-not-at-top

    process_index = jax.process_index() if process_index is None else process_index
    process_count = jax.process_count() if process_count is None else process_count
  if isinstance(source, str):
    source = source_specs.open_source(source, split=config.split,
                                      data_dir=config.data_dir or None)
  degrade_fn = degrade_fn or degradation.degrade
  gt_size = config.degradation.gt_size
  if config.window_size < gt_size:
    raise ValueError(f"window_size {config.window_size} is smaller than gt_size {gt_size}")

  read = _ExitSafeReader(source, bool(config.skip_corrupt))
  window_size = int(config.window_size)
  degradation_options = config.degradation

  def make_example(ids):
    image = tf.numpy_function(read, [ids["index"]], tf.uint16, stateful=False)
    image.set_shape([None, None, None])
    window_seed, degrade_seed = tf.unstack(tf.random.experimental.stateless_split(
        example_seed(seed, ids["epoch"], ids["index"]), 2))
    gt = window.to_float_rgb(window.random_window(image, window_size, window_seed))
    return degrade_fn(gt, degrade_seed, degradation_options)

  indices = example_indices(
      len(source), seed=seed, global_batch_size=global_batch_size,
      process_index=process_index, process_count=process_count, start_step=start_step)
  dataset = indices.map(make_example, num_parallel_calls=config.num_parallel_calls,
                        deterministic=True)
  dataset = dataset.batch(global_batch_size // process_count, drop_remainder=True)
  dataset = dataset.prefetch(config.prefetch_batches)
  options = tf.data.Options()
  options.deterministic = True
  # One thread per op: the parallelism is across images, and the host's cores are shared with JAX.
  options.threading.max_intra_op_parallelism = 1
  return dataset.with_options(options)
