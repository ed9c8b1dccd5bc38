"""Time three hot paths of the package against plain NumPy and, when it is installed, PyTorch (CPU).

    OPENBLAS_NUM_THREADS=1 .venv/bin/python tests/benchmarks/package_speed.py
    OPENBLAS_NUM_THREADS=1 PYTHONPATH=src /path/to/venv-with-torch/bin/python tests/benchmarks/package_speed.py

1. one SGD step of a 784-512-512-512-10 ReLU MLP (float32, batch 128, softmax cross-entropy) through
   :func:`stablegrad.network.train`, per-step statistics included;
2. :func:`stablegrad.clipping.clip_by_global_norm` on 25M float32 parameters (the norm is above the
   threshold, so every array is rescaled);
3. batch-norm forward and compact backward, training mode, on (8192, 1024) float32.

Everything runs on one thread (the course's configuration; torch is told ``set_num_threads(1)``). Each
figure is the best of ``--repeat`` timings: the run least disturbed by the rest of the machine. The
"numpy" column is written here by hand, as short as NumPy allows, with none of the package's checks,
records or copies: the floor for a NumPy implementation. The package is not asked to reach it; the targets
(issue 11) are against torch: MLP step <= 1.3x, global-norm clipping <= 2.5x, batch norm <= 2.5x.
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from stablegrad.clipping import clip_by_global_norm
from stablegrad.network import init_mlp, train
from stablegrad.normalization import batchnorm_backward_compact, batchnorm_forward
from stablegrad.optim import SGD

try:
    import torch
except ImportError:  # the course's environment has no torch: the ratios against NumPy are still printed
    torch = None

SIZES = (784, 512, 512, 512, 10)
BATCH, STEPS = 128, 8
CLIP_SHAPES = ((4096, 4096), (4096,), (2048, 4096), (2048,), (10, 2048), (10,))  # 25.2M parameters
BN_SHAPE = (8192, 1024)


def best(fn, repeat: int) -> float:
    """Seconds of the fastest of ``repeat`` calls (after one warm-up call)."""
    fn()
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


# --------------------------------------------------------------------------- 1. MLP step

def mlp_case(rng):
    X = rng.standard_normal((BATCH * STEPS, SIZES[0]), dtype=np.float32)
    y = rng.integers(0, SIZES[-1], BATCH * STEPS)
    model = init_mlp(SIZES, "relu", "identity", "he_normal", rng, dtype=np.float32)
    return X, y, model


def mlp_stablegrad(X, y, model):
    # one epoch of STEPS steps, no shuffling (the same batches as the other two)
    return lambda: train(model, X, y, loss="softmax_cross_entropy", optimizer=SGD(lr=0.01), epochs=1,
                         rng=np.random.default_rng(0), batch_size=BATCH, shuffle=False)


def mlp_numpy(X, y, model):
    Ws = [model.params[f"W{l}"].copy() for l in range(1, len(SIZES))]
    bs = [model.params[f"b{l}"].copy() for l in range(1, len(SIZES))]
    onehot = np.eye(SIZES[-1], dtype=np.float32)[y]

    def epoch():
        for start in range(0, X.shape[0], BATCH):
            h, hs = X[start:start + BATCH], []
            for l, (W, b) in enumerate(zip(Ws, bs)):
                hs.append(h)
                h = h @ W + b
                if l < len(Ws) - 1:
                    np.maximum(h, 0, out=h)
            e = np.exp(h - h.max(axis=1, keepdims=True))
            d = (e / e.sum(axis=1, keepdims=True) - onehot[start:start + BATCH]) / np.float32(BATCH)
            for l in range(len(Ws) - 1, -1, -1):
                dW, db = hs[l].T @ d, d.sum(axis=0)
                if l:
                    d = d @ Ws[l].T
                    d *= hs[l] > 0
                Ws[l] -= np.float32(0.01) * dW
                bs[l] -= np.float32(0.01) * db
    return epoch


def mlp_torch(X, y, model):
    layers = []
    for l in range(1, len(SIZES)):
        lin = torch.nn.Linear(SIZES[l - 1], SIZES[l])
        with torch.no_grad():
            lin.weight.copy_(torch.from_numpy(model.params[f"W{l}"].T.copy()))
            lin.bias.zero_()
        layers += [lin, torch.nn.ReLU()] if l < len(SIZES) - 1 else [lin]
    net = torch.nn.Sequential(*layers)
    opt = torch.optim.SGD(net.parameters(), lr=0.01)
    Xt, yt = torch.from_numpy(X), torch.from_numpy(y)

    def epoch():
        for start in range(0, X.shape[0], BATCH):
            opt.zero_grad()
            loss = torch.nn.functional.cross_entropy(net(Xt[start:start + BATCH]), yt[start:start + BATCH])
            loss.backward()
            opt.step()
    return epoch


# --------------------------------------------------------------------------- 2. global-norm clipping

def clip_case(rng):
    return ([rng.standard_normal(shape, dtype=np.float32) for shape in CLIP_SHAPES],)


def clip_stablegrad(grads):
    return lambda: clip_by_global_norm(grads, 1.0)


def clip_numpy(grads):
    # float32 sums of squares (no overflow guard) and new arrays, as the package returns
    def clip():
        norm = np.sqrt(sum(float(np.vdot(g, g)) for g in grads))
        factor = np.float32(min(1.0, 1.0 / norm))
        return [g * factor for g in grads], norm
    return clip


def clip_torch(grads):
    params = [torch.nn.Parameter(torch.empty(g.shape)) for g in grads]
    for p, g in zip(params, grads):
        p.grad = torch.from_numpy(g.copy())
    # rescales the .grad tensors in place; each call makes them smaller, which costs the same
    return lambda: torch.nn.utils.clip_grad_norm_(params, 1.0)


# --------------------------------------------------------------------------- 3. batch norm

def bn_case(rng):
    x = (5 * rng.standard_normal(BN_SHAPE, dtype=np.float32) + 12).astype(np.float32)
    gamma = rng.uniform(0.5, 2.0, BN_SHAPE[1]).astype(np.float32)
    beta = rng.standard_normal(BN_SHAPE[1], dtype=np.float32)
    dout = rng.standard_normal(BN_SHAPE, dtype=np.float32)
    return x, gamma, beta, dout


def bn_stablegrad(x, gamma, beta, dout):
    def step():
        out, cache, _ = batchnorm_forward(x, gamma, beta)
        return out, batchnorm_backward_compact(dout, cache)
    return step


def bn_numpy(x, gamma, beta, dout):
    n = x.shape[0]

    def step():
        mean = x.mean(axis=0)
        xhat = x - mean
        inv_std = 1.0 / np.sqrt(np.einsum("ij,ij->j", xhat, xhat) / n + 1e-5)
        xhat *= inv_std
        out = gamma * xhat + beta
        dbeta, dgamma = dout.sum(axis=0), np.einsum("ij,ij->j", dout, xhat)
        dx = (gamma * inv_std / n) * (n * dout - dbeta - xhat * dgamma)
        return out, dx, dgamma, dbeta
    return step


def bn_torch(x, gamma, beta, dout):
    xt = torch.from_numpy(x).requires_grad_()
    gt, bt = torch.from_numpy(gamma).requires_grad_(), torch.from_numpy(beta).requires_grad_()
    dt = torch.from_numpy(dout)

    def step():
        out = torch.nn.functional.batch_norm(xt, None, None, gt, bt, training=True, eps=1e-5)
        return torch.autograd.grad(out, (xt, gt, bt), dt)
    return step


CASES = (
    ("MLP step (train)", mlp_case, mlp_stablegrad, mlp_numpy, mlp_torch, STEPS, 1.3),
    ("global-norm clip", clip_case, clip_stablegrad, clip_numpy, clip_torch, 1, 2.5),
    ("batch norm fwd+bwd", bn_case, bn_stablegrad, bn_numpy, bn_torch, 1, 2.5),
)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=7, help="timings per figure (the best is kept)")
    args = parser.parse_args()
    if torch is not None:
        torch.set_num_threads(1)

    print(f"| {'case':<20} | {'stablegrad (ms)':>15} | {'numpy (ms)':>10} | {'torch (ms)':>10} "
          f"| {'/numpy':>6} | {'/torch':>6} | {'target':>6} |")
    print(f"|{'-' * 22}|{'-' * 17}|{'-' * 12}|{'-' * 12}|{'-' * 8}|{'-' * 8}|{'-' * 8}|")
    for name, case, ours, plain, theirs, per, target in CASES:
        data = case(np.random.default_rng(0))
        t_ours = best(ours(*data), args.repeat) / per
        t_plain = best(plain(*data), args.repeat) / per
        t_torch = best(theirs(*data), args.repeat) / per if torch is not None else float("nan")
        print(f"| {name:<20} | {t_ours * 1e3:15.2f} | {t_plain * 1e3:10.2f} | {t_torch * 1e3:10.2f} "
              f"| {t_ours / t_plain:6.2f} | {t_ours / t_torch:6.2f} | {target:6.1f} |")


if __name__ == "__main__":
    main()
