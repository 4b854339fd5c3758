"""The offline fine-tuning study: does fine-tuning fix what the pretrained model gets wrong?

`python -m jaxsr.study --config configs/finetune_study.py` trains each arm of the study (a named
set of departures from the paper's recipe, `configs/finetune_study.py`), scores the pretrained
and every fine-tuned generator on held-out images that no arm trains on, with the paper's
protocols at full resolution, and writes the tables, figures and exact configs
(docs/results/finetune/ by default).

  runner.py   train the arms (resumable), evaluate them with `jaxsr.evaluate`
  writeup.py  README.md, results.json and config.json of the study
  seeds.py    `python -m jaxsr.study.seeds`: one arm against another over runs with other seeds

The arms themselves (config overrides and what each one tests) live in the study config.
"""
