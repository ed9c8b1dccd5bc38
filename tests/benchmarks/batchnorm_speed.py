"""Time the staged batch-norm backward pass against the compact one and print the ratio.

    OPENBLAS_NUM_THREADS=1 .venv/bin/python tests/benchmarks/batchnorm_speed.py

For each size, both backward passes run on the same cache; each figure is the best of
``--repeat`` timings of ``number`` calls (the best run is the one least disturbed by the rest
of the machine). Chapter 4 quotes no digits from this: the ratio depends on the machine and on
its load; what holds everywhere is that the compact form makes fewer passes over (N, D) arrays.
"""

from __future__ import annotations

import argparse
import timeit

import numpy as np

from stablegrad.normalization import batchnorm_backward, batchnorm_backward_compact, batchnorm_forward

SIZES = ((32, 64), (128, 256), (512, 256), (1024, 256), (2048, 512))


def best_seconds_per_call(fn, repeat: int, elements: int) -> float:
    number = max(1, int(2e6 // elements))  # about 2 million elements processed per timing
    return min(timeit.repeat(fn, number=number, repeat=repeat)) / number


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=7, help="timings per size and form (best is kept)")
    args = parser.parse_args()

    rng = np.random.default_rng(0)
    print(f"| {'N':>5} | {'D':>4} | {'staged (us)':>11} | {'compact (us)':>12} | {'staged/compact':>14} |")
    print(f"|{'-' * 7}|{'-' * 6}|{'-' * 13}|{'-' * 14}|{'-' * 16}|")
    for n, d in SIZES:
        x = 5 * rng.standard_normal((n, d)) + 12
        gamma, beta = rng.uniform(0.5, 2.0, d), rng.standard_normal(d)
        dout = rng.standard_normal((n, d))
        _, cache, _ = batchnorm_forward(x, gamma, beta)
        staged = best_seconds_per_call(lambda: batchnorm_backward(dout, cache), args.repeat, n * d)
        compact = best_seconds_per_call(lambda: batchnorm_backward_compact(dout, cache), args.repeat, n * d)
        print(f"| {n:5d} | {d:4d} | {staged * 1e6:11.1f} | {compact * 1e6:12.1f} | {staged / compact:14.2f} |")


if __name__ == "__main__":
    main()
