"""Ground-truth images for training and testing: dataset builders, sources, the input pipeline.

  decode.py          decoded samples -> training's conventions (no alpha, float RGB); files are
                     read by jaxsr.io
  builders/          TFDS builders for STARE, Shenzhen, DRIVE, NIH ChestX-ray14 (manual_dir)
  source.py          the random-access `ImageSource` interface; `open_source`
  folder.py          a folder of the user's own images as a source
  tfds_source.py     a prepared TFDS split as a source
  bundled.py         images shipped in scikit-image / pydicom-data, the demo's offline source
  window.py          random 400x400 GT windows with reflect-101 padding (TF)
  subimages.py       offline sub-image extraction (library + CLI)
  input_pipeline.py  per-host, deterministic, resumable (lq, gt, gt_usm) batches
"""
