"""The fine-tuning loop: data -> jitted step on a device mesh -> logs, checkpoints, export.

Read top to bottom: build networks and state, resume if the workdir has a checkpoint, then loop.
Resuming restores the whole state (params, optimiser moments, EMA, spectral-norm vectors) and
restarts the input pipeline at the restored step, so N steps + resume + N steps gives exactly the
parameters of 2N uninterrupted steps.

Held-out validation (`jaxsr.train.validation`) scores the EMA generator on fixed crops at the
evaluation protocols' resolution, warns of intensity drift and invented texture, keeps the best
generator, and with `validation.early_stop_patience` ends the run (normally: checkpoint, export)
once the best score has stopped improving.
"""

from __future__ import annotations

import itertools
import signal
import threading
import time
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import orbax.checkpoint as ocp
import tqdm

from jaxsr.data import input_pipeline
from jaxsr.models import UNetDiscriminatorSN, arch_of, build_generator, for_inference, precision
from jaxsr.train import export as export_lib
from jaxsr.train import final_eval
from jaxsr.train import perceptual as perceptual_lib
from jaxsr.train import pretrained
from jaxsr.train import run_record
from jaxsr.train import sharding
from jaxsr.train import state as state_lib
from jaxsr.train import validation as validation_lib
from jaxsr.train.step import make_train_step

# `train`'s stopped_by when validation ended the run: a normal end (exported), not a preemption.
EARLY_STOPPING = "early stopping"


class NonFiniteLossError(RuntimeError):
  pass


class StopRequest:
  """Turns SIGTERM/SIGINT (preemption, Ctrl-C) into a flag the loop checks between steps."""

  def __init__(self):
    self.signal_name: str | None = None
    self._previous = {}

  def __enter__(self):
    if threading.current_thread() is threading.main_thread():
      for sig in (signal.SIGTERM, signal.SIGINT):
        self._previous[sig] = signal.signal(sig, self._handle)
    else:  # Python delivers signals to the main thread only.
      print("note: training runs outside the main thread, so SIGTERM/SIGINT cannot save a "
            "checkpoint first; only the periodic checkpoints protect this run")
    return self

  def _handle(self, signum, frame):
    if self.signal_name is not None:  # A second Ctrl-C: stop now, without the save.
      signal.default_int_handler(signum, frame)
    self.signal_name = signal.Signals(signum).name

  def __exit__(self, *exc):
    for sig, handler in self._previous.items():
      signal.signal(sig, handler)


def _agreed_stop(signal_name: str | None, step: int, config) -> str | None:
  """Why to stop after `step`, the same answer on every process; None to go on.

  One process acts on its signal at once. Several compare their flags at the steps that are
  multiples of `stop_check_every_steps`, all at the same step (a checkpoint save is collective),
  so a host that got the signal first waits for the next such step.
  """
  if jax.process_count() == 1:
    return signal_name
  every = max(1, config.stop_check_every_steps)
  if step % every and step != config.total_steps:
    return None
  if not sharding.any_process(signal_name is not None):
    return None
  return signal_name or "a stop signal to another process"


def _loss_config(config) -> ml_collections.ConfigDict:
  return ml_collections.ConfigDict(dict(
      pixel_weight=config.loss.pixel_weight, perceptual_weight=config.loss.perceptual_weight,
      gan_weight=config.loss.gan_weight, ema_decay=config.ema_decay,
      ema_debias=config.ema_debias,
      low_frequency_weight=config.loss.low_frequency_weight,
      low_frequency_block=config.loss.low_frequency_block,
      texture_weight=config.loss.texture_weight,
      texture_block=config.loss.texture_block,
      d_warmup_steps=config.discriminator.warmup_steps))


def _first_local_rows(batch: jax.Array) -> np.ndarray:
  """The rows of a global batch array held by this process's first device.

  A multi-host batch cannot be fetched whole; the same device holds the same rows of every
  array sharded alike (LR, SR, GT), so their summaries line up.
  """
  shard = min(batch.addressable_shards, key=lambda s: s.index[0].start or 0)
  return np.asarray(shard.data)


def _local_rows(batch: jax.Array) -> np.ndarray:
  """All rows of a batch-sharded global array that this process holds, in order."""
  shards = sorted(batch.addressable_shards, key=lambda s: s.index[0].start or 0)
  assert len({s.index[0].start for s in shards}) == len(shards), "expected a batch-sharded array"
  return np.concatenate([np.asarray(shard.data) for shard in shards])


def _image_summary(lq: np.ndarray, sr: np.ndarray, gt: np.ndarray, count: int = 3) -> np.ndarray:
  """Rows of LR (nearest, GT size) | SR (EMA) | GT, for TensorBoard."""
  scale = gt.shape[1] // lq.shape[1]
  lq_up = np.repeat(np.repeat(lq[:count], scale, axis=1), scale, axis=2)
  return np.clip(np.concatenate([lq_up, sr[:count], gt[:count]], axis=2), 0.0, 1.0)


def train(config: ml_collections.ConfigDict, workdir: str | Path) -> dict[str, Any]:
  """Runs (or resumes) fine-tuning in `workdir`; returns {"step", "stopped_by", "export"}.

  `stopped_by`: None after `total_steps`; `EARLY_STOPPING` when validation ended the run (also a
  normal end: exported); otherwise the signal that preempted it (checkpointed, not exported).
  """
  from clu import metric_writers  # Heavy (TensorBoard); only the trainer needs it.

  # A bad validation setting fails before any work.
  best_metric = config.validation.best_metric
  patience = config.validation.early_stop_patience
  if config.validation.every_steps and best_metric:
    validation_lib.check_best_metric(best_metric)
  if patience < 0:
    raise ValueError(f"validation.early_stop_patience must be >= 0, got {patience}")
  if patience and not (config.validation.every_steps and best_metric):
    raise ValueError("validation.early_stop_patience needs validation.every_steps > 0 and a "
                     "validation.best_metric")
  workdir = Path(workdir).absolute()
  workdir.mkdir(parents=True, exist_ok=True)
  is_chief = jax.process_index() == 0
  # A relaunch of a run that stopped early would only train on past its stop: say so instead.
  # The chief reads run.json; every process follows its answer.
  stopped = run_record.early_stopped(workdir, config.total_steps) if is_chief else None
  if sharding.any_process(stopped is not None):
    return _already_stopped_early(workdir, stopped, is_chief)
  dtype = precision.compute_dtype(config.compute_dtype)
  mesh = sharding.make_mesh(sharding.training_devices(config.num_devices))
  sharding.check_batch_size(config.batch_size, mesh)
  replicated, batch_sharding = sharding.replicated(mesh), sharding.batch_sharded(mesh)

  # ---- networks and the initial state (the perceptual network first: a missing VGG19 should
  # stop the run before anything slow happens).
  features_fn, perceptual_params, layer_weights = perceptual_lib.build(config.perceptual, dtype)
  degradation = config.data.degradation
  loss_config = _loss_config(config)
  loss_config.perceptual_layer_weights = layer_weights
  g_tx, d_tx = state_lib.adam(config.optimizer), state_lib.adam(config.optimizer)
  manager = ocp.CheckpointManager(
      workdir / "checkpoints",
      options=ocp.CheckpointManagerOptions(max_to_keep=config.keep_checkpoints,
                                           enable_async_checkpointing=True))
  latest = manager.latest_step()
  if latest is None:  # A new run: the starting weights.
    generator, discriminator, state = _initial_state(config, workdir, dtype, g_tx, d_tx)
    state = jax.device_put(state, replicated)
  else:
    # A resume needs only the checkpoint (and run.json's architectures): the starting weights
    # may have moved or been deleted since, and a preempted job relaunched elsewhere must go on.
    generator, discriminator, abstract = _abstract_state(config, workdir, dtype, g_tx, d_tx)
    abstract = jax.tree.map(
        lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=replicated), abstract)
    state = manager.restore(latest, args=ocp.args.StandardRestore(abstract))
    if is_chief:
      print(f"resumed from step {latest} ({workdir / 'checkpoints'})")
  if generator.scale != degradation.scale:
    raise ValueError(f"the generator is x{generator.scale} but the data are made for "
                     f"x{degradation.scale} (data.degradation.scale)")
  start_step = int(jax.device_get(state.step))
  if is_chief:
    changed_note = run_record.describe_changes(run_record.record_start(
        workdir, generator_arch=arch_of(generator), config=config, start_step=start_step,
        discriminator_arch=_discriminator_arch_of(discriminator)))
    if changed_note:
      print(changed_note)
  perceptual_params = jax.device_put(perceptual_params, replicated)

  train_step = sharding.jit_data_parallel(
      make_train_step(generator, discriminator, features_fn, loss_config, g_tx, d_tx,
                      axis_name=sharding.DATA_AXIS), mesh)
  # Batch-sharded out, so every host can read its own rows (summaries, validation).
  # The EMA generator's forward passes (image summaries, validation) never differentiate it, so
  # they use the form that compiles faster for each new input shape.
  ema_generator = for_inference(generator)
  ema_forward = jax.jit(lambda params, lq: ema_generator.apply({"params": params}, lq),
                        out_shardings=batch_sharding)

  dataset = input_pipeline.make_train_dataset(
      config.data.source, config.data, seed=config.seed, global_batch_size=config.batch_size,
      start_step=start_step)
  batches = dataset.as_numpy_iterator()
  writer = metric_writers.create_default_writer(workdir / "logs", just_logging=not is_chief)
  if start_step == 0:
    writer.write_hparams({k: "None" if v is None else v
                          for k, v in run_record.flatten_config(config).items()})

  # Image summaries always show the stream's first batch, in every launch of the run, so
  # TensorBoard compares the same images across steps and resumes. Fetched to the devices once.
  summary_batch = None
  if config.image_every_steps:
    if start_step == 0:
      first = next(batches)
      batches = itertools.chain([first], batches)
    else:
      first = next(input_pipeline.make_train_dataset(
          config.data.source, config.data, seed=config.seed,
          global_batch_size=config.batch_size).as_numpy_iterator())
    summary_batch = sharding.global_batch({"lq": first["lq"], "gt": first["gt"]}, batch_sharding)
  validation = None
  tracker, reference = None, None  # The chief's best-so-far and the guard-rails' step-0 scores.
  if config.validation.every_steps:
    validation = validation_lib.Validation(
        config.validation, gt_size=degradation.gt_size, scale=generator.scale,
        local_batch=config.batch_size // jax.process_count())
    if is_chief:
      if best_metric:  # A resumed run goes on comparing with its best so far.
        best = run_record.best_validation(workdir)
        tracker = (validation_lib.EarlyStopping(
            best_metric, patience, best=best["value"], best_step=best["step"],
            since_best=run_record.validations_since_best(workdir))
                   if best and best["metric"] == best_metric
                   else validation_lib.EarlyStopping(best_metric, patience))
      reference = run_record.first_validation(workdir)
  # The held-out crops have their own shape: a jit of their own, so the image summaries' forward
  # keeps its single executable.
  crop_forward = jax.jit(lambda params, lq: ema_generator.apply({"params": params}, lq),
                         out_shardings=batch_sharding)

  def validate(step: int) -> bool:
    """Scores, logs and keeps the best EMA generator; True (on every process): stop early."""
    nonlocal reference
    # Every host runs all held-out crops as its rows of a global batch and scores its own.
    values = validation(lambda lq: _local_rows(crop_forward(
        state.ema_params, sharding.global_batch({"lq": lq}, batch_sharding)["lq"])))
    if step == 0:
      values.update(validation.baseline)
    stop = False
    if is_chief:
      if step == 0:
        reference = {k: v for k, v in values.items() if k.startswith("val/")}
        run_record.record_first_validation(workdir, reference)
      warnings = validation_lib.guard_rail_warnings(
          step, values, reference,
          warn_bias_levels=config.validation.warn_bias_levels,
          warn_gradient_ratio=config.validation.warn_gradient_ratio)
      values["val/warnings"] = float(len(warnings))  # A TensorBoard curve of the console's lines.
      run_record.record_validation(workdir, step, values)
      stop = keep_best(step, values, warnings)
    writer.write_scalars(step, values)
    return sharding.any_process(stop) if patience else False

  def keep_best(step: int, values: dict[str, float], warnings: list[str]) -> bool:
    """The chief's console lines and best-so-far bookkeeping; True: patience ran out."""
    base = validation.baseline
    tqdm.tqdm.write(
        f"step {step}: held-out PSNR {values['val/psnr']:.2f} dB, SSIM {values['val/ssim']:.4f}, "
        f"bias {values['val/bias']:+.2f} levels, gradient ratio {values['val/grad_ratio']:.2f} "
        f"({len(validation)} crops of {validation.num_images} images, "
        f"{'/'.join(validation.protocol_names)}; bicubic {base['val_bicubic/psnr']:.2f} dB / "
        f"{base['val_bicubic/ssim']:.4f})")
    for line in warnings:
      tqdm.tqdm.write(line)
    if tracker is None:
      return False
    # Keep the EMA generator that scored best so far (step 0 included).
    value = values[f"val/{best_metric}"]
    stop = tracker.update(value, step)
    if tracker.improved:
      export_lib.export_ema(workdir, generator_arch=arch_of(generator),
                            ema_params=state.ema_params, step=step, torch_file=False,
                            name="generator_best", note={"selected_by": {best_metric: value}})
      run_record.record_best_validation(workdir, step=step, metric=best_metric, value=value)
    run_record.record_validations_since_best(workdir, tracker.since_best)
    if stop and step < config.total_steps:
      tqdm.tqdm.write(
          f"early stopping at step {step}: val/{best_metric} has not improved on "
          f"{tracker.best:.4g} (step {tracker.best_step}) for {tracker.since_best} validations "
          f"(validation.early_stop_patience = {patience}); the best generator is "
          f"{workdir / 'export' / 'generator_best'}")
    return stop

  # ---- the loop.
  step, stopped_by = start_step, None
  last_log_time, last_log_step = time.perf_counter(), start_step
  progress = tqdm.tqdm(total=config.total_steps, initial=start_step, disable=not is_chief,
                       desc="fine-tuning", unit="step", dynamic_ncols=True)
  # The train step compiles (about a minute for x4plus on a 2-core CPU) on a thread of its own
  # while the step-0 validation runs, instead of at the first step, after that validation. It
  # needs only the global batch's shapes, which the first local batch shows.
  first_local = next(batches)
  batches = itertools.chain([first_local], batches)
  batch_shapes = {key: jax.ShapeDtypeStruct((rows.shape[0] * jax.process_count(),) + rows.shape[1:],
                                            rows.dtype, sharding=batch_sharding)
                  for key, rows in first_local.items()}
  compiled_step = _compile_in_background(train_step.lower(state, batch_shapes, perceptual_params))
  if validation is not None and start_step == 0:
    validate(0)  # The starting generator's scores: where the curves begin.
  train_step = compiled_step()
  with StopRequest() as stop:
    while step < config.total_steps:
      local = next(batches)
      batch = sharding.global_batch(local, batch_sharding)
      state, metrics = train_step(state, batch, perceptual_params)
      step += 1
      progress.update(1)

      checked = False
      if step % config.log_every_steps == 0 or step == config.total_steps:
        values = {k: float(v) for k, v in jax.device_get(metrics).items()}
        checked = _raise_if_not_finite(values, step, manager)
        now = time.perf_counter()
        steps_per_s = (step - last_log_step) / (now - last_log_time)
        last_log_time, last_log_step = now, step
        values.update({"learning_rate": config.optimizer.lr, "steps_per_s": steps_per_s,
                       "samples_per_s": steps_per_s * config.batch_size})
        writer.write_scalars(step, values)
        progress.set_postfix(g=f"{values['g/total']:.4f}", d=f"{values['d/real'] + values['d/fake']:.3f}")
      if config.image_every_steps and step % config.image_every_steps == 0:
        sr = ema_forward(state.ema_params, summary_batch["lq"])  # Every process runs its part.
        writer.write_images(step, {"lr_sr_gt": _image_summary(
            *(_first_local_rows(x) for x in (summary_batch["lq"], sr, summary_batch["gt"])))})

      stop_early = False
      if validation is not None and (step % config.validation.every_steps == 0
                                     or step == config.total_steps):
        stop_early = validate(step) and step < config.total_steps

      # Early stopping wins over a signal at the same step: the run is over either way, and
      # ending it normally (checkpoint, then export) leaves nothing to resume.
      signalled = _agreed_stop(stop.signal_name, step, config)
      stopped_by = EARLY_STOPPING if stop_early else signalled
      if step % config.checkpoint_every_steps == 0 or step == config.total_steps or stopped_by:
        if not checked:
          _raise_if_not_finite({k: float(v) for k, v in jax.device_get(metrics).items()}, step,
                               manager)
        manager.save(step, args=ocp.args.StandardSave(state))
      if stopped_by:
        break
  progress.close()
  # tf.data stops here, before the export and the final evaluation: otherwise its threads keep
  # refilling buffers no one reads, and the iterator is torn down only when `train` returns,
  # after the final evaluation's last line (in two of seven demo runs the process then sat
  # 40-58 s in that destructor). `batches` holds the only reference to the iterator.
  started = time.perf_counter()
  del batches
  teardown_s = time.perf_counter() - started
  if is_chief and teardown_s > 5:
    print(f"the input pipeline took {teardown_s:.0f} s to stop")
  manager.wait_until_finished()
  writer.flush()

  exported = None
  if stopped_by and stopped_by != EARLY_STOPPING:
    if is_chief:
      print(f"{stopped_by}: saved step {step} to {workdir / 'checkpoints'}; run the same command "
            "again to resume")
  elif is_chief:
    exported = export_lib.export_ema(workdir, generator_arch=arch_of(generator),
                                     ema_params=state.ema_params, step=step,
                                     torch_file=config.export_pth)
    if stopped_by == EARLY_STOPPING:
      # After the export: a run killed before this line is resumed, not taken for finished.
      run_record.record_early_stop(workdir, step=step, best_step=tracker.best_step)
      print(f"stopped early at step {step} of {config.total_steps} (best validation at step "
            f"{tracker.best_step}); the final EMA generator is exported as usual")
    if config.evaluate_after.images and config.generator.init:
      final_eval.pretrained_vs_finetuned(
          config.evaluate_after, workdir,
          pretrained.resolve(config.generator.init, "generator", workdir),
          Path(exported["model_dir"]))
  return {"step": step, "stopped_by": stopped_by, "export": exported}


def _compile_in_background(lowered):
  """Starts `lowered.compile()` on a daemon thread (XLA's compiler releases the GIL); returns a
  function that waits for the compiled program and returns it (or raises what compiling raised).
  A daemon, so that an error in the meantime ends the process without waiting for the compiler."""
  outcome = {}

  def run():
    try:
      outcome["compiled"] = lowered.compile()
    except BaseException as error:  # pylint: disable=broad-exception-caught  # Re-raised in wait.
      outcome["error"] = error

  thread = threading.Thread(target=run, name="compile-train-step", daemon=True)
  thread.start()

  def wait():
    thread.join()
    if "error" in outcome:
      raise outcome["error"]
    return outcome["compiled"]

  return wait


def _already_stopped_early(workdir: Path, stopped: dict[str, Any] | None,
                           is_chief: bool) -> dict[str, Any]:
  """`train`'s answer for a relaunch of a run that stopped early: nothing trained, the exports
  of its end (if still there) returned."""
  exported = None
  model_dir = workdir / "export" / "generator_ema"
  if model_dir.is_dir():
    exported = {"model_dir": str(model_dir)}
    if model_dir.with_suffix(".pth").is_file():
      exported["pth"] = str(model_dir.with_suffix(".pth"))
  step = stopped["step"] if stopped else None
  if is_chief:
    print(f"this run already stopped early at step {step} (best validation at step "
          f"{stopped['best_step']}; {run_record.RUN_INFO}); nothing to train. Raise "
          "total_steps to train on from its last checkpoint, or use a new workdir")
  return {"step": step, "stopped_by": EARLY_STOPPING, "export": exported}


def _initial_state(config, workdir: Path, dtype, g_tx, d_tx):
  """(generator, discriminator, state) of a new run, from the configured starting weights."""
  degradation = config.data.degradation
  g_rng, d_rng = jax.random.split(jax.random.key(config.seed))
  generator, g_params = pretrained.generator(
      config.generator.init, config.generator.arch, workdir, g_rng,
      degradation.gt_size // degradation.scale, dtype)
  discriminator, d_variables = pretrained.discriminator(
      config.discriminator.init, config.discriminator.num_feat, workdir,
      d_rng, degradation.gt_size, dtype)
  return generator, discriminator, state_lib.create(g_params, d_variables, g_tx, d_tx)


def _abstract_state(config, workdir: Path, dtype, g_tx, d_tx):
  """(generator, discriminator, the state's shapes) of a run being resumed: the networks as
  run.json recorded them, the state traced with `jax.eval_shape` (nothing read or computed)."""
  degradation = config.data.degradation
  generator = build_generator(run_record.generator_arch(workdir), dtype=dtype)
  discriminator = UNetDiscriminatorSN(
      **(run_record.discriminator_arch(workdir) or {"num_feat": config.discriminator.num_feat}),
      dtype=dtype)
  lq = jax.ShapeDtypeStruct((1, degradation.lq_size, degradation.lq_size, 3), jnp.float32)
  gt = jax.ShapeDtypeStruct((1, degradation.gt_size, degradation.gt_size, 3), jnp.float32)

  def create(g_rng, d_rng, lq, gt):
    return state_lib.create(generator.init(g_rng, lq)["params"],
                            discriminator.init(d_rng, gt), g_tx, d_tx)

  keys = jax.random.split(jax.random.key(config.seed))
  return generator, discriminator, jax.eval_shape(create, keys[0], keys[1], lq, gt)


def _discriminator_arch_of(discriminator) -> dict[str, Any]:
  return dict(num_feat=discriminator.num_feat, skip_connection=discriminator.skip_connection)



def _raise_if_not_finite(values: dict[str, float], step: int, manager) -> bool:
  bad = {k: v for k, v in values.items() if not np.isfinite(v)}
  if bad:
    manager.wait_until_finished()
    last = manager.latest_step()
    where = (f"the last good checkpoint (step {last}) is intact" if last is not None
             else "no checkpoint had been saved yet")
    raise NonFiniteLossError(
        f"non-finite values at step {step}: {bad}. Training stopped; {where}. Lower the learning "
        "rate, check the data for broken images, or use compute_dtype='float32'.")
  return True
