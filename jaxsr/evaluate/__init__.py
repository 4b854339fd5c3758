"""Evaluation of super-resolution models under the paper's protocols.

`protocols` turns a test image into a (GT, LR) pair, `metrics` and `lpips` score an SR output
against GT, `report` writes CSV / JSON / Markdown, `figures` draws comparison figures, and
`run.evaluate` ties them together for any `upscale(lr, scale)`. The command line
(`python -m jaxsr.evaluate`) adds `data` (what `--data` names: any `jaxsr.data.source_specs`
spec, listed lazily) and `models` (jaxsr generator directories as `upscale` functions).
"""
