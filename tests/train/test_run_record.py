"""run.json: the starting configuration and every resume's changes, on record."""

import json

import ml_collections
import pytest

from jaxsr.train import run_record
from jaxsr.train.export import export_checkpoint

ARCH = dict(scale=4, num_feat=8, num_block=1, num_grow_ch=4, num_out_ch=3)


def config(**changes):
  c = ml_collections.ConfigDict(dict(
      total_steps=10, batch_size=2, seed=0, note=None,
      optimizer=dict(lr=1e-4, b1=0.9),
      data=dict(source="/data/stare", degradation=dict(scale=4, modes=("area", "bicubic")))))
  for dotted, value in changes.items():
    *parents, leaf = dotted.split(".")
    node = c
    for parent in parents:
      node = node[parent]
    node[leaf] = value
  return c


def test_flatten_config_names_every_leaf_by_its_dotted_path():
  assert run_record.flatten_config(config()) == {
      "total_steps": 10, "batch_size": 2, "seed": 0, "note": None,
      "optimizer.lr": 1e-4, "optimizer.b1": 0.9, "data.source": "/data/stare",
      "data.degradation.scale": 4, "data.degradation.modes": "('area', 'bicubic')"}


def test_fresh_run_records_its_config_and_resumes_record_what_changed(tmp_path):
  assert run_record.record_start(tmp_path, generator_arch=ARCH, config=config(),
                                 start_step=0) == {}
  # Same config resumed: nothing to record.
  assert run_record.record_start(tmp_path, generator_arch=ARCH, config=config(),
                                 start_step=4) == {}
  longer = config(total_steps=20)
  assert run_record.record_start(tmp_path, generator_arch=ARCH, config=longer,
                                 start_step=10) == {"total_steps": [10, 20]}
  assert run_record.describe_changes({"total_steps": [10, 20]}) is None  # Routine.
  # A run from before a field existed, resumed by a jaxsr that has it at its default (or no
  # longer has a field): routine. The same field changed by the user is not.
  assert run_record.describe_changes({"generator.arch.type": [None, "RRDBNet"],
                                      "generator.howto": ["download ...", None]}) is None
  assert "discriminator.warmup_steps: 0 -> 100" in run_record.describe_changes(
      {"discriminator.warmup_steps": [0, 100]})
  # Compared with the effective config (start + earlier resumes), not the starting one.
  changed = config(**{"total_steps": 20, "optimizer.lr": 5e-5, "data.source": "/data/drive"})
  changes = run_record.record_start(tmp_path, generator_arch=ARCH, config=changed, start_step=15)
  assert changes == {"data.source": ["/data/stare", "/data/drive"], "optimizer.lr": [1e-4, 5e-5]}
  line = run_record.describe_changes(changes)
  assert "optimizer.lr: 0.0001 -> 5e-05" in line and "'/data/stare' -> '/data/drive'" in line

  record = json.loads((tmp_path / run_record.RUN_INFO).read_text())
  assert record["generator_arch"] == ARCH
  assert record["config"]["total_steps"] == 10 and record["config"]["optimizer.lr"] == 1e-4
  assert record["resumes"] == [{"step": 10, "changed": {"total_steps": [10, 20]}},
                               {"step": 15, "changed": changes}]
  assert run_record.generator_arch(tmp_path) == ARCH

  # A new run from step 0 in the same directory starts a new record.
  run_record.record_start(tmp_path, generator_arch=ARCH, config=changed, start_step=0)
  record = json.loads((tmp_path / run_record.RUN_INFO).read_text())
  assert "resumes" not in record and record["config"]["data.source"] == "/data/drive"


def test_fields_that_appear_or_disappear_count_as_changes():
  assert run_record.config_changes({"a": 1, "b": 2}, {"a": 1, "c": 3}) == {
      "b": [2, None], "c": [None, 3]}


def test_export_refuses_a_directory_that_is_not_a_training_run(tmp_path):
  with pytest.raises(FileNotFoundError, match="not a jaxsr training directory"):
    export_checkpoint(tmp_path)

