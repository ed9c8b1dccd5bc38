"""Plotting: every function returns the arrays it drew, and draws what it returns."""

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402

from stablegrad.activations import predicted_saturated_fraction, sigmoid_grad  # noqa: E402
from stablegrad.datasets import two_moons  # noqa: E402
from stablegrad.network import init_mlp, train  # noqa: E402
from stablegrad.optim import SGD, Adam  # noqa: E402
from stablegrad.plotting import (  # noqa: E402
    plot_activation, plot_activation_and_derivative, plot_activation_histograms, plot_curves,
    plot_decision_boundary, plot_gradient_history, plot_layer_gradients, plot_saturation_curve,
    plot_timings, plot_training_curves,
)


@pytest.fixture(autouse=True)
def _close_figures():
    yield
    plt.close("all")


@pytest.fixture(scope="module")
def histories():
    rng = np.random.default_rng(0)
    X, y = two_moons(200, 0.25, rng)
    model = init_mlp([2, 6, 6, 1], "sigmoid", "sigmoid", "uniform", rng)
    ok = train(model, X, y, loss="bce", optimizer=Adam(0.01), epochs=4, rng=rng)
    huge = init_mlp([2, 30, 1], "relu", "identity", lambda fi, fo, r: np.full((fi, fo), 50.0), rng)
    bad = train(huge, X, 100 * y.astype(float), loss="mse", optimizer=SGD(0.1), epochs=4, rng=rng)
    assert bad.diverged
    return {"adam": ok, "diverging": bad}


def _lines(ax):
    return {line.get_label(): line for line in ax.get_lines()}


def test_plot_layer_gradients_returns_what_it_drew():
    values = {"sigmoid": np.array([1e-4, 1e-3, 1e-2, 1e-1]), "one hidden": np.array([0.02, 0.05])}
    predicted = {"sigmoid": np.array([2e-4, 2e-3, 2e-2, 2e-1])}
    fig, data = plot_layer_gradients(values, ylabel="mean |dW|", title="t", predicted=predicted)
    ax = fig.axes[0]
    assert set(data) == {"sigmoid", "one hidden", "sigmoid (predicted)"}
    for label, line in _lines(ax).items():
        np.testing.assert_array_equal(line.get_ydata(), data[label])
        np.testing.assert_array_equal(line.get_xdata(), np.arange(1, data[label].size + 1))
    np.testing.assert_array_equal(data["sigmoid"], values["sigmoid"])
    assert _lines(ax)["sigmoid (predicted)"].get_linestyle() == "--"
    assert _lines(ax)["sigmoid (predicted)"].get_color() == _lines(ax)["sigmoid"].get_color()
    assert ax.get_yscale() == "log" and ax.get_ylabel() == "mean |dW|" and ax.get_title() == "t"


def test_plot_layer_gradients_linear_axis_and_given_axes():
    fig0, ax = plt.subplots()
    fig, data = plot_layer_gradients({"a": [1.0, 2.0, 3.0]}, logy=False, ax=ax)
    assert fig is fig0 and ax.get_yscale() == "linear" and data["a"].dtype == np.float64


def test_non_finite_values_are_not_drawn_and_appear_as_nan():
    fig, data = plot_layer_gradients({"a": np.array([1.0, np.inf, np.nan, 2.0])})
    np.testing.assert_array_equal(np.isnan(data["a"]), [False, True, True, False])


def test_plot_gradient_history(histories):
    h = histories["adam"]
    fig, data = plot_gradient_history(h)
    assert list(data) == ["epoch", "layer 1", "layer 2", "layer 3"]
    np.testing.assert_array_equal(data["epoch"], [1, 2, 3, 4])
    for i, name in enumerate(h.layer_names):
        np.testing.assert_array_equal(data[name], h.grad_mean_abs[:, i])
        np.testing.assert_array_equal(_lines(fig.axes[0])[name].get_ydata(), data[name])
    fig, data = plot_gradient_history(h, stat="step_grad_norm", logy=False)
    assert data["step"].shape == (h.steps,) and fig.axes[0].get_xlabel() == "step"
    with pytest.raises(ValueError, match="was not recorded"):
        plot_gradient_history(h, stat="saturated")
    with pytest.raises(ValueError, match="stat must be one of"):
        plot_gradient_history(h, stat="loss")
    with pytest.raises(TypeError, match="history must be a History"):
        plot_gradient_history({"grad_mean_abs": 1})


def test_plot_training_curves_marks_divergence(histories):
    fig, data = plot_training_curves(histories, metric="step_loss")
    bad = histories["diverging"]
    np.testing.assert_array_equal(data["adam"], histories["adam"].step_loss)
    assert np.isnan(data["diverging"][-1]) and not np.isfinite(bad.step_loss[-1])
    np.testing.assert_array_equal(data["diverging"][:-1], bad.step_loss[:-1])
    labels = [t.get_text() for t in fig.axes[0].get_legend().get_texts()]
    d = bad.diverged_at
    assert f"diverging (diverged at epoch {d.epoch + 1}, step {d.step + 1})" in labels
    assert fig.axes[0].get_yscale() == "log"  # the diverging loss spans many decades
    fig, data = plot_training_curves({"adam": histories["adam"]}, metric="accuracy", logy=False)
    np.testing.assert_array_equal(data["adam"], histories["adam"].accuracy)
    with pytest.raises(ValueError, match="was not recorded"):
        plot_training_curves(histories, metric="val_loss")
    with pytest.raises(ValueError, match="metric must be one of"):
        plot_training_curves(histories, metric="lr")
    with pytest.raises(TypeError, match="must be a History"):
        plot_training_curves({"x": np.zeros(3)})


def test_plot_activation_and_derivative():
    z = np.linspace(-5, 5, 11)
    fig, data = plot_activation_and_derivative("sigmoid", z)
    np.testing.assert_array_equal(data["z"], z)
    np.testing.assert_allclose(data["derivative"], sigmoid_grad(z))
    assert data["derivative"].max() == pytest.approx(0.25)
    lines = _lines(fig.axes[0])
    np.testing.assert_array_equal(lines["sigmoid(z)"].get_ydata(), data["activation"])
    np.testing.assert_array_equal(lines["sigmoid'(z)"].get_ydata(), data["derivative"])
    _, default = plot_activation("relu")
    assert default["z"].shape == (401,) and set(np.unique(default["derivative"])) == {0.0, 1.0}
    with pytest.raises(ValueError, match="plot_activation_and_derivative: name must be one of"):
        plot_activation_and_derivative("swish")


def test_plot_saturation_curve():
    scales = np.array([0.5, 1.0, 2.0, 4.0])
    predicted = np.array([predicted_saturated_fraction(s, "tanh") for s in scales])
    simulated = predicted + 0.001
    fig, data = plot_saturation_curve(scales, predicted, simulated, kind="tanh", threshold=0.97)
    assert set(data) == {"scale", "predicted", "simulated"}
    np.testing.assert_array_equal(data["predicted"], predicted)
    lines = fig.axes[0].get_lines()
    np.testing.assert_array_equal(lines[1].get_ydata(), simulated)
    assert "tanh" in fig.axes[0].get_title()
    with pytest.raises(ValueError, match="simulated must have the shape of scales"):
        plot_saturation_curve(scales, predicted, simulated[:2])


def test_plot_curves():
    x = np.arange(1, 6)
    fig, data = plot_curves(x, {"rho = 1.1": 1.1 ** x, "rho = 0.9": 0.9 ** x}, xlabel="t", ylabel="norm",
                            logy=True)
    np.testing.assert_array_equal(data["x"], x)
    np.testing.assert_array_equal(data["rho = 1.1"], 1.1 ** x)
    with pytest.raises(ValueError, match="must have the shape of x"):
        plot_curves(x, {"a": np.ones(3)})
    with pytest.raises(ValueError, match="reserved"):
        plot_curves(x, {"x": np.ones(5)})
    with pytest.raises(TypeError, match="non-empty dict"):
        plot_curves(x, [np.ones(5)])
    with pytest.raises(TypeError, match="logy must be True or False"):
        plot_curves(x, {"a": np.ones(5)}, logy="yes")


def test_plot_activation_histograms(rng):
    acts = [rng.normal(size=(100, 5)), np.tanh(rng.normal(size=(100, 5)))]
    fig, data = plot_activation_histograms(acts, bins=20)
    assert data["edges"].shape == (21,)
    assert data["layer 1"].sum() == 500 and data["layer 2"].sum() == 500
    _, named = plot_activation_histograms({"tanh": acts[1]}, value_range=(-1, 1), bins=4)
    np.testing.assert_array_equal(named["edges"], [-1, -0.5, 0, 0.5, 1])
    with pytest.raises(ValueError, match="edges"):
        plot_activation_histograms({"edges": acts[0]})


def test_plot_decision_boundary(histories):
    rng = np.random.default_rng(0)
    X, y = two_moons(50, 0.2, rng)
    fig, data = plot_decision_boundary(histories["adam"].model, X, y, resolution=30)
    assert data["prob"].shape == data["xx"].shape == (30, 30)
    assert np.all((data["prob"] >= 0) & (data["prob"] <= 1))
    with pytest.raises(TypeError, match="model must be an MLP with 2 inputs"):
        plot_decision_boundary(init_mlp([3, 1], "relu", "sigmoid", "he_normal", rng), X, y)


def test_plot_timings():
    times = {"staged": np.array([1e-3, 1.2e-3, 1.1e-3]), "compact": np.array([5e-4, 6e-4, 5.5e-4])}
    fig, data = plot_timings(times)
    np.testing.assert_allclose(data["compact"], times["compact"] * 1e3)
    assert [t.get_text() for t in fig.axes[0].get_xticklabels()] == ["staged", "compact"]
    with pytest.raises(ValueError, match="unit must be one of"):
        plot_timings(times, unit="h")


def test_plot_layer_bands_returns_what_it_drew():
    from stablegrad.plotting import plot_layer_bands
    values = np.random.default_rng(0).lognormal(size=(50, 6))
    band = np.quantile(values, [0.1, 0.5, 0.9], axis=0)
    fig, data = plot_layer_bands({"s = 1": band}, title="t", predicted={"s = 1": np.ones(6)})
    ax = fig.axes[0]
    assert set(data) == {"s = 1", "s = 1 (low)", "s = 1 (high)", "s = 1 (predicted)"}
    np.testing.assert_array_equal(data["s = 1"], band[1])
    np.testing.assert_array_equal(data["s = 1 (low)"], band[0])
    np.testing.assert_array_equal(data["s = 1 (high)"], band[2])
    lines = _lines(ax)
    np.testing.assert_array_equal(lines["s = 1"].get_ydata(), band[1])
    np.testing.assert_array_equal(lines["s = 1"].get_xdata(), np.arange(1, 7))
    assert lines["s = 1 (predicted)"].get_linestyle() == "--"
    assert lines["s = 1 (predicted)"].get_color() == lines["s = 1"].get_color()
    assert len(ax.collections) == 1 and ax.get_yscale() == "log" and ax.get_title() == "t"
    with pytest.raises(ValueError, match=r"plot_layer_bands: bands_by_label\['x'\] must have shape \(3, L\)"):
        plot_layer_bands({"x": np.ones((2, 4))})
    with pytest.raises(TypeError, match="plot_layer_bands: bands_by_label must be a non-empty dict"):
        plot_layer_bands({})


def test_plot_step_errors_draws_positive_values_on_log_axes():
    from stablegrad.plotting import plot_step_errors
    eps = np.array([1e-2, 1e-4, 1e-6])
    fig, data = plot_step_errors(eps, {"float64": np.array([1e-4, 0.0, 1e-10])},
                                 predicted={"float64": np.array([1e-4, 1e-8, 1e-10])})
    ax = fig.axes[0]
    assert set(data) == {"eps", "float64", "float64 (predicted)"}
    np.testing.assert_array_equal(data["eps"], eps)
    assert np.isnan(data["float64"][1]) and data["float64"][0] == 1e-4   # an exact zero is not drawn
    assert ax.get_xscale() == "log" and ax.get_yscale() == "log"
    assert _lines(ax)["float64 (predicted)"].get_linestyle() == "--"
    with pytest.raises(ValueError, match="plot_step_errors: errors_by_label\\['a'\\] must have the shape of eps"):
        plot_step_errors(eps, {"a": np.ones(2)})
    with pytest.raises(ValueError, match="plot_step_errors: eps must be finite and > 0"):
        plot_step_errors(np.array([0.0, 1.0]), {"a": np.ones(2)})


def test_plot_seed_curves_draws_median_and_range_over_seeds():
    from stablegrad.plotting import plot_seed_curves
    from stablegrad.seeds import spread
    runs = np.array([[1.4, 1.0, 0.5], [1.4, 0.8, 0.3], [1.3, 0.9, 0.7]])   # 3 seeds, 3 epochs
    fig, data = plot_seed_curves([1, 2, 3], {"BN": runs}, predicted={"BN": np.ones(3)}, xlabel="epoch", title="t")
    ax = fig.axes[0]
    assert set(data) == {"x", "BN", "BN (low)", "BN (high)", "BN (predicted)"}
    s = spread(runs)
    np.testing.assert_array_equal(data["BN"], s.median)
    np.testing.assert_array_equal(data["BN (low)"], [1.3, 0.8, 0.3])
    np.testing.assert_array_equal(data["BN (high)"], [1.4, 1.0, 0.7])
    lines = _lines(ax)
    np.testing.assert_array_equal(lines["BN (median of 3)"].get_ydata(), [1.4, 0.9, 0.5])
    np.testing.assert_array_equal(lines["BN (median of 3)"].get_xdata(), [1, 2, 3])
    assert lines["BN (predicted)"].get_linestyle() == "--"
    assert lines["BN (predicted)"].get_color() == lines["BN (median of 3)"].get_color()
    assert len(ax.collections) == 1 and ax.get_title() == "t" and ax.get_xlabel() == "epoch"
    with pytest.raises(ValueError, match=r"plot_seed_curves: values_by_label\['a'\] must have shape \(S, n\)"):
        plot_seed_curves([1, 2], {"a": np.ones((2, 3))})
    with pytest.raises(ValueError, match="plot_seed_curves: values_by_label\\['a'\\] contains NaN"):
        plot_seed_curves([1, 2], {"a": np.array([[1.0, np.nan]])})
    with pytest.raises(TypeError, match="plot_seed_curves: values_by_label must be a non-empty dict"):
        plot_seed_curves([1, 2], {})
    with pytest.raises(ValueError, match="plot_seed_curves: predicted\\['a'\\] must have the shape of x"):
        plot_seed_curves([1, 2], {"a": np.ones((1, 2))}, predicted={"a": np.ones(3)})


def test_book_style_tells_overlapping_curves_apart_and_draws_predictions_on_top():
    """The book's one figure style: each curve its own colour and line style (dashes are for predictions),
    predictions drawn above the measurements with a white outline, legends without a frame."""
    from stablegrad.plotting import BOOK_STYLE, plot_layer_bands, use_book_style

    with matplotlib.rc_context():
        use_book_style()                                   # outside IPython: the rcParams only
        for key, value in BOOK_STYLE.items():
            if key != "axes.prop_cycle":
                assert plt.rcParams[key] == matplotlib.rcParams.validate[key](value), key
        band = np.tile(np.array([[0.5], [1.0], [2.0]]), (1, 5))
        fig, _ = plot_layer_bands({"a": band, "b": band, "c": band},      # three identical curves
                                  predicted={"a": np.ones(5), "b": np.ones(5)})
        lines = _lines(fig.axes[0])
        measured = [lines[k] for k in "abc"]
        assert len({(ln.get_color(), ln.get_linestyle()) for ln in measured}) == 3
        assert len({ln.get_linestyle() for ln in measured}) == 3, "identical curves must differ in line style"
        assert "--" not in {ln.get_linestyle() for ln in measured}, "dashes are reserved for predictions"
        for key in ("a (predicted)", "b (predicted)"):
            assert lines[key].get_linestyle() == "--"
            assert lines[key].get_zorder() > max(ln.get_zorder() for ln in measured)
            assert lines[key].get_path_effects(), "a prediction is outlined so it shows on top of its curve"
        assert fig.axes[0].get_legend().get_frame_on() is False
    assert plt.rcParams["legend.frameon"] == matplotlib.rcParamsDefault["legend.frameon"]
