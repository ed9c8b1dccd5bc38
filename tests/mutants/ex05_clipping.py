"""Wrong submissions for ex05_clipping; each must lose exactly the points of its cell.

The common mistakes come from ``stablegrad.checking.clipping``'s declarations (each one
an edit of the learner-style source the diagnosis compiles), so the diagnosis and the
grading tests cannot drift apart. The extras below: delegation to the reference by every
route, a mistake only the hidden tests catch, and submissions that tamper with the
checker (which the hidden tests' ``fresh()`` puts back).
"""

from grading import Mutant, from_mistakes

from stablegrad.checking import clipping as checks

CV, CN, GN, ST = "clip_by_value", "clip_by_norm", "clip_by_global_norm", "clipped_sgd_step"

WRONG_STEP = '''
def clipped_sgd_step(model, x, y, lr, max_norm):
    loss, grads, _ = network.mlp_loss_and_grads(model, x, y, "mse")
    norm = clipping.global_norm(grads)
    return model.with_params({k: p - lr * grads[k] for k, p in model.params.items()}), loss, norm
'''

MUTANTS = [
    # ------------------------------------------------------------------ clip_by_value (2 points)
    *from_mistakes(CV, checks.CLIP_BY_VALUE),
    Mutant(CV, "delegates: calls clipping.clip_by_value directly", '''
def clip_by_value(grads, limit):
    return clipping.clip_by_value(grads, limit)
'''),
    Mutant(CV, "delegates: the reference imported under the exercise's name", '''
from stablegrad.clipping import clip_by_value
'''),
    Mutant(CV, "delegates only for huge entries (hidden inputs)", checks.CLIP_BY_VALUE_SOURCE.replace(
        "    items = ", "    arrays = grads.values() if isinstance(grads, dict) else grads\n"
                       "    if all(np.all(np.isfinite(g)) for g in arrays) and any(np.abs(g).max() > 1e150 for g in arrays):\n"
                       "        return clipping.clip_by_value(grads, limit)\n    items = "), caught_by="hidden"),
    # ------------------------------------------------------------------ clip_by_norm (2 points)
    *from_mistakes(CN, checks.CLIP_BY_NORM),
    Mutant(CN, "delegates: through importlib.import_module", '''
import importlib

def clip_by_norm(g, max_norm):
    return importlib.import_module("stablegrad.clipping").clip_by_norm(g, max_norm)
'''),
    Mutant(CN, "delegates: clip_by_global_norm on a one-tensor list", '''
def clip_by_norm(g, max_norm):
    return clipping.clip_by_global_norm([g], max_norm)[0][0]
'''),
    # ------------------------------------------------------------------ clip_by_global_norm (3 points)
    *from_mistakes(GN, checks.CLIP_BY_GLOBAL_NORM),
    Mutant(GN, "delegates: through sys.modules", '''
import sys

def clip_by_global_norm(grads, max_norm):
    return sys.modules["stablegrad.clipping"].clip_by_global_norm(grads, max_norm)
'''),
    Mutant(GN, "delegates: global_norm from the package, then its own rescaling", '''
def clip_by_global_norm(grads, max_norm):
    norm = clipping.global_norm(grads)
    keys = list(grads) if isinstance(grads, dict) else list(range(len(grads)))
    eps = max(float(np.finfo(grads[k].dtype).eps) for k in keys)
    factor = 1.0 if norm <= max_norm * (1 + 8 * eps) else max_norm / norm
    out = [grads[k].copy() if factor == 1.0 else (grads[k] * factor).astype(grads[k].dtype) for k in keys]
    return (dict(zip(keys, out)) if isinstance(grads, dict) else out), norm
'''),
    Mutant(GN, "wrong answer, and the checker replaced by a no-op", '''
def clip_by_global_norm(grads, max_norm):
    keys = list(grads) if isinstance(grads, dict) else list(range(len(grads)))
    out = [grads[k] * 0.5 for k in keys]
    return (dict(zip(keys, out)) if isinstance(grads, dict) else out), 1.0

checks.check_clip_by_global_norm = lambda *args, **kwargs: None
''', caught_by="hidden"),
    # ------------------------------------------------------------------ clipped_sgd_step (3 points)
    *from_mistakes(ST, checks.CLIPPED_SGD_STEP),
    Mutant(ST, "delegates: calls the checker's reference step", '''
def clipped_sgd_step(model, x, y, lr, max_norm):
    return checks.reference_clipped_sgd_step(model, x, y, lr, max_norm)
'''),
    Mutant(ST, "delegates: one epoch of network.train on the batch", '''
from stablegrad.optim import SGD

def clipped_sgd_step(model, x, y, lr, max_norm):
    loss, _, _ = network.mlp_loss_and_grads(model, x, y, "mse")
    _, grads, _ = network.mlp_loss_and_grads(model, x, y, "mse")
    norm = clipping.global_norm(grads)
    history = network.train(model, x, y, loss="mse", optimizer=SGD(lr=lr), epochs=1, batch_size=len(x),
                            shuffle=False, clip="global_norm", clip_threshold=max_norm,
                            rng=np.random.default_rng(0))
    return history.model, loss, norm
'''),
    Mutant(ST, "no clipping, and the checker replaced by a no-op", WRONG_STEP + '''
checks.check_clipped_sgd_step = lambda *args, **kwargs: None
''', caught_by="hidden"),
    # The hidden tests must see the learner's `except NonFiniteGradientError` catch the very class the
    # package raises (a module reload used to make a new class, which this except missed: 3/3 at grading).
    Mutant(ST, "skips the step on NonFiniteGradientError, and the checker replaced by a no-op", '''
def clipped_sgd_step(model, x, y, lr, max_norm):
    loss, grads, _ = network.mlp_loss_and_grads(model, x, y, "mse")
    try:
        clipped, norm_before = clipping.clip_by_global_norm(grads, max_norm)
    except NonFiniteGradientError:
        return model, loss, float("inf")
    return model.with_params({k: p - lr * clipped[k] for k, p in model.params.items()}), loss, norm_before

checks.check_clipped_sgd_step = lambda *args, **kwargs: None
''', caught_by="hidden"),
]
