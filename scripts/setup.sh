#!/usr/bin/env bash
# Sets lookm up on a fresh Debian 12 machine: the system libraries (apt, as root or through sudo),
# the pinned Python environment used by the tests and the interop scripts (.venv), and a release
# build at .build/release/lookm. Safe to run again: it only installs what is missing.
set -euo pipefail
cd "$(dirname "$0")/.."

packages=(libhdf5-dev hdf5-tools libzstd-dev libopenblas-dev pkg-config python3-venv time)
missing=()
for p in "${packages[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
    sudo=""
    [ "$(id -u)" -eq 0 ] || sudo="sudo"
    echo "setup: installing ${missing[*]}" >&2
    $sudo apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${missing[@]}" >/dev/null
fi

command -v swift >/dev/null || { echo "setup: swift is not on PATH (Swift 6.x toolchain needed)" >&2; exit 1; }

# Python: a virtual environment with exact pins; reinstalled only when the pins change.
python=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
    "$python" -m venv .venv
fi
stamp=.venv/.requirements-test.sha
want=$(sha256sum requirements-test.txt | cut -d' ' -f1)
if [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
    .venv/bin/python -m pip install -q --disable-pip-version-check -r requirements-test.txt
    echo "$want" > "$stamp"
fi
# The Python companion as a package (import lookm_kv, the lookm-export command), editable: its
# dependencies are the pins above, and setuptools comes with the venv (nothing is downloaded).
if ! .venv/bin/python -m pip show -q lookm-kv >/dev/null 2>&1; then
    .venv/bin/python -m pip install -q --disable-pip-version-check --no-deps --no-build-isolation -e python
fi

# kvpress's environment (requirements-kvpress.txt): torch and the rest come from .venv through a
# .pth file, so only kvpress, its transformers and their few own dependencies are installed.
if [ ! -x .venv-kvpress/bin/python ]; then
    "$python" -m venv .venv-kvpress
fi
site=$(.venv-kvpress/bin/python -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')
shared=$(.venv/bin/python -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')
echo "$shared" > "$site/lookm-shared-venv.pth"
stamp=.venv-kvpress/.requirements-kvpress.sha
want=$(sha256sum requirements-kvpress.txt | cut -d' ' -f1)
if [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
    .venv-kvpress/bin/python -m pip install -q --disable-pip-version-check -r requirements-kvpress.txt
    echo "$want" > "$stamp"
fi

swift build -c release 2>&1 | grep -Ev '^\[[0-9]+/[0-9]+\]' >&2
echo "setup: lookm is at .build/release/lookm; the HDF5 zstd plugin for h5dump is in .build/release (HDF5_PLUGIN_PATH)" >&2
