"""pyDVL's side of benchmarks/valuation_vs_pydvl.py; runs inside .venv-pydvl (numpy < 2).

Usage: .venv-pydvl/bin/python benchmarks/pydvl_runner.py JOB.json
The job names an .npz (x_train, y_train, x_val, y_val; read with allow_pickle=False), the
methods to run and their settings; the answer is a JSON file of per-example values and the CPU
and wall seconds each ``fit`` took (imports and data loading excluded).
"""

from __future__ import annotations

import json
import os
import sys
import time
import warnings

os.environ.setdefault("OMP_NUM_THREADS", "1")
warnings.filterwarnings("ignore")

import numpy as np  # noqa: E402
from joblib import parallel_config  # noqa: E402
from pydvl.valuation import (  # noqa: E402
    DataOOBValuation,
    Dataset,
    KNNShapleyValuation,
    LOOValuation,
    MaxUpdates,
    ModelUtility,
    RelativeTruncation,
    SupervisedScorer,
    TMCShapleyValuation,
)
from sklearn.ensemble import BaggingClassifier  # noqa: E402
from sklearn.linear_model import RidgeClassifier  # noqa: E402
from sklearn.neighbors import KNeighborsClassifier  # noqa: E402
from sklearn.tree import DecisionTreeClassifier  # noqa: E402


def main() -> None:
    with open(sys.argv[1]) as fh:
        job = json.load(fh)
    arrays = np.load(job["npz"], allow_pickle=False)
    train = Dataset(arrays["x_train"], arrays["y_train"])
    test = Dataset(arrays["x_val"], arrays["y_val"])
    seed = int(job["seed"])
    out: dict[str, dict] = {}

    def utility() -> ModelUtility:
        scorer = SupervisedScorer("accuracy", test, default=0.0, range=(0.0, 1.0))
        return ModelUtility(RidgeClassifier(), scorer, show_warnings=False)

    def make(name: str):
        if name == "knn":
            return KNNShapleyValuation(
                KNeighborsClassifier(n_neighbors=job["k"]), test, progress=False
            )
        if name == "tmc":
            return TMCShapleyValuation(
                utility(),
                truncation=RelativeTruncation(rtol=0.01, burn_in_fraction=0.4),
                is_done=MaxUpdates(job["tmc_permutations"]),
                seed=seed,
                show_warnings=False,
            )
        if name == "loo":
            return LOOValuation(utility())
        if name == "oob":
            bag = BaggingClassifier(
                DecisionTreeClassifier(), n_estimators=job["oob_estimators"], random_state=seed
            )
            # fitting the ensemble is part of the method's cost
            bag.fit(arrays["x_train"], arrays["y_train"])
            return DataOOBValuation(bag)
        raise SystemExit(f"unknown method {name}")

    for name in job["methods"]:
        c0, w0 = time.process_time(), time.perf_counter()
        with parallel_config(n_jobs=1):
            valuation = make(name).fit(train)
        cpu, wall = time.process_time() - c0, time.perf_counter() - w0
        result = valuation.result
        values = np.zeros(len(train))
        values[np.asarray(result.indices)] = np.asarray(result.values)
        out[name] = {"cpu_seconds": cpu, "wall_seconds": wall, "values": values.tolist()}
    with open(job["out"], "w") as fh:
        json.dump(out, fh)


if __name__ == "__main__":
    main()
