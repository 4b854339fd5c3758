"""Prepares one of the data sets from its unpacked official download.

  python -m jaxsr.data.builders stare --manual-dir ~/downloads/stare
  python -m jaxsr.data.builders shenzhen/multiscale --manual-dir ~/downloads/shenzhen
  python -m jaxsr.data.builders drive --manual-dir ~/downloads/DRIVE --file-format tfrecord
  python -m jaxsr.data.builders nih_chest_xray14 --manual-dir ~/downloads/nih

The default file format, ArrayRecord, gives the training pipeline random access (a TFRecord
split is held in memory instead) but cannot be read with `builder.as_dataset`; TFRecord can.
"""

from __future__ import annotations

import argparse
from typing import Sequence

import tensorflow_datasets as tfds

import jaxsr.data.builders  # pylint: disable=unused-import  (registers the builders)


def main(argv: Sequence[str] | None = None) -> None:
  parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
  parser.add_argument("name", help="stare, shenzhen[/original|/multiscale], drive, "
                                   "nih_chest_xray14[/random40_seed0|/all]")
  # Both spellings: `tfds build` users type --manual_dir.
  parser.add_argument("--manual-dir", "--manual_dir", dest="manual_dir", required=True,
                      help="where the download is unpacked")
  parser.add_argument("--data-dir", "--data_dir", dest="data_dir", default=None,
                      help="TFDS data dir (default ~/tensorflow_datasets)")
  parser.add_argument("--file-format", "--file_format", dest="file_format", default="array_record",
                      choices=("array_record", "tfrecord"))
  args = parser.parse_args(argv)

  builder = tfds.builder(args.name, data_dir=args.data_dir, file_format=args.file_format)
  builder.download_and_prepare(
      download_config=tfds.download.DownloadConfig(manual_dir=args.manual_dir))
  for split, info in builder.info.splits.items():
    print(f"{args.name} {split}: {info.num_examples} examples in {builder.data_dir}")


if __name__ == "__main__":
  main()
