"""Ground-truth images for training and testing: dataset builders, sources, the input pipeline.

  decode.py          decoded samples -> training's conventions (no alpha, float RGB); files are
                     read by jaxsr.io
  builders/          TFDS builders for STARE, Shenzhen, DRIVE, NIH ChestX-ray14 (manual_dir)
  source.py          the random-access `ImageSource` interface (and `SourceError`)
  source_specs.py    the one spec grammar -> `ImageSource` (`open_source`): tfds:, bundled:,
                     skimage:, pydicom-data:, a file, a folder or a glob
  image_files.py     image files as a source (a file, a folder, a glob, packaged files)
  tfds_source.py     a prepared TFDS split as a source (prepared from manual_dir on request)
  bundled.py         images shipped in scikit-image / pydicom-data, and the offline runs'
                     train / held-out split of them
  window.py          random 400x400 GT windows with reflect-101 padding (TF)
  subimages.py       offline sub-image extraction (library + CLI)
  input_pipeline.py  per-host, deterministic, resumable (lq, gt, gt_usm) batches
"""
