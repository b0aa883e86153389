#!/usr/bin/env bash
# Fetch, on a machine that reaches a package index, the wheels of everything goodfit needs
# beyond torch, torchvision, lightning and torchmetrics (its requirements in pyproject.toml, their
# requirements, and pytest for the GPU tests), for a GPU machine that has only those four and no
# index. `make gpu-check` installs the ones that machine lacks from there (bench/gpu_env.py).
# The real Fashion-MNIST, when found here, is copied beside them, so both travel together.
#
#   bash bench/gpu_wheels.sh [--python 3.12] [--platform TAG]... [--dest .gpu/wheels]
#                            [--only NAME]... [--no-data]
#
# --python   the GPU machine's Python version (default 3.12)
# --platform a wheel platform tag it accepts; repeat for several (default: manylinux x86_64,
#            glibc 2.28 and older)
# --dest     where the wheels go (default .gpu/wheels, git-ignored; it is emptied first); the
#            data go to the folder `data` beside it (default .gpu/data)
# --only     only this one of goodfit's requirements (with what it requires); repeat for
#            several: a lighter set for a machine known to have the others
# --no-data  do not copy the data
set -euo pipefail
cd "$(dirname "$0")/.."

PYTHON=${PYTHON:-python3}
py_version=3.12
dest=.gpu/wheels
copy_data=1
platforms=()
only=()
while [ $# -gt 0 ]; do
  case "$1" in
    --python) py_version=$2; shift 2 ;;
    --platform) platforms+=("$2"); shift 2 ;;
    --dest) dest=$2; shift 2 ;;
    --only) only+=("$2"); shift 2 ;;
    --no-data) copy_data=0; shift ;;
    -h|--help) sed -n '2,18p' "$0"; exit 0 ;;
    *) echo "gpu_wheels.sh: unknown argument $1 (--help lists them)" >&2; exit 2 ;;
  esac
done
if ! [[ $py_version =~ ^3\.[0-9]+$ ]]; then
  echo "gpu_wheels.sh: --python $py_version: expected a version like 3.12" >&2; exit 2
fi
[ ${#platforms[@]} -gt 0 ] || platforms=(manylinux_2_28_x86_64 manylinux_2_27_x86_64
  manylinux_2_17_x86_64 manylinux2014_x86_64 manylinux1_x86_64)
platform_args=()
for tag in "${platforms[@]}"; do platform_args+=(--platform "$tag"); done

# goodfit's requirements, less the four the GPU machine has, plus pytest (bench/gpu_env.py).
listed=$("$PYTHON" - "${only[@]}" <<'EOF'
import re, sys, tomllib
deps = tomllib.load(open("pyproject.toml", "rb"))["project"]["dependencies"] + ["pytest>=8"]
present = {"torch", "torchvision", "lightning", "torchmetrics"}
name = {dep: re.split(r"[\s<>=!~;\[(]", dep, maxsplit=1)[0].lower() for dep in deps}
wanted = [dep for dep in deps if name[dep] not in present]
only = {arg.lower() for arg in sys.argv[1:]}
unknown = only - {name[dep] for dep in wanted}
if unknown:
    sys.exit(f"gpu_wheels.sh: --only {' '.join(sorted(unknown))}: not one of "
             + ", ".join(name[dep] for dep in wanted))
print("\n".join(dep for dep in wanted if not only or name[dep] in only))
EOF
)
mapfile -t requirements <<<"$listed"

rm -rf "$dest"
mkdir -p "$dest"
echo "Wheels for CPython $py_version (${platforms[*]}) into $dest: ${requirements[*]}"
if printf '%s\n' "${requirements[@]}" | grep -qE '^(hydra-core|omegaconf)'; then
  # Both pin antlr4-python3-runtime 4.9, published as source only: build its pure-Python
  # wheel here first, where pip finds it for the target below.
  "$PYTHON" -m pip wheel --quiet --no-deps --wheel-dir "$dest" "antlr4-python3-runtime==4.9.*"
fi
"$PYTHON" -m pip download --quiet --dest "$dest" --find-links "$dest" --only-binary=:all: \
  --python-version "$py_version" --implementation cp "${platform_args[@]}" "${requirements[@]}"

# Distributions that torch, torchvision, lightning and torchmetrics require, so every machine
# with those four has them: their wheels would only add weight to the trip.
"$PYTHON" - "$dest" <<'EOF'
import re, sys
from pathlib import Path
brought = {"numpy", "pillow", "pyyaml", "packaging", "typing-extensions", "setuptools",
           "markupsafe", "jinja2", "filelock", "fsspec", "sympy", "mpmath", "networkx", "tqdm",
           "lightning-utilities", "triton"}
for wheel in Path(sys.argv[1]).glob("*.whl"):
    if re.sub(r"[-_.]+", "-", wheel.name.split("-", 1)[0]).lower() in brought:
        wheel.unlink()
EOF

data_dir="$(dirname "$dest")/data"
if [ "$copy_data" = 1 ]; then
  found=""
  for folder in data data/FashionMNIST/raw /usr/share/datasets/fashion-mnist; do
    if ls "$folder"/train-images-idx3-ubyte* "$folder"/train-labels-idx1-ubyte* \
          "$folder"/t10k-images-idx3-ubyte* "$folder"/t10k-labels-idx1-ubyte* >/dev/null 2>&1; then
      found=$folder; break
    fi
  done
  if [ -n "$found" ]; then
    mkdir -p "$data_dir"
    cp "$found"/train-images-idx3-ubyte* "$found"/train-labels-idx1-ubyte* \
       "$found"/t10k-images-idx3-ubyte* "$found"/t10k-labels-idx1-ubyte* "$data_dir"/
    echo "Fashion-MNIST copied from $found into $data_dir"
  else
    echo "Fashion-MNIST not found here (data/, /usr/share/datasets/fashion-mnist): put the four"
    echo "IDX files into $data_dir yourself, or the GPU check runs on synthetic data."
  fi
fi

mib() { du -sb "$@" 2>/dev/null | awk '{s += $1} END {printf "%.1f", s / 1048576}'; }
echo "$(ls "$dest"/*.whl | wc -l) wheels, $(mib "$dest") MiB; data $(mib "$data_dir") MiB."
echo "Carry both to the GPU machine with the project (docs/performance.md, section GPU)."
