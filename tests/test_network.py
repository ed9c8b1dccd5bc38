"""The MLP and its trainer: gradients against finite differences, training behaviour, history."""

import functools
import warnings

import numpy as np
import pytest

from stablegrad import init
from stablegrad.datasets import linear_regression, synthetic_classification, two_moons
from stablegrad.gradcheck import check_gradient
from stablegrad.network import (
    MLP, History, evaluate, init_mlp, mlp_backward, mlp_forward, mlp_loss_and_grads, predict, train,
)
from stablegrad.normalization import RunningStats
from stablegrad.optim import SGD, Adam, RMSprop

# float64 centered differences (eps = 1e-6) reproduce a correct backward pass to ~1e-9;
# the course-wide bar is a max relative error of 1e-7 (gradcheck compares each entry with
# its own size, floored at a tenth of the largest entry: see stablegrad.gradcheck).
TOL = 1e-7


def _gradcheck_params(model, x, y, loss, l2=0.0):
    """Check every parameter's gradient; return the worst relative error."""
    _, grads, _ = mlp_loss_and_grads(model, x, y, loss, l2=l2)
    assert list(grads) == list(model.params)
    worst = 0.0
    for key, value in model.params.items():
        def f(v, key=key):
            params = dict(model.params)
            params[key] = v
            return mlp_loss_and_grads(model.with_params(params), x, y, loss, l2=l2)[0]
        result = check_gradient(f, value, grads[key], tol=TOL)
        assert result.passed, f"{key}: relative error {result.max_rel_error:.2e} at {result.worst_index}"
        worst = max(worst, result.max_rel_error)
    return worst


CASES = [
    # sizes, hidden, output activation, loss, targets
    ([3, 5, 4, 1], "tanh", "identity", "mse", "regression"),
    ([3, 5, 4, 1], "sigmoid", "sigmoid", "bce", "binary"),
    ([3, 6, 2], "leaky_relu", "sigmoid", "mse", "regression01"),
    ([3, 5, 1], "relu", "identity", "bce_with_logits", "binary"),
    ([3, 5, 4, 3], "tanh", "identity", "cross_entropy", "multiclass"),
    ([3, 4, 2], "tanh", "identity", "mse", "regression"),
]


def _targets(kind, n, m, rng):
    if kind == "regression":
        return rng.normal(size=(n, m))
    if kind == "regression01":
        return rng.uniform(size=(n, m))
    if kind == "binary":
        return rng.integers(0, 2, size=n)
    return rng.integers(0, m, size=n)


@pytest.mark.parametrize("batchnorm", [False, True], ids=["plain", "batchnorm"])
@pytest.mark.parametrize("sizes, hidden, out, loss, kind", CASES, ids=[c[3] + "-" + c[1] for c in CASES])
def test_whole_mlp_backward_matches_finite_differences(rng, sizes, hidden, out, loss, kind, batchnorm):
    model = init_mlp(sizes, hidden, out, "xavier_normal", rng, batchnorm=batchnorm)
    if batchnorm:  # move gamma and beta away from 1 and 0 so that their gradients are generic
        params = dict(model.params)
        for k in params:
            if k.startswith(("gamma", "beta")):
                params[k] = params[k] + 0.3 * rng.normal(size=params[k].shape)
        model = model.with_params(params)
    x = rng.normal(size=(6, sizes[0]))
    y = _targets(kind, 6, sizes[-1], rng)
    assert _gradcheck_params(model, x, y, loss) <= TOL


def test_l2_penalty_gradient_matches_finite_differences(rng):
    model = init_mlp([3, 4, 1], "tanh", "identity", "xavier_normal", rng)
    x, y = rng.normal(size=(5, 3)), rng.normal(size=(5, 1))
    _gradcheck_params(model, x, y, "mse", l2=0.05)
    value, grads, _ = mlp_loss_and_grads(model, x, y, "mse", l2=0.05)
    plain, plain_grads, _ = mlp_loss_and_grads(model, x, y, "mse")
    penalty = 0.05 * sum(np.sum(model.params[k] ** 2) for k in ("W1", "W2"))
    assert value == pytest.approx(plain + penalty, rel=1e-12)  # Keras convention: no 1/2
    np.testing.assert_array_equal(grads["b1"], plain_grads["b1"])  # biases are not penalized


@pytest.mark.parametrize("batchnorm", [False, True])
def test_input_gradient_matches_finite_differences(rng, batchnorm):
    model = init_mlp([4, 6, 5, 2], "tanh", "tanh", "xavier_normal", rng, batchnorm=batchnorm)
    x = rng.normal(size=(5, 4))
    out, cache = mlp_forward(model, x)
    dout = rng.normal(size=out.shape)
    dx, _ = mlp_backward(dout, cache)
    f = lambda v: np.sum(mlp_forward(model, v)[0] * dout)  # noqa: E731
    result = check_gradient(f, x, dx, tol=TOL)
    assert result.passed, result.max_rel_error


def test_gradcheck_catches_a_backward_that_is_off_by_a_tenth_of_a_percent(rng):
    model = init_mlp([3, 4, 1], "tanh", "identity", "xavier_normal", rng)
    x, y = rng.normal(size=(5, 3)), rng.normal(size=(5, 1))
    _, grads, _ = mlp_loss_and_grads(model, x, y, "mse")

    def f(v):
        return mlp_loss_and_grads(model.with_params({**model.params, "W1": v}), x, y, "mse")[0]

    assert check_gradient(f, model.params["W1"], grads["W1"], tol=TOL).passed
    assert not check_gradient(f, model.params["W1"], grads["W1"] * 1.001, tol=TOL).passed


# --------------------------------------------------------------------------- the model

def test_init_mlp_layout_and_initializers(rng):
    model = init_mlp([2, 10, 10, 5, 1], "sigmoid", "sigmoid", "uniform", rng)
    assert isinstance(model, MLP) and model.n_layers == 4
    assert list(model.params) == ["W1", "b1", "W2", "b2", "W3", "b3", "W4", "b4"]
    assert model.activations == ("sigmoid",) * 4 and model.weight_keys == ("W1", "W2", "W3", "W4")
    assert all(np.all(np.abs(model.params[k]) <= 1) for k in model.weight_keys)
    assert all(np.all(model.params[f"b{l}"] == 0) for l in range(1, 5))
    u45 = init_mlp([15, 35, 1], "relu", "identity", functools.partial(init.uniform, low=4.0, high=5.0), rng)
    assert u45.params["W1"].min() >= 4 and u45.params["W2"].max() <= 5
    bn = init_mlp([3, 4, 4, 2], ["relu", "tanh"], "identity", ["he_normal", "xavier_normal", "xavier_uniform"],
                  rng, batchnorm=True)
    assert list(bn.params) == ["W1", "gamma1", "beta1", "W2", "gamma2", "beta2", "W3", "b3"]
    assert bn.activations == ("relu", "tanh", "identity") and len(bn.running) == 2
    assert isinstance(bn.running[0], RunningStats)
    assert "batchnorm=True" in repr(bn) and bn.n_params == 12 + 8 + 16 + 8 + 8 + 2


def test_init_mlp_is_seeded():
    a = init_mlp([4, 8, 1], "relu", "identity", "he_normal", np.random.default_rng(1))
    b = init_mlp([4, 8, 1], "relu", "identity", "he_normal", np.random.default_rng(1))
    for k in a.params:
        np.testing.assert_array_equal(a.params[k], b.params[k])


def test_forward_cache_and_modes(rng):
    model = init_mlp([3, 8, 8, 2], "relu", "identity", "he_normal", rng, batchnorm=True)
    x = 5.0 + 3.0 * rng.normal(size=(32, 3))
    out, cache = mlp_forward(model, x, train=True)
    assert out.shape == (32, 2) and len(cache.activations) == 3
    z1 = cache.pre_activations[0]
    np.testing.assert_allclose(z1.mean(axis=0), 0.0, atol=1e-12)  # batch norm in train mode
    np.testing.assert_allclose(z1.var(axis=0), 1.0, atol=1e-3)
    assert not np.allclose(cache.running[0].mean, 0.0)  # running statistics moved ...
    np.testing.assert_array_equal(model.running[0].mean, 0.0)  # ... in the cache, not in the model
    out_eval, cache_eval = mlp_forward(model, x, train=False)
    assert not np.allclose(out_eval, out)  # inference uses the running statistics
    np.testing.assert_array_equal(cache_eval.running[0].mean, model.running[0].mean)
    np.testing.assert_array_equal(predict(model, x), out_eval)


def test_float32_model(rng):
    model = init_mlp([2, 8, 1], "relu", "sigmoid", "he_normal", rng, dtype=np.float32)
    X, y = two_moons(64, 0.2, rng)
    history = train(model, X.astype(np.float32), y, loss="bce", optimizer=Adam(0.01), epochs=2, rng=rng)
    assert all(p.dtype == np.float32 for p in history.model.params.values())
    assert predict(history.model, X.astype(np.float32)).dtype == np.float32


# --------------------------------------------------------------------------- training

@pytest.fixture(scope="module")
def moons():
    return two_moons(600, 0.25, np.random.default_rng(0))


def test_training_learns_two_moons_and_history_has_the_documented_shapes(moons):
    X, y = moons
    rng = np.random.default_rng(1)
    model = init_mlp([2, 16, 16, 1], "relu", "sigmoid", "he_normal", rng)
    params_before = {k: v.copy() for k, v in model.params.items()}
    opt = Adam(lr=0.01)
    h = train(model, X, y, loss="bce", optimizer=opt, epochs=15, batch_size=32, rng=rng,
              validation_data=(X[:100], y[:100]), record_activations=True, record_update_ratio=True)
    assert isinstance(h, History) and not h.diverged and h.epochs == 15 and h.steps == 15 * 19
    assert h.accuracy[-1] > 0.85 and h.loss[-1] < h.loss[0]
    assert h.val_loss.shape == h.val_accuracy.shape == (15,)
    for arr in (h.grad_mean_abs, h.grad_norm, h.activation_mean, h.activation_std, h.saturated, h.update_ratio):
        assert arr.shape == (15, 3) and arr.dtype == np.float64
    assert h.step_grad_norm.shape == h.step_grad_mean_abs.shape == (h.steps, 3)
    assert np.all((h.saturated >= 0) & (h.saturated <= 1)) and np.all(h.update_ratio > 0)
    assert h.layer_names == ("layer 1", "layer 2", "layer 3")
    # per-epoch statistics are the means of the per-step ones
    np.testing.assert_allclose(h.grad_norm[0], h.step_grad_norm[:19].mean(axis=0), rtol=1e-12)
    # the global norm includes the biases, so it is at least the weights' norm
    assert np.all(h.step_global_norm >= np.sqrt((h.step_grad_norm ** 2).sum(axis=1)) * (1 - 1e-12))
    # nothing the caller passed was modified
    for k, v in params_before.items():
        np.testing.assert_array_equal(model.params[k], v)
    assert opt.t == 0
    assert evaluate(h.model, X, y, "bce")[1] > 0.85
    assert "epochs=15" in repr(h)


def test_same_seed_gives_an_identical_history(moons):
    X, y = moons

    def run(seed):
        rng = np.random.default_rng(seed)
        model = init_mlp([2, 8, 8, 1], "tanh", "sigmoid", "xavier_uniform", rng)
        return train(model, X, y, loss="bce", optimizer=RMSprop(), epochs=3, rng=rng)

    a, b, c = run(5), run(5), run(6)
    for field in ("loss", "accuracy", "grad_mean_abs", "grad_norm", "step_loss", "step_global_norm"):
        np.testing.assert_array_equal(getattr(a, field), getattr(b, field))
    for k in a.model.params:
        np.testing.assert_array_equal(a.model.params[k], b.model.params[k])
    assert not np.array_equal(a.step_loss, c.step_loss)


def test_vanishing_gradients_in_the_sigmoid_network_of_chapter_2(moons):
    X, y = moons
    rng = np.random.default_rng(0)
    model = init_mlp([2, 10, 10, 5, 1], "sigmoid", "sigmoid", "uniform", rng)
    h = train(model, X, y, loss="bce", optimizer=RMSprop(), epochs=5, rng=rng)
    g = h.grad_mean_abs.mean(axis=0)
    assert g[0] < g[-1] / 10  # the first layer gets a small fraction of the last layer's gradient


def _exploding_setup(n=300):
    rng = np.random.default_rng(0)
    X, y, _ = linear_regression(n, 15, 0.2, rng)
    u45 = functools.partial(init.uniform, low=4.0, high=5.0)
    return X, y, init_mlp([15, 35, 1], "relu", "identity", u45, rng)


def test_divergence_is_detected_and_stops_cleanly():
    X, y, model = _exploding_setup()
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # overflow is expected: it must not leak as a warning
        h = train(model, X, y, loss="mse", optimizer=SGD(0.01), epochs=20, rng=np.random.default_rng(1))
    d = h.diverged_at
    assert h.diverged and d.reason == "loss" and d.epoch == 0 and not np.isfinite(d.loss)
    assert h.steps == d.step + 1 and not np.isfinite(h.step_loss[-1])
    assert np.all(np.isfinite(h.step_loss[:-1])) and np.all(np.diff(h.step_loss[:-1]) > 0)  # it blew up
    assert np.all(np.isfinite(h.step_grad_norm[:-1])) and np.all(np.isnan(h.step_grad_norm[-1]))
    assert h.epochs == 0 and h.loss.shape == (0,) and h.grad_norm.shape == (0, 2)
    assert h.accuracy is None  # regression
    assert "diverged at epoch 0" in repr(h)
    # the model kept is the last one whose loss was finite
    assert all(np.all(np.isfinite(p)) for p in h.model.params.values())
    assert np.isfinite(mlp_loss_and_grads(h.model, X[:5], y[:5], "mse")[0])


def test_clipping_prevents_the_divergence():
    X, y, model = _exploding_setup()
    for clip, t in [("value", 50.0), ("norm", 50.0), ("global_norm", 50.0)]:
        h = train(model, X, y, loss="mse", optimizer=SGD(0.01), epochs=10, rng=np.random.default_rng(1),
                  clip=clip, clip_threshold=t)
        assert not h.diverged, clip
        assert h.loss[-1] < h.loss[0] / 1000, clip
        # the recorded gradients are the raw ones, before clipping
        assert h.step_grad_norm[0, 1] > t


def test_glorot_tanh_fix_trains_without_clipping():
    X, y, _ = _exploding_setup()
    rng = np.random.default_rng(2)
    model = init_mlp([15, 35, 1], "tanh", "identity", "xavier_normal", rng)
    h = train(model, X, y, loss="mse", optimizer=SGD(0.01), epochs=20, rng=rng)
    assert not h.diverged and h.loss[-1] < 0.1 * h.loss[0]


def test_a_non_finite_gradient_with_a_finite_loss_is_detected():
    # out = 1e200 * 1e-47 = 1e153, loss ~ 1e306 (finite), dW = x^T dout ~ 1e200 * 1e153 = inf
    X = np.full((2, 1), 1e200)
    y = np.zeros(2)
    model = init_mlp([1, 1], "relu", "identity", lambda fi, fo, rng: np.full((fi, fo), 1e-47),
                     np.random.default_rng(0))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        h = train(model, X, y, loss="mse", optimizer=SGD(), epochs=1, rng=np.random.default_rng(0))
    assert h.diverged_at.reason == "gradient" and np.isfinite(h.diverged_at.loss)
    assert h.step_grad_norm[-1, 0] == np.inf
    np.testing.assert_array_equal(h.model.params["W1"], model.params["W1"])  # never stepped


def test_softmax_classification(rng):
    X, y = synthetic_classification(300, 4, 3, rng, separation=3.0)
    model = init_mlp([4, 16, 3], "relu", "identity", "he_normal", rng)
    h = train(model, X, y, loss="cross_entropy", optimizer=Adam(0.01), epochs=10, rng=rng)
    assert h.accuracy[-1] > 0.9
    loss, acc = evaluate(h.model, X, y, "softmax_cross_entropy")
    assert acc > 0.9 and loss < h.loss[0]


def test_deep_relu_net_with_batchnorm_trains(rng):
    X, y = synthetic_classification(256, 8, 2, rng)
    model = init_mlp([8] + [32] * 10 + [1], "relu", "sigmoid", "he_normal", rng, batchnorm=True)
    h = train(model, X, y, loss="bce", optimizer=Adam(0.005), epochs=5, batch_size=64, rng=rng)
    assert not h.diverged and h.loss[-1] < h.loss[0]
    assert h.grad_norm.shape == (5, 11)
    assert not np.allclose(h.model.running[0].mean, 0.0)  # running statistics were learned
    assert np.isfinite(evaluate(h.model, X, y, "bce")[0])


def test_no_shuffle_uses_no_randomness(moons):
    X, y = moons
    model = init_mlp([2, 4, 1], "tanh", "sigmoid", "xavier_uniform", np.random.default_rng(0))
    rng = np.random.default_rng(3)
    state = rng.bit_generator.state
    train(model, X, y, loss="bce", optimizer="sgd", epochs=1, rng=rng, shuffle=False)
    assert rng.bit_generator.state == state


@pytest.mark.parametrize("kwargs, exc, words", [
    (dict(loss="hinge"), ValueError, "loss must be one of"),
    (dict(loss="bce_with_logits"), ValueError, "output_activation must be 'identity'"),
    (dict(loss="cross_entropy"), ValueError, "output_activation must be 'identity'"),
    (dict(clip="value"), ValueError, "clip_threshold is required"),
    (dict(clip_threshold=1.0), ValueError, "clip is None"),
    (dict(clip="norms", clip_threshold=1.0), ValueError, "clip must be one of"),
    (dict(clip="value", clip_threshold=-1.0), ValueError, "clip_threshold"),
    (dict(epochs=0), ValueError, "epochs must be >= 1"),
    (dict(batch_size=2.5), TypeError, "batch_size must be an integer"),
    (dict(optimizer="lbfgs"), ValueError, "train: optimizer must be one of"),
    (dict(optimizer=0.1), TypeError, "train: optimizer must be a string"),
    (dict(rng=0), TypeError, "rng must be a numpy.random.Generator"),
    (dict(l2=-0.1), ValueError, "l2"),
    (dict(shuffle=1), TypeError, "shuffle"),
    (dict(validation_data=np.zeros((3, 2))), TypeError, "validation_data"),
])
def test_train_names_bad_arguments(moons, kwargs, exc, words):
    X, y = moons
    model = init_mlp([2, 4, 1], "tanh", "sigmoid", "xavier_uniform", np.random.default_rng(0))
    args = dict(loss="bce", optimizer="sgd", epochs=1, rng=np.random.default_rng(0))
    args.update(kwargs)
    with pytest.raises(exc, match=words):
        train(model, X, y, **args)


def test_train_checks_data_shapes(rng):
    model = init_mlp([2, 4, 1], "tanh", "sigmoid", "xavier_uniform", rng)
    common = dict(loss="bce", optimizer="sgd", epochs=1, rng=rng)
    with pytest.raises(ValueError, match=r"X must have shape \(N, D_0\) with D_0 = 2"):
        train(model, np.zeros((4, 3)), np.zeros(4), **common)
    with pytest.raises(ValueError, match=r"y must have shape \(N, D_L\) = \(4, 1\)"):
        train(model, np.zeros((4, 2)), np.zeros(5), **common)
    with pytest.raises(ValueError, match=r"y must hold targets in \[0, 1\]"):
        train(model, np.zeros((4, 2)), np.array([0, 1, 2, 1]), **common)
    with pytest.raises(TypeError, match="model must be an MLP"):
        train({"W1": np.zeros((2, 1))}, np.zeros((4, 2)), np.zeros(4), **common)
    bn = init_mlp([2, 4, 1], "relu", "sigmoid", "he_normal", rng, batchnorm=True)
    with pytest.raises(ValueError, match="batch of 1"):
        train(bn, np.zeros((33, 2)), np.zeros(33), **common)
    with pytest.raises(ValueError, match="needs at least 2 outputs"):
        train(init_mlp([2, 1], "relu", "identity", "he_normal", rng), np.zeros((4, 2)), np.zeros(4),
              loss="cross_entropy", optimizer="sgd", epochs=1, rng=rng)


@pytest.mark.parametrize("call, exc, words", [
    (lambda r: init_mlp([3], "relu", "identity", "he_normal", r), ValueError, "at least an input and an output"),
    (lambda r: init_mlp("3,1", "relu", "identity", "he_normal", r), TypeError, "sizes must be a sequence"),
    (lambda r: init_mlp([3, 0, 1], "relu", "identity", "he_normal", r), ValueError, r"sizes\[1\] must be >= 1"),
    (lambda r: init_mlp([3, 4, 1], "swish", "identity", "he_normal", r), ValueError, "activation must be one of"),
    (lambda r: init_mlp([3, 4, 1], ["relu", "tanh"], "identity", "he_normal", r), ValueError,
     "list of 1"),
    (lambda r: init_mlp([3, 4, 1], "relu", "softmax", "he_normal", r), ValueError, "output_activation"),
    (lambda r: init_mlp([3, 4, 1], "relu", "identity", "lecun", r), ValueError, "init"),
    (lambda r: init_mlp([3, 4, 1], "relu", "identity", lambda fi, fo, g: np.zeros((fo, fi)), r), ValueError,
     r"init must return shape \(fan_in, fan_out\) = \(3, 4\)"),
    (lambda r: init_mlp([3, 4, 1], "relu", "identity", "he_normal", None), TypeError, "rng"),
    (lambda r: init_mlp([3, 4, 1], "relu", "identity", "he_normal", r, batchnorm=1), TypeError, "batchnorm"),
    (lambda r: init_mlp([3, 4, 1], "relu", "identity", "he_normal", r, dtype=np.int32), TypeError, "dtype"),
])
def test_init_mlp_names_bad_arguments(rng, call, exc, words):
    with pytest.raises(exc, match=words):
        call(rng)


def test_forward_backward_validation(rng):
    model = init_mlp([3, 4, 2], "relu", "identity", "he_normal", rng)
    with pytest.raises(ValueError, match=r"x must have shape \(N, D_0\) with D_0 = 3"):
        mlp_forward(model, np.zeros((5, 4)))
    out, cache = mlp_forward(model, rng.normal(size=(5, 3)))
    with pytest.raises(ValueError, match=r"dout must have the shape of the network's output"):
        mlp_backward(np.zeros((5, 3)), cache)
    with pytest.raises(TypeError, match="cache must be the MLPCache"):
        mlp_backward(out, (1, 2))
    with pytest.raises(ValueError, match="params must have the keys"):
        model.with_params({"W1": model.params["W1"]})
    bn = init_mlp([3, 4, 2], "relu", "identity", "he_normal", rng, batchnorm=True)
    with pytest.raises(ValueError, match="N >= 2"):
        mlp_forward(bn, np.zeros((1, 3)), train=True)
    assert mlp_forward(bn, np.zeros((1, 3)), train=False)[0].shape == (1, 2)


@pytest.mark.parametrize("batchnorm", [False, True])
def test_deltas_are_the_pre_activation_gradients(rng, batchnorm):
    model = init_mlp([3, 5, 4, 2], "tanh", "identity", "xavier_normal", rng, batchnorm=batchnorm)
    x = rng.normal(size=(6, 3))
    out, cache = mlp_forward(model, x)
    dout = rng.normal(size=out.shape)
    dx, grads, deltas = mlp_backward(dout, cache, return_deltas=True)
    assert [d.shape for d in deltas] == [(6, 5), (6, 4), (6, 2)]
    np.testing.assert_array_equal(deltas[-1], dout)  # identity output: dL/dz_L = dL/da_L
    np.testing.assert_array_equal(dx, mlp_backward(dout, cache)[0])
    if not batchnorm:  # dW_l = a_{l-1}^T delta_l
        np.testing.assert_allclose(grads["W2"], cache.activations[0].T @ deltas[1], rtol=1e-12)
    with pytest.raises(TypeError, match="return_deltas"):
        mlp_backward(dout, cache, return_deltas=1)


def test_float32_statistics_survive_underflowing_squares():
    # dW = x^T dout ~ 1e-10 * 1e-30 = 1e-40: its square underflows in float32, so the norm must come
    # from float64 sums, not read as 0 (a vanishing gradient is what the statistics are for)
    model = init_mlp([1, 1], "identity", "identity", lambda fi, fo, rng: np.full((fi, fo), 1e-20),
                     np.random.default_rng(0), dtype=np.float32)
    X = np.full((2, 1), 1e-10, np.float32)
    h = train(model, X, np.zeros(2), loss="mse", optimizer=SGD(), epochs=1, rng=np.random.default_rng(0),
              shuffle=False)
    _, grads, _ = mlp_loss_and_grads(model, X, np.zeros(2), "mse")
    expected = abs(float(grads["W1"][0, 0]))
    assert expected > 0 and h.step_grad_norm[0, 0] == pytest.approx(expected, rel=1e-6)
    assert h.step_grad_mean_abs[0, 0] == pytest.approx(expected, rel=1e-6)
