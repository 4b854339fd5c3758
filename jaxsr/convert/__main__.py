"""python -m jaxsr.convert: PyTorch/ncnn Real-ESRGAN weights <-> jaxsr model directories.

  python -m jaxsr.convert RealESRGAN_x4plus.pth                  # -> ./RealESRGAN_x4plus/
  python -m jaxsr.convert RealESRGAN_x4plus_netD.pth -o netD     # kind detected from the keys
  python -m jaxsr.convert vgg19-dcbb9e9d.pth -o vgg19
  python -m jaxsr.convert REALESRGAN_X4PLUS_UP4X.param -o x4plus # ncnn (fp16 or fp32)
  python -m jaxsr.convert realesr-general-x4v3.pth               # SRVGGNetCompact (detected)
  python -m jaxsr.convert --to-torch finetuned/ -o finetuned.pth # back to PyTorch
  python -m jaxsr.convert --to-torch finetuned/ -o finetuned.safetensors  # ... without torch
  python -m jaxsr.convert --interpolate x4plus/ finetuned/ --alpha 0.7 -o blend/  # strength dial

`--to-torch` writes the official PyTorch layout, in the format -o's suffix names: `.pth` (a torch
pickle, generators under params_ema; needs torch) or `.safetensors` (the bare state dict with
exactly the official keys, float32; needs only the safetensors package).

`--interpolate A B --alpha X` blends two generators of one architecture, weight by weight:
(1 - X) * A + X * B (0 gives A, 1 gives B), into a new model directory
(`jaxsr.convert.interpolation`).
"""

from __future__ import annotations

import argparse
import sys

from jaxsr import checkpoint
from jaxsr import convert as convert_lib
from jaxsr.convert import interpolation


def main(argv=None) -> int:
  parser = argparse.ArgumentParser(
      prog="python -m jaxsr.convert", description=__doc__,
      formatter_class=argparse.RawDescriptionHelpFormatter)
  parser.add_argument("src", nargs="?", help=".pth file, or ncnn .param/.bin")
  parser.add_argument("-o", "--output",
                      help="output model directory (or .pth / .safetensors with --to-torch)")
  parser.add_argument("--kind", default="auto", choices=("auto",) + convert_lib.KINDS)
  parser.add_argument("--key", help="wrapper key inside the .pth (default: params_ema, then params)")
  parser.add_argument("--act-type", choices=("relu", "leakyrelu"),
                      help="activation of an SRVGGNetCompact .pth without PReLU weights (a file "
                           "cannot tell ReLU from LeakyReLU)")
  parser.add_argument("--to-torch", metavar="MODEL_DIR",
                      help="export a model directory to .pth or .safetensors")
  parser.add_argument("--interpolate", nargs=2, metavar=("A", "B"),
                      help="blend two generator model directories (with --alpha and -o)")
  parser.add_argument("--alpha", type=float,
                      help="with --interpolate: the weight of B (0 = A, 1 = B)")
  parser.add_argument("--force", action="store_true", help="replace an existing output")
  args = parser.parse_args(argv)

  try:
    if args.interpolate:
      if args.src or args.to_torch or args.alpha is None or not args.output:
        parser.error("--interpolate A B takes no SRC and needs --alpha X and -o OUT_DIR")
      path = interpolation.interpolate(*args.interpolate, args.alpha, args.output,
                                       overwrite=args.force)
      print(f"wrote {path}: {1 - args.alpha:g} x {args.interpolate[0]} + {args.alpha:g} x "
            f"{args.interpolate[1]}")
      return 0
    if args.alpha is not None:
      parser.error("--alpha goes with --interpolate A B")
    if args.to_torch:
      if args.src or not args.output:
        parser.error("--to-torch MODEL_DIR takes no SRC and needs -o OUT.pth or OUT.safetensors")
      path = convert_lib.export_torch(args.to_torch, args.output)
      print(f"wrote {path}")
      return 0
    if not args.src:
      parser.error("SRC is required (or use --to-torch)")
    path = convert_lib.convert(args.src, args.output, kind=args.kind, key=args.key,
                               act_type=args.act_type, overwrite=args.force)
  except (convert_lib.ConversionError, interpolation.InterpolationError) as e:
    print(f"error: {e}", file=sys.stderr)
    return 2
  meta = checkpoint.load_metadata(path)
  arch = ", ".join(f"{k}={v}" for k, v in sorted(meta.arch.items()) if k != "layers")
  print(f"wrote {meta.kind} ({arch}) to {path}")
  if "output_scale" in meta.source:
    print(f"note: this ncnn graph resizes the x{meta.arch['scale']} network's output to "
          f"x{meta.source['output_scale']} (bicubic); the network was converted, and "
          f"`python -m jaxsr.upscale --outscale {meta.source['output_scale']}` gives that size")
  return 0


if __name__ == "__main__":
  sys.exit(main())
