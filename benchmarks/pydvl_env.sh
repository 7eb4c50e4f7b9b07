#!/usr/bin/env bash
# Builds .venv-pydvl: pyDVL 0.10 pins numpy<2, so it cannot share .venv with DataBright.
# Usage: bash benchmarks/pydvl_env.sh   (idempotent; the benchmark runs it when needed)
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON="${PYTHON:-python3.11}"
command -v "$PYTHON" >/dev/null || PYTHON=python3
if [ ! -x .venv-pydvl/bin/python ]; then
    "$PYTHON" -m venv .venv-pydvl
fi
if ! .venv-pydvl/bin/python -c "import pydvl, sklearn" 2>/dev/null; then
    .venv-pydvl/bin/python -m pip install -q --upgrade pip
    .venv-pydvl/bin/python -m pip install -q 'pydvl==0.10.*' 'scikit-learn==1.9.1'
fi
.venv-pydvl/bin/python -c "import pydvl, numpy, sklearn; print('pydvl', pydvl.__version__, 'numpy', numpy.__version__, 'sklearn', sklearn.__version__)"
