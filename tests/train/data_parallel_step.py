"""One train step of tiny networks on a given device layout; writes the resulting state to .npz.

Run by test_data_parallel.py in subprocesses (the device count is fixed at JAX start-up):
  python data_parallel_step.py --out F [--devices N]                       one process
  python data_parallel_step.py --out F --process_id I --num_processes 2 --port P   one of two hosts
"""

import argparse

import jax
import ml_collections
import numpy as np

GLOBAL_BATCH = 4


def main():
  parser = argparse.ArgumentParser()
  parser.add_argument("--out", required=True)
  parser.add_argument("--devices", type=int, default=None, help="use only the first N devices")
  parser.add_argument("--process_id", type=int, default=None)
  parser.add_argument("--num_processes", type=int, default=1)
  parser.add_argument("--port", type=int, default=0)
  args = parser.parse_args()

  from jaxsr.train import sharding
  if args.process_id is not None:
    sharding.initialize_distributed(f"localhost:{args.port}", args.num_processes, args.process_id)

  from jaxsr.models import RRDBNet, UNetDiscriminatorSN
  from jaxsr.train import state as state_lib
  from jaxsr.train.step import make_train_step

  generator = RRDBNet(num_feat=8, num_block=1, num_grow_ch=4)
  discriminator = UNetDiscriminatorSN(num_feat=8)
  rng = np.random.default_rng(0)
  batch = {"lq": rng.random((GLOBAL_BATCH, 8, 8, 3), np.float32),
           "gt": rng.random((GLOBAL_BATCH, 32, 32, 3), np.float32)}
  batch["gt_usm"] = np.clip(batch["gt"] * 1.1, 0, 1).astype(np.float32)
  g_params = generator.init(jax.random.key(1), batch["lq"][:1])["params"]
  d_vars = discriminator.init(jax.random.key(2), batch["gt"][:1])
  opt = ml_collections.ConfigDict(dict(lr=1e-4, b1=0.9, b2=0.99, eps=1e-8))
  g_tx, d_tx = state_lib.adam(opt), state_lib.adam(opt)
  loss = ml_collections.ConfigDict(dict(pixel_weight=1.0, perceptual_weight=1.0, gan_weight=0.1,
                                        ema_decay=0.999, perceptual_layer_weights={},
                                        d_warmup_steps=0))
  devices = jax.devices()[: args.devices] if args.devices else jax.devices()
  mesh = sharding.make_mesh(devices)
  step = sharding.jit_data_parallel(
      make_train_step(generator, discriminator, None, loss, g_tx, d_tx,
                      axis_name=sharding.DATA_AXIS), mesh)
  state = jax.device_put(state_lib.create(g_params, d_vars, g_tx, d_tx), sharding.replicated(mesh))
  # Each host passes only its own rows, as the input pipeline delivers them.
  per_host = GLOBAL_BATCH // jax.process_count()
  rows = slice(jax.process_index() * per_host, (jax.process_index() + 1) * per_host)
  local = {k: v[rows] for k, v in batch.items()}
  state, metrics = step(state, sharding.global_batch(local, sharding.batch_sharded(mesh)), None)
  flat = {f"{i}": np.asarray(jax.device_get(x)) for i, x in enumerate(jax.tree.leaves(state))}
  flat.update({f"metric/{k}": np.asarray(v) for k, v in jax.device_get(metrics).items()})
  flat["devices"] = np.array(mesh.devices.size)
  if jax.process_index() == 0:
    np.savez(args.out, **flat)


if __name__ == "__main__":
  main()
