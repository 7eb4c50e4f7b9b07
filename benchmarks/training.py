"""Training throughput: ``databright.ml.train`` against a plain torch loop, in the same run.

Both train the network of ``benchmarks/specs/digits_mlp.json`` (built the same way, from the
same seed) on the same training examples of scikit-learn's digits (64 features, 10 classes),
for the same epochs and batch size, with the same optimiser, on one thread. ``train`` also does
what the market needs and the plain loop does not: checks the data, splits off and scores a
hold-out after every epoch, pins determinism, and writes the checkpoint. The figure is
training examples per second (epochs x training examples / wall time), the median of a few
repetitions.

    .venv/bin/python benchmarks/training.py [--repeats 5] [--spec FILE]
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")

import numpy as np
import torch
from sklearn.datasets import load_digits

from databright.ml.spec import ModelSpec
from databright.ml.train import train

SPEC = Path(__file__).parent / "specs" / "digits_mlp.json"


def plain_loop(spec: ModelSpec, x: np.ndarray, y: np.ndarray) -> float:
    """The loop a torch user would write: seconds to train ``spec`` on all of ``x``."""
    torch.set_num_threads(1)
    torch.manual_seed(spec.seed)
    started = time.perf_counter()
    module = spec.build()
    optimizer = spec.optimizer.build(module.parameters())
    loss_fn = torch.nn.CrossEntropyLoss()
    xt = torch.from_numpy(x)
    yt = torch.from_numpy(y)
    generator = torch.Generator().manual_seed(spec.seed)
    module.train()
    for _ in range(spec.epochs):
        perm = torch.randperm(len(xt), generator=generator)
        for start in range(0, len(xt), spec.batch_size):
            idx = perm[start : start + spec.batch_size]
            optimizer.zero_grad()
            loss = loss_fn(module(xt[idx]), yt[idx])
            loss.backward()
            optimizer.step()
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--spec", type=Path, default=SPEC)
    args = parser.parse_args()

    spec = ModelSpec.from_json(args.spec.read_bytes())
    x, y = load_digits(return_X_y=True)
    x = (x / 16.0).astype(np.float32)
    y = y.astype(np.int64)

    first = train(spec, x, y)  # warm-up, and the size of the split train() trains on
    n_train = int(first.metrics["train_examples"])
    rng = np.random.default_rng(0)
    idx = rng.permutation(len(x))[:n_train]
    x_plain, y_plain = np.ascontiguousarray(x[idx]), y[idx]
    plain_loop(spec, x_plain, y_plain)  # warm-up

    ours, theirs = [], []
    for _ in range(args.repeats):
        started = time.perf_counter()
        result = train(spec, x, y)
        ours.append(time.perf_counter() - started)
        theirs.append(plain_loop(spec, x_plain, y_plain))
        assert result.checkpoint == first.checkpoint  # deterministic, every repetition

    work = spec.epochs * n_train
    ours_rate = work / statistics.median(ours)
    plain_rate = work / statistics.median(theirs)
    print(
        f"digits: {len(x)} examples ({n_train} trained on, {len(x) - n_train} held out), "
        f"{spec.parameter_count:,} parameters, {spec.epochs} epochs, batch {spec.batch_size}, "
        f"{args.repeats} repetitions, 1 thread"
    )
    print(f"{'':28} {'examples/s':>12} {'seconds':>9}")
    print(f"{'plain torch loop':28} {plain_rate:12,.0f} {statistics.median(theirs):9.3f}")
    print(f"{'databright.ml.train':28} {ours_rate:12,.0f} {statistics.median(ours):9.3f}")
    print(f"ratio train/plain: {ours_rate / plain_rate:.2f}")
    print(
        f"hold-out accuracy {first.metrics['holdout_accuracy']:.4f}, "
        f"checkpoint {len(first.checkpoint):,} bytes, identical in all {args.repeats + 1} runs"
    )


if __name__ == "__main__":
    main()
