"""The training loop on a tiny configuration: it trains, checkpoints, resumes exactly, and refuses NaN."""

import json
import os
import signal
import subprocess
import sys
import threading
import weakref
from pathlib import Path

import jax
import numpy as np
import pytest
from PIL import Image

from jaxsr import checkpoint
from jaxsr.train import trainer
from jaxsr.train.config import base_config

REPO = Path(__file__).resolve().parents[2]


def make_images(folder: Path, count=3, size=400, seed=0):
  folder.mkdir(parents=True, exist_ok=True)
  rng = np.random.default_rng(seed)
  for i in range(count):
    # Smooth random texture (not white noise) so the degradations act on image-like content.
    small = rng.integers(0, 256, (size // 8, size // 8, 3), dtype=np.uint8)
    Image.fromarray(small).resize((size, size), Image.BICUBIC).save(folder / f"img{i}.png")
  return folder


def tiny_config(data: Path, total_steps=4):
  config = base_config()
  config.total_steps = total_steps
  config.batch_size = 2
  config.num_devices = 2  # What `python -m jaxsr.train` uses on 2 cores (the tests have 4 devices).
  config.generator.init = ""
  config.generator.arch = dict(type="RRDBNet", scale=4, num_feat=8, num_block=1, num_grow_ch=4)
  config.discriminator.init = ""
  config.discriminator.num_feat = 8
  config.perceptual.network = "none"
  config.data.source = str(data)
  config.data.degradation.gt_size = 32
  config.data.num_parallel_calls = 2
  config.log_every_steps = 1
  config.image_every_steps = 2
  config.checkpoint_every_steps = 2
  config.keep_checkpoints = 5
  config.export_pth = False
  config.ema_decay = 0.5  # So the EMA (what validation scores) visibly moves within 4 steps.
  config.validation.every_steps = 2
  config.validation.data = str(data)
  config.validation.max_images = 3
  return config


def leaves(tree):
  return [np.asarray(x) for x in jax.tree.leaves(tree)]


def restore_state(workdir: Path, step: int):
  import orbax.checkpoint as ocp

  with ocp.CheckpointManager(workdir / "checkpoints") as manager:
    return manager.restore(step, args=ocp.args.StandardRestore())


def summary_tensors(logdir: Path):
  """(step, tag, NumPy value) of every tensor summary in a run's event files, in file order."""
  import tensorflow as tf
  from tensorflow.core.util import event_pb2

  for path in sorted(logdir.glob("events.out.tfevents.*")):
    for record in tf.data.TFRecordDataset(str(path)):
      event = event_pb2.Event.FromString(record.numpy())
      for value in event.summary.value:
        if value.HasField("tensor"):
          yield event.step, value.tag, tf.make_ndarray(value.tensor)


def summary_images(logdir: Path) -> dict[int, np.ndarray]:
  """{step: [N, H, 3W, 3] uint8} of the LR | SR | GT summaries in a run's event files."""
  import tensorflow as tf

  # The image summary is a string tensor: width, height, then one PNG per image.
  return {step: np.stack([tf.io.decode_png(png).numpy() for png in value[2:]])
          for step, tag, value in summary_tensors(logdir) if tag == "lr_sr_gt"}


def summary_scalars(logdir: Path) -> dict[str, dict[int, float]]:
  """{tag: {step: value}} of the scalars in a run's event files."""
  scalars = {}
  for step, tag, value in summary_tensors(logdir):
    if value.dtype == np.float32 and value.ndim == 0:
      scalars.setdefault(tag, {})[step] = float(value)
  return scalars


def held_out_psnr(data: Path, upscale) -> float:
  """Mean PSNR over the held-out crops of the folder's (colour) images, recomputed independently
  (tests/train/validation_reference.py): retina-x2 pairs (GT 512), the 96 px GT windows of the
  default `validation.windows="strata"` (two intensity strata, the most Sobel energy in each),
  `upscale(lr_crop)`'s output Lanczos-resized to x2 where it is not, in 8
  bits, 2-pixel border cropped, scikit-image's PSNR."""
  from jaxsr.evaluate import protocols
  from tests.train import validation_reference as ref

  protocol = protocols.get_protocol("retina-x2")
  values = []
  for path in sorted(data.glob("*.png")):
    image = np.asarray(Image.open(path).convert("RGB"), np.float32) / 255
    gt, lr = protocols.make_pair(image, protocol)
    for top, left in ref.strata_windows(gt, 96, 2, border=2):
      sr = ref.as_scored(upscale(lr[top // 2:top // 2 + 48, left // 2:left // 2 + 48]), (96, 96),
                         gray=False)
      values.append(ref.psnr_and_bias(sr, gt[top:top + 96, left:left + 96], border=2)[0])
  return float(np.mean(values))


@pytest.fixture(scope="module")
def data(tmp_path_factory):
  return make_images(tmp_path_factory.mktemp("data") / "images")


@pytest.fixture(scope="module")
def tiny_runs(tmp_path_factory, data):
  """A 4-step run straight through, and the same run stopped at step 2 and resumed to 4; the
  jitted steps the trainer built are kept to count how they were compiled and called."""
  root = tmp_path_factory.mktemp("tiny_runs")
  compiled_steps = []
  jit_data_parallel = trainer.sharding.jit_data_parallel

  class CountingStep:
    """The jitted step, counting its lowerings and its calls through jit's own dispatch."""

    def __init__(self, jitted):
      self.jitted, self.lowerings, self.jit_calls = jitted, 0, 0

    def lower(self, *args):
      self.lowerings += 1
      return self.jitted.lower(*args)

    def __call__(self, *args):
      self.jit_calls += 1
      return self.jitted(*args)

  def keep_jitted_step(*args):
    compiled_steps.append(CountingStep(jit_data_parallel(*args)))
    return compiled_steps[-1]

  # Which tf.data iterators are still alive when the run exports its generator.
  iterators, alive_at_export = [], []
  make_dataset = trainer.input_pipeline.make_train_dataset
  export_ema = trainer.export_lib.export_ema

  def tracked_dataset(*args, **kwargs):
    dataset = make_dataset(*args, **kwargs)

    class Tracked:
      def as_numpy_iterator(self):
        iterator = dataset.as_numpy_iterator()
        iterators.append(weakref.ref(iterator))
        return iterator

    return Tracked()

  def export_and_look(*args, **kwargs):
    alive_at_export.append([ref() is not None for ref in iterators])
    return export_ema(*args, **kwargs)

  with pytest.MonkeyPatch.context() as patch:
    patch.setattr(trainer.sharding, "jit_data_parallel", keep_jitted_step)
    patch.setattr(trainer.input_pipeline, "make_train_dataset", tracked_dataset)
    patch.setattr(trainer.export_lib, "export_ema", export_and_look)
    result = trainer.train(tiny_config(data), root / "straight")
  trainer.train(tiny_config(data, total_steps=2), root / "resumed")
  resumed = trainer.train(tiny_config(data, total_steps=4), root / "resumed")
  return {"root": root, "result": result, "resumed": resumed, "compiled": compiled_steps,
          "iterators_alive_at_export": alive_at_export,
          "first": restore_state(root / "straight", 2), "last": restore_state(root / "straight", 4)}


@pytest.mark.slow
def test_a_run_compiles_its_step_once_and_checkpoints_on_schedule(tiny_runs):
  root = tiny_runs["root"]
  assert tiny_runs["result"]["step"] == 4 and tiny_runs["result"]["stopped_by"] is None
  # The step was lowered and compiled once, ahead of time, and all four steps ran that program
  # (an AOT-compiled program refuses other shapes or shardings instead of recompiling).
  (step_fn,) = tiny_runs["compiled"]
  assert (step_fn.lowerings, step_fn.jit_calls) == (1, 0)
  assert sorted(os.listdir(root / "straight" / "checkpoints")) == ["2", "4"]
  assert list((root / "straight" / "logs").glob("events.out.tfevents.*"))
  # The input pipeline was torn down when training ended, before the final export (and the final
  # evaluation), not when train() returned; it was alive for the exports of generator_best.
  *during, final = tiny_runs["iterators_alive_at_export"]
  assert during and all(alive == [True] for alive in during)
  assert final == [False]


@pytest.mark.slow
def test_every_network_trains_and_the_ema_trails_the_generator(tiny_runs):
  first, last = tiny_runs["first"], tiny_runs["last"]
  assert int(last["step"]) == 4
  for name in ("g_params", "d_params", "d_spectral"):
    assert any(not np.array_equal(a, b) for a, b in zip(leaves(first[name]), leaves(last[name]))), name
  assert any(not np.array_equal(a, b) for a, b in zip(leaves(last["ema_params"]), leaves(last["g_params"])))
  assert all(np.isfinite(a).all() for a in leaves(last))


@pytest.mark.slow
def test_the_export_is_the_ema_generator(tiny_runs):
  # Loadable by upscale/evaluate, with the run's architecture.
  variables, meta = checkpoint.load(tiny_runs["result"]["export"]["model_dir"],
                                    expect_kind="generator")
  assert meta.arch == dict(type="RRDBNet", scale=4, num_feat=8, num_block=1, num_grow_ch=4,
                           num_out_ch=3)
  for a, b in zip(leaves(variables["params"]), leaves(tiny_runs["last"]["ema_params"])):
    np.testing.assert_array_equal(a, b)


@pytest.mark.slow
def test_a_resumed_run_equals_the_straight_run_bit_for_bit(tiny_runs):
  # 2 steps, stop, resume for 2 more == 4 straight steps (state and data stream).
  assert tiny_runs["resumed"]["step"] == 4
  for x, y in zip(leaves(tiny_runs["last"]), leaves(restore_state(tiny_runs["root"] / "resumed", 4))):
    np.testing.assert_array_equal(x, y)


@pytest.mark.slow
def test_image_summaries_show_the_same_pairs_in_every_launch(tiny_runs):
  # Same LR and GT at every step and in every launch of a run; only the SR column changes.
  straight, again = (summary_images(tiny_runs["root"] / name / "logs")
                     for name in ("straight", "resumed"))
  assert sorted(straight) == sorted(again) == [2, 4]
  width = 32  # GT size; each row is LR (nearest, GT size) | SR | GT.
  lr_gt = lambda images: np.concatenate([images[..., :width, :], images[..., 2 * width:, :]], -2)
  np.testing.assert_array_equal(lr_gt(straight[2]), lr_gt(straight[4]))
  assert not np.array_equal(straight[2][..., width:2 * width, :], straight[4][..., width:2 * width, :])
  for step in (2, 4):  # Step 4 of the resumed run was written by its second launch.
    np.testing.assert_array_equal(again[step], straight[step])


@pytest.mark.slow
def test_validation_scores_the_ema_and_bicubic_as_recomputed_independently(tiny_runs, data):
  # Held-out validation at steps 0, 2, 4 (on retina-x2 crops: the images are colour); step 4's
  # PSNR recomputed from the step-4 checkpoint's EMA generator, and the bicubic reference with
  # PIL, each through scikit-image's PSNR.
  from jaxsr.models import RRDBNet

  scalars = summary_scalars(tiny_runs["root"] / "straight" / "logs")
  assert sorted(scalars["val/psnr"]) == sorted(scalars["val/ssim"]) == [0, 2, 4]
  network = RRDBNet(scale=4, num_feat=8, num_block=1, num_grow_ch=4)
  last = tiny_runs["last"]
  ema_sr = lambda lr: np.asarray(network.apply({"params": last["ema_params"]}, lr[None]))[0]
  assert scalars["val/psnr"][4] == pytest.approx(held_out_psnr(data, ema_sr), abs=1e-4)
  assert abs(scalars["val/psnr"][4] - scalars["val/psnr"][0]) > 1e-2  # It scores the trained EMA.
  pil_bicubic = lambda lr: np.stack([np.asarray(Image.fromarray(lr[..., c]).resize(
      (96, 96), Image.Resampling.BICUBIC)) for c in range(3)], -1)
  assert scalars["val_bicubic/psnr"][0] == pytest.approx(held_out_psnr(data, pil_bicubic),
                                                          abs=1e-3)


@pytest.mark.slow
def test_generator_best_is_the_best_validated_ema_and_run_json_remembers_it(tiny_runs):
  # The best-scoring EMA generator (by logged val/psnr, step 0 included) is the one exported as
  # generator_best, and run.json remembers it for a resumed run.
  root = tiny_runs["root"]
  scalars = summary_scalars(root / "straight" / "logs")
  best_step = max(scalars["val/psnr"], key=scalars["val/psnr"].get)
  best_vars, best_meta = checkpoint.load(root / "straight" / "export" / "generator_best",
                                         expect_kind="generator")
  assert best_meta.source["step"] == best_step
  assert best_meta.source["selected_by"]["psnr"] == pytest.approx(scalars["val/psnr"][best_step])
  expected = {4: tiny_runs["last"], 2: tiny_runs["first"]}.get(best_step)
  if expected is not None:
    for a, b in zip(leaves(best_vars["params"]), leaves(expected["ema_params"])):
      np.testing.assert_array_equal(a, b)
  for name in ("straight", "resumed"):
    saved = json.loads((root / name / "run.json").read_text())["best_validation"]
    assert saved == {"step": best_step, "metric": "psnr", "value": pytest.approx(
        scalars["val/psnr"][best_step])}


@pytest.mark.slow
def test_run_json_keeps_the_starting_config_and_the_resumes_change(tiny_runs, data):
  # The starting config, and the resume's one change (total_steps 2 -> 4).
  record = json.loads((tiny_runs["root"] / "resumed" / "run.json").read_text())
  assert record["config"]["total_steps"] == 2 and record["config"]["batch_size"] == 2
  assert record["config"]["data.source"] == str(data)
  assert record["resumes"] == [{"step": 2, "changed": {"total_steps": [2, 4]}}]


def test_a_resume_needs_only_the_checkpoint_not_the_starting_weights(tmp_path, data, capsys):
  # Starting weights from a model directory that is deleted after the first launch (a cleaned
  # models/ folder, a job relaunched on another machine); the config's discriminator width is
  # changed too: the resume must take both networks from the run, not from the config.
  from jaxsr.models import RRDBNet

  arch = dict(scale=4, num_feat=8, num_block=1, num_grow_ch=4)
  params = RRDBNet(**arch).init(jax.random.key(3), np.zeros((1, 8, 8, 3), np.float32))["params"]
  start = checkpoint.save(tmp_path / "start", {"params": jax.tree.map(np.asarray, params)},
                          checkpoint.ModelMetadata(kind="generator", arch=dict(arch, num_out_ch=3),
                                                   source={"file": "test"}))
  config = tiny_config(data, total_steps=2)
  config.generator.init = str(start)
  config.validation.every_steps = 0
  config.image_every_steps = 0
  trainer.train(config, tmp_path / "run")
  import shutil

  shutil.rmtree(start)
  config = tiny_config(data, total_steps=4)
  config.generator.init = str(start)  # Points nowhere now.
  config.discriminator.num_feat = 16  # Not what the run trains.
  config.validation.every_steps = 0
  config.image_every_steps = 0
  result = trainer.train(config, tmp_path / "run")
  assert result["step"] == 4 and "resumed from step 2" in capsys.readouterr().out
  state = restore_state(tmp_path / "run", 4)
  assert state["d_params"]["conv0"]["kernel"].shape[-1] == 8  # The run's discriminator.
  assert json.loads((tmp_path / "run" / "run.json").read_text())["discriminator_arch"] == {
      "num_feat": 8, "skip_connection": True}


def test_a_compact_x3_generator_trains_exports_and_upscales(tmp_path, data):
  # config.generator.arch.type picks the architecture; scale 3 goes through the degradation,
  # the step, validation and the export, and the export upscales like any model directory.
  from jaxsr.infer.upscaler import Upscaler
  from jaxsr.models import SRVGGNetCompact

  config = tiny_config(data, total_steps=2)
  config.generator.arch = dict(type="SRVGGNetCompact", scale=3, num_feat=8, num_conv=2)
  config.data.degradation.scale = 3
  config.data.degradation.gt_size = 48
  config.image_every_steps = 0
  result = trainer.train(config, tmp_path / "run")
  assert result["step"] == 2
  variables, meta = checkpoint.load(result["export"]["model_dir"], expect_kind="generator")
  assert meta.arch == dict(type="SRVGGNetCompact", scale=3, num_in_ch=3, num_out_ch=3,
                           num_feat=8, num_conv=2, act_type="prelu")
  ema = restore_state(tmp_path / "run", 2)["ema_params"]
  for a, b in zip(leaves(variables["params"]), leaves(ema)):
    np.testing.assert_array_equal(a, b)
  lr = np.random.default_rng(0).random((10, 14, 3), np.float32)
  expected = np.clip(SRVGGNetCompact(scale=3, num_feat=8, num_conv=2).apply(
      {"params": ema}, lr[None])[0], 0, 1)
  np.testing.assert_allclose(Upscaler(result["export"]["model_dir"]).upscale(lr), expected,
                             atol=1e-6)
  assert json.loads((tmp_path / "run" / "run.json").read_text())["generator_arch"] == meta.arch


def test_early_stopping_ends_a_run_that_cannot_improve_exports_it_and_a_relaunch_does_not_retrain(
    tmp_path, data, capsys):
  config = tiny_config(data, total_steps=6)
  config.optimizer.lr = 0.0  # The EMA never moves, so no validation can beat step 0's.
  config.validation.early_stop_patience = 1
  config.image_every_steps = 0
  workdir = tmp_path / "run"
  result = trainer.train(config, workdir)
  # Validations at steps 0 and 2; step 2 did not improve: patience 1 is used up.
  assert result["step"] == 2 and result["stopped_by"] == "early stopping"
  assert os.listdir(workdir / "checkpoints") == ["2"]
  out = capsys.readouterr().out
  assert "early stopping at step 2" in out and "stopped early at step 2 of 6" in out
  assert "run the same command again to resume" not in out  # Not a preemption.
  # Exported as a normal end (the final EMA), the best (step 0's) kept, and on record.
  variables, meta = checkpoint.load(result["export"]["model_dir"], expect_kind="generator")
  assert meta.source["step"] == 2
  assert checkpoint.load_metadata(workdir / "export" / "generator_best").source["step"] == 0
  for a, b in zip(leaves(variables["params"]), leaves(restore_state(workdir, 2)["ema_params"])):
    np.testing.assert_array_equal(a, b)
  record = json.loads((workdir / "run.json").read_text())
  assert record["early_stopped"] == {"step": 2, "best_step": 0}
  assert record["best_validation"]["step"] == 0 and record["validations_since_best"] == 1
  scalars = summary_scalars(workdir / "logs")
  assert scalars["val/psnr"][2] == scalars["val/psnr"][0]  # The same generator, scored again.
  assert scalars["val/warnings"] == {0: 0.0, 2: 0.0}
  events = sorted((workdir / "logs").glob("events.out.tfevents.*"))

  # The same command again: it says so and trains nothing (no step, no log, no checkpoint).
  again = trainer.train(tiny_config(data, total_steps=6), workdir)
  assert again == {"step": 2, "stopped_by": "early stopping",
                   "export": {"model_dir": result["export"]["model_dir"]}}
  assert "already stopped early at step 2" in capsys.readouterr().out
  assert os.listdir(workdir / "checkpoints") == ["2"]
  assert sorted((workdir / "logs").glob("events.out.tfevents.*")) == events


def test_early_stopping_needs_validation_and_a_best_metric(tmp_path, data):
  config = tiny_config(data)
  config.validation.early_stop_patience = 2
  config.validation.best_metric = ""
  with pytest.raises(ValueError, match="early_stop_patience needs .* a validation.best_metric"):
    trainer.train(config, tmp_path / "a")
  config.validation.best_metric = "psnr"
  config.validation.every_steps = 0
  with pytest.raises(ValueError, match="early_stop_patience needs validation.every_steps > 0"):
    trainer.train(config, tmp_path / "b")
  assert not (tmp_path / "a").exists() and not (tmp_path / "b").exists()  # Before any work.


def test_non_finite_loss_stops_with_a_message_and_no_checkpoint(tmp_path, data):
  config = tiny_config(data)
  config.loss.gan_weight = float("nan")
  with pytest.raises(trainer.NonFiniteLossError, match=r"non-finite values at step 1: .*g/total"):
    trainer.train(config, tmp_path / "nan")
  assert not list((tmp_path / "nan" / "checkpoints").glob("[0-9]*"))


def test_paper_config_refuses_to_start_without_vgg19(tmp_path, data):
  # Small generator/discriminator from scratch so that only the missing VGG19 can stop it.
  args = [sys.executable, "-m", "jaxsr.train", f"--config={REPO / 'configs' / 'stare.py'}",
          f"--workdir={tmp_path}", "--config.generator.init=", "--config.discriminator.init=",
          "--config.generator.arch.num_block=1", "--config.discriminator.num_feat=8",
          "--config.perceptual.checkpoint=", f"--config.data.source={data}"]
  out = subprocess.run(args, capture_output=True, text=True, cwd=REPO, timeout=300,
                       env={**os.environ, "JAX_PLATFORMS": "cpu"})
  assert out.returncode == 2, out.stderr[-2000:]
  assert "VGG19" in out.stderr and "python -m jaxsr.convert vgg19-dcbb9e9d.pth" in out.stderr
  assert not (tmp_path / "checkpoints").exists() or not os.listdir(tmp_path / "checkpoints")


@pytest.mark.slow
def test_sigterm_saves_and_exits_then_resumes(tmp_path, data):
  """A preempted run (SIGTERM) saves its current step; the same command resumes from it."""
  # The run of multihost_train.py as the only process; the signal arrives during step 3.
  env = {**os.environ, "JAX_PLATFORMS": "cpu", "PYTHONPATH": str(REPO)}
  out = subprocess.run(
      [sys.executable, str(Path(__file__).with_name("multihost_train.py")),
       "--workdir", str(tmp_path / "run"), "--data", str(data), "--steps", "50",
       "--sigterm_at_step", "3"],
      capture_output=True, text=True, env=env, cwd=REPO, timeout=600)
  assert out.returncode == 0, out.stderr[-3000:]
  assert "RESULT 0 3 SIGTERM" in out.stdout
  assert "run the same command again to resume" in out.stdout
  assert os.listdir(tmp_path / "run" / "checkpoints") == ["3"]
  resumed = trainer.train(tiny_config(data, total_steps=5), tmp_path / "run")
  assert resumed["step"] == 5


def test_background_compile_returns_the_program_or_raises_what_compiling_raised():
  class Lowered:
    def __init__(self, outcome):
      self.outcome = outcome

    def compile(self):
      if isinstance(self.outcome, Exception):
        raise self.outcome
      return self.outcome

  assert trainer._compile_in_background(Lowered("program"))() == "program"  # pylint: disable=protected-access
  wait = trainer._compile_in_background(Lowered(MemoryError("out of memory")))  # pylint: disable=protected-access
  with pytest.raises(MemoryError, match="out of memory"):
    wait()


def test_outside_the_main_thread_the_stop_handler_says_it_cannot_catch_signals(capsys):
  before = signal.getsignal(signal.SIGTERM)
  worker = threading.Thread(target=lambda: trainer.StopRequest().__enter__())
  worker.start()
  worker.join()
  assert "outside the main thread" in capsys.readouterr().out
  assert signal.getsignal(signal.SIGTERM) is before  # Nothing installed from the worker.
