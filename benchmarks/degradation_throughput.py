"""Throughput of the degradation: GT 400 -> (GT 256, LR 64) training pairs per second on CPU.

  python benchmarks/degradation_throughput.py [--samples 200] [--out benchmarks/results/degradation.json]

Runs the tf.data pipeline the trainer uses (map(degrade) with parallel calls, batch 10,
prefetch) twice: on one core (a private tf.data thread pool of 1 thread, intra-op parallelism 1,
one call at a time) and on all cores (AUTOTUNE). Inputs are 8 synthetic 400x400 images cycled,
so no file decoding is measured. Prints JSON and writes it to --out. There is no PyTorch ratio:
the original's degradation (BasicSR) is not a dependency of this project.

For scale: training at batch 10 needs 10 pairs per step; the paper's GPU ran ~2.8 s per step.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import tensorflow as tf

from jaxsr import degradation

import report  # benchmarks/report.py, beside this script.

BATCH = 10
NUM_IMAGES = 8


def synthetic_images(size: int = 400) -> np.ndarray:
  """Images with structure at several scales (flat, edges, texture), as GT crops have."""
  rng = np.random.default_rng(0)
  rows, cols = np.mgrid[0:size, 0:size] / size
  images = []
  for _ in range(NUM_IMAGES):
    phase = rng.random(3) * 6
    smooth = 0.5 + 0.3 * np.sin(8 * rows[..., None] + phase) * np.cos(5 * cols[..., None] + phase)
    texture = 0.1 * rng.standard_normal((size, size, 3))
    images.append(np.clip(smooth + texture, 0, 1))
  return np.stack(images).astype(np.float32)


def make_dataset(images: np.ndarray, single_core: bool) -> tf.data.Dataset:
  config = degradation.default_config()
  run_seed = tf.constant([0, 0], tf.int64)
  images = tf.constant(images)

  def make_example(index):
    gt = images[index % NUM_IMAGES]
    return degradation.degrade(gt, tf.random.experimental.stateless_fold_in(run_seed, index),
                               config)

  parallel_calls = 1 if single_core else tf.data.AUTOTUNE
  dataset = (tf.data.Dataset.range(10**9)
             .map(make_example, num_parallel_calls=parallel_calls, deterministic=True)
             .batch(BATCH, drop_remainder=True)
             .prefetch(2 if single_core else tf.data.AUTOTUNE))
  if single_core:
    options = tf.data.Options()
    options.threading.private_threadpool_size = 1
    options.threading.max_intra_op_parallelism = 1
    dataset = dataset.with_options(options)
  return dataset


def measure(dataset: tf.data.Dataset, samples: int, warmup_batches: int = 3) -> dict:
  iterator = iter(dataset)
  for _ in range(warmup_batches):  # tracing, graph optimisation, autotuning
    next(iterator)
  batches = max(1, samples // BATCH)
  start = time.perf_counter()
  for _ in range(batches):
    batch = next(iterator)
  batch["lq"].numpy()
  seconds = time.perf_counter() - start
  return {"samples": batches * BATCH, "seconds": round(seconds, 3),
          "samples_per_s": round(batches * BATCH / seconds, 2),
          "ms_per_sample": round(1000 * seconds / (batches * BATCH), 1)}



def main() -> None:
  parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  parser.add_argument("--samples", type=int, default=200, help="timed samples per setting")
  parser.add_argument("--out", type=Path, default=Path("benchmarks/results/degradation.json"))
  args = parser.parse_args()

  images = synthetic_images()
  result = {
      "benchmark": "degradation_throughput",
      "pipeline": "GT 400x400 -> lq 64x64 + gt/gt_usm 256x256, scale 4, batch 10",
      "host": report.host_info(tensorflow=tf.__version__),
      "one_core": measure(make_dataset(images, single_core=True), args.samples),
      "all_cores": measure(make_dataset(images, single_core=False), args.samples),
  }
  result["all_cores_speedup"] = round(result["all_cores"]["samples_per_s"]
                                      / result["one_core"]["samples_per_s"], 2)
  report.write_result(result, args.out)


if __name__ == "__main__":
  main()
