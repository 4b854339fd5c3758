"""How much of RG1's lung texture can an x4 model restore rather than invent?

    python docs/results/finetune/texture-ceiling/texture_ceiling.py [OUT.json]

The chest-x4 protocol's texture-area ratio (gradient energy of SR over GT's in GT's calm half,
`jaxsr.evaluate.metrics.texture_areas`) is 1 for an output with GT's texture. This script scores
versions of GT that keep only what an x4 low-resolution image can carry, with the protocol's own
GT, border crop and metric:
  * GT low-passed at the LR's Nyquist frequency (1/8 cycle per GT pixel) with an ideal
    (brick-wall) filter, mirror-padded so the FFT's wrap-around adds no edges;
  * GT down x4 with PIL bicubic (the protocol's down-sampling, without its blur) and up again
    with PIL Lanczos: a practical band limit;
  * bicubic from the protocol's blurred LR (the evaluation's baseline row; a check that this
    script scores as the evaluation does).
Whatever texture-area energy an output has above these is detail the LR did not carry. It also
estimates GT's white-noise level in the calm half (Immerkaer 1996) to show how much of that
energy is noise rather than anatomy.
"""

import json
import sys

import numpy as np
from scipy import ndimage

from jaxsr.data import source_specs
from jaxsr.evaluate import metrics, protocols


def ideal_low_pass(image: np.ndarray, cutoff: float) -> np.ndarray:
  """Keeps spatial frequencies with |f_y|, |f_x| <= cutoff (cycles per pixel), per channel."""
  height, width = image.shape[:2]
  padded = np.pad(image, ((height, height), (width, width), (0, 0)), mode="symmetric")
  fy = np.abs(np.fft.fftfreq(padded.shape[0]))[:, None, None]
  fx = np.abs(np.fft.fftfreq(padded.shape[1]))[None, :, None]
  spectrum = np.fft.fft2(padded, axes=(0, 1)) * ((fy <= cutoff) & (fx <= cutoff))
  return np.real(np.fft.ifft2(spectrum, axes=(0, 1)))[height:2 * height, width:2 * width]


def main(out_path=None):
  config = protocols.get_protocol("chest-x4")
  config.metrics.lpips_net = ""  # Not needed here; every other metric as the evaluation's.
  image = source_specs.open_source("bundled:heldout:RG1_UNCR.dcm").read_float(0)
  gt, lr = protocols.make_pair(image, config)
  score = metrics.ImageMetrics(config.metrics).against(gt)
  scale = config.scale
  gt_c = metrics.crop_border(np.asarray(gt, np.float32), config.metrics.crop_border)
  areas = metrics.texture_areas(gt_c)
  height, width = gt.shape[:2]

  versions = {
      "GT, ideal low-pass at the LR's Nyquist": ideal_low_pass(gt.astype(np.float64), 0.5 / scale),
      "GT, bicubic down x4 then Lanczos up (no blur)": protocols.pil_resize(
          protocols.pil_resize(gt, (height // scale, width // scale), "bicubic"),
          (height, width), "lanczos"),
      "bicubic from the protocol's LR": protocols.scored_output(
          protocols.bicubic_upscale(lr, scale), config),
  }
  rows = {}
  for name, version in versions.items():
    scores = score(np.asarray(version, np.float32))
    rows[name] = {k: float(scores[k]) for k in ("texture_ratio", "grad_ratio", "psnr")}

  gray = gt_c.mean(axis=-1).astype(np.float64)
  mask = np.array([[1, -2, 1], [-2, 4, -2], [1, -2, 1]], np.float64)
  sigma = np.sqrt(np.pi / 2) * np.abs(ndimage.convolve(gray, mask, mode="reflect"))[areas].mean() / 6
  rng = np.random.default_rng(0)
  unit_noise = rng.normal(0.0, 1.0, (256, 256, 1)).repeat(3, axis=-1).astype(np.float32)
  energy_per_variance = float(np.mean(metrics.sobel_gradient_energy_map(unit_noise)))
  calm_energy = float(np.asarray(metrics.sobel_gradient_energy_map(gt_c))[areas].mean())
  result = {"image": "RG1_UNCR.dcm", "protocol": "chest-x4", "versions": rows,
            "calm_half_noise_sigma_levels": float(sigma * 255),
            "white_noise_share_of_calm_energy": energy_per_variance * sigma ** 2 / calm_energy}
  for name, row in rows.items():
    print(f"{name}: texture-area ratio {row['texture_ratio']:.3f}, whole-image "
          f"{row['grad_ratio']:.3f}, PSNR {row['psnr']:.2f} dB")
  print(f"calm-half noise (Immerkaer): {result['calm_half_noise_sigma_levels']:.2f} levels, "
        f"{result['white_noise_share_of_calm_energy']:.0%} of the calm-half gradient energy")
  if out_path:
    with open(out_path, "w") as f:
      json.dump(result, f, indent=1)
      f.write("\n")


if __name__ == "__main__":
  main(*sys.argv[1:])
