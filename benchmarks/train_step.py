"""Train-step time of jaxsr vs the same iteration in PyTorch, same machine, same run.

Both sides run Real-ESRGAN's GAN fine-tuning iteration (G: L1 + VGG19 perceptual + GAN; D: real +
fake; spectral norm; Adam; EMA) on random weights and data of the requested sizes. After each
side's first step, their steps alternate (jax, torch, jax, torch, ...; PyTorch in a process of
its own), so a shared or throttled machine slows both alike; the ratio is the median of the
per-round ratios. Also records the roofline (`benchmarks/roofline.py`): the step's FLOPs, each
side's achieved FLOP/s against the large-matmul rate measured in the same run. Prints JSON and
writes it to --out.

    python benchmarks/train_step.py                           # CPU-sized defaults
    python benchmarks/train_step.py --batch 10 --gt 256 --blocks 23 --dtype bf16   # the paper, GPU
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # For the PyTorch reference (convert/).
import report  # pylint: disable=wrong-import-position  # benchmarks/report.py
import roofline  # pylint: disable=wrong-import-position  # benchmarks/roofline.py
import torch_process  # pylint: disable=wrong-import-position  # benchmarks/torch_process.py


def jax_stepper(args, count_flops: bool = True):
  """(first step's info, run_one_step) for jaxsr, built as `python -m jaxsr.train` builds it.

  `count_flops`: also count the whole batch's FLOPs (the step traced and lowered once
  more, unsharded, for XLA's cost model) for the roofline."""
  import jax
  import jax.numpy as jnp
  import ml_collections

  from jaxsr.models import RRDBNet, UNetDiscriminatorSN, VGG19Features
  from jaxsr.models import vgg as vgg_lib
  from jaxsr.train import sharding
  from jaxsr.train import state as state_lib
  from jaxsr.train.step import make_train_step

  dtype = {"fp32": jnp.float32, "bf16": jnp.bfloat16}[args.dtype]
  g = RRDBNet(num_block=args.blocks, dtype=dtype)
  d = UNetDiscriminatorSN(dtype=dtype)
  vgg = VGG19Features(dtype=dtype, frozen=True)  # As jaxsr.train.perceptual builds it.
  rng = np.random.default_rng(0)
  lq_size = args.gt // 4
  batch = {"lq": rng.random((args.batch, lq_size, lq_size, 3), np.float32),
           "gt": rng.random((args.batch, args.gt, args.gt, 3), np.float32)}
  batch["gt_usm"] = batch["gt"]
  g_params = jax.jit(g.init)(jax.random.key(0), batch["lq"][:1])["params"]
  d_vars = jax.jit(d.init)(jax.random.key(1), batch["gt"][:1])
  vgg_vars = jax.jit(VGG19Features(dtype=dtype).init)(jax.random.key(2), batch["gt"][:1])
  vgg_vars = vgg_lib.with_backward_kernels(vgg_vars)
  opt = ml_collections.ConfigDict(dict(lr=1e-4, b1=0.9, b2=0.99, eps=1e-8))
  g_tx, d_tx = state_lib.adam(opt), state_lib.adam(opt)
  loss = ml_collections.ConfigDict(dict(
      pixel_weight=1.0, perceptual_weight=1.0, gan_weight=0.1, ema_decay=0.999,
      perceptual_layer_weights={"conv1_2": 0.1, "conv2_2": 0.1, "conv3_4": 1.0, "conv4_4": 1.0,
                                "conv5_4": 1.0}, d_warmup_steps=0))
  mesh = sharding.make_mesh()
  features = lambda p, x, grad_rows=None: vgg.apply(p, x, grad_rows)
  step = sharding.jit_data_parallel(
      make_train_step(g, d, features, loss, g_tx, d_tx, axis_name=sharding.DATA_AXIS), mesh)
  state = state_lib.create(g_params, d_vars, g_tx, d_tx)
  # The whole batch's FLOPs: the same step unsharded, by XLA's cost model.
  flops = roofline.xla_flops(make_train_step(g, d, features, loss, g_tx, d_tx),
                             *roofline.shape_structs((state, batch, vgg_vars))) \
      if count_flops else None
  state = jax.device_put(state, sharding.replicated(mesh))
  vgg_vars = jax.device_put(vgg_vars, sharding.replicated(mesh))
  batch = sharding.global_batch(batch, sharding.batch_sharded(mesh))

  holder = {"state": state}

  def one():
    holder["state"], metrics = step(holder["state"], batch, vgg_vars)
    jax.block_until_ready(metrics)

  first = timed(one)
  return {"device": str(jax.devices()[0].device_kind), "devices": jax.device_count(),
          "compile_and_first_step_s": first, "flops": flops}, one


def timed(fn) -> float:
  start = time.perf_counter()
  fn()
  return time.perf_counter() - start


def torch_stepper(args):
  """(first step's info, run_one_step) for the PyTorch reference iteration."""
  import torch

  from convert import torch_networks as tn
  from convert import torch_training

  device = "cuda" if torch.cuda.is_available() else "cpu"
  torch.manual_seed(0)
  net_g = tn.RRDBNet(num_block=args.blocks).to(device)
  net_d = tn.UNetDiscriminatorSN().to(device)
  vgg = tn.VGG19().to(device).eval()
  for p in vgg.parameters():
    p.requires_grad = False
  ema = tn.RRDBNet(num_block=args.blocks).to(device)
  opt_g, opt_d = torch_training.make_optimizers(net_g, net_d)
  lq = torch.rand(args.batch, 3, args.gt // 4, args.gt // 4, device=device)
  gt = torch.rand(args.batch, 3, args.gt, args.gt, device=device)
  amp = torch.autocast(device, dtype=torch.float16) if (device == "cuda" and args.dtype == "bf16") \
      else torch.autocast(device, enabled=False)

  def one():
    with amp:
      torch_training.realesrgan_step(net_g, net_d, vgg, opt_g, opt_d, (lq, gt, gt), ema=ema)
    if device == "cuda":
      torch.cuda.synchronize()

  first = timed(one)
  return {"device": device, "threads": torch.get_num_threads(), "first_step_s": first,
          "precision": "fp16 autocast" if device == "cuda" and args.dtype == "bf16" else "fp32"}, one


def torch_side(args):
  """The PyTorch side's (info, commands), built in its own process: "step" runs one timed step,
  "matmul" measures PyTorch's matmul rate on the device and in the precision its step ran in."""
  import torch  # pylint: disable=import-outside-toplevel

  info, step = torch_stepper(args)
  dtype = torch.float16 if info["precision"].startswith("fp16") else torch.float32
  return info, {"step": lambda: timed(step),
                "matmul": lambda: roofline.torch_matmul_flops_per_s(info["device"], dtype)}


def interleaved(args) -> dict:
  """Both sides' first steps, then `args.steps` rounds of one jax step and one torch step.

  PyTorch runs in a process of its own (`benchmarks/torch_process.py`), as its users run it. The
  rounds still alternate, so the machine's noise reaches both sides alike.
  """
  with torch_process.TorchProcess(torch_side, args) as torch_steps:
    torch_info = torch_steps.info  # Built (and its first step run) before JAX's side starts.
    jax_info, jax_step = jax_stepper(args)
    jax_times, torch_times = [], []
    for _ in range(args.steps):
      jax_times.append(timed(jax_step))
      torch_times.append(torch_steps("step"))
    matmul = {"jaxsr": roofline.jax_matmul_flops_per_s(args.dtype),
              "pytorch": torch_steps("matmul")}
  ratios = [j / t for j, t in zip(jax_times, torch_times)]
  flops = jax_info.pop("flops")
  # The fp32 arithmetic peak of the cores (a CPU run in fp32 only).
  fma_peak = roofline.cpu_fma_peak_flops_per_s() \
      if torch_info["device"] == "cpu" and args.dtype == "fp32" else None
  return {"jax": jax_info | {"step_s": float(np.median(jax_times)), "step_s_all": jax_times},
          "torch": torch_info | {"step_s": float(np.median(torch_times)),
                                 "step_s_all": torch_times},
          "jax_time_over_torch_time": float(np.median(ratios)),
          "per_round_jax_time_over_torch_time": ratios,
          "roofline": roofline.summary(
              flops, {"jaxsr": float(np.median(jax_times)), "pytorch": float(np.median(torch_times))},
              matmul, jax_info["device"], fma_peak)}


def add_step_arguments(parser: argparse.ArgumentParser) -> None:
  """The options that size the step (`jax_stepper` reads them; `step_profile.py` shares them)."""
  parser.add_argument("--batch", type=int, default=2)
  parser.add_argument("--gt", type=int, default=64, help="GT crop size (LR is gt / 4)")
  parser.add_argument("--blocks", type=int, default=23, help="RRDB blocks (23 = x4plus)")
  parser.add_argument("--dtype", default="fp32", choices=("fp32", "bf16"))


def main():
  parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
  add_step_arguments(parser)
  parser.add_argument("--steps", type=int, default=7,
                      help="timed rounds (one step of each side) after the first steps")
  parser.add_argument("--one-cpu-device", action="store_true",
                      help="one CPU device for JAX (default: one per core, as the trainer does)")
  parser.add_argument("--out", type=Path, default=Path("benchmarks/results/train_step_cpu.json"))
  args = parser.parse_args()
  if not args.one_cpu_device:
    from jaxsr.train import sharding  # pylint: disable=import-outside-toplevel

    sharding.use_cpu_cores(args.batch)  # What `python -m jaxsr.train` does before JAX starts.

  result = {"config": vars(args) | {"out": str(args.out)}, "host": report.host_info(),
            **interleaved(args)}
  report.write_result(result, args.out)


if __name__ == "__main__":
  main()
