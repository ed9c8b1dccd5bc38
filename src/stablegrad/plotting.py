"""Figures used by the chapters. Every function returns ``(fig, data)``.

``data`` is a dict holding exactly the arrays that were drawn, so a notebook
can print or assert on the numbers behind a figure (nbval compares text, not
images):

    fig, data = plot_layer_gradients({"sigmoid": g_sigmoid, "relu": g_relu})
    assert data["sigmoid"][0] < data["sigmoid"][-1]

The key of each curve is its legend label; the shared x values are stored
under the axis name (``"layer"``, ``"epoch"``, ``"step"``, ``"z"``,
``"scale"``, ``"x"``). Non-finite values are not drawn: they appear as NaN in
``data``. Nothing here calls ``plt.show()``; pass ``ax=`` to draw into an
existing axes, otherwise a new figure is created with pyplot (so Jupyter
displays it).

The book's figure style lives here and only here: ``use_book_style()``, called
once at the top of each chapter, applies ``BOOK_STYLE`` (type sized for a
688-pixel text column, legends inside the axes without a frame, a colour and
line-style cycle so that curves that overlap stay visible, dashes reserved for
predictions) and makes Jupyter's inline backend emit high-DPI ("retina") PNGs.
"""

from __future__ import annotations

from collections.abc import Mapping

import matplotlib.patheffects as path_effects
import matplotlib.pyplot as plt
import numpy as np
from cycler import cycler

from stablegrad._validate import as_float_array, check_choice, check_int
from stablegrad.activations import get_activation

__all__ = [
    "plot_curves", "plot_layer_gradients", "plot_gradient_history", "plot_training_curves",
    "plot_activation_and_derivative", "plot_activation", "plot_saturation_curve",
    "plot_decision_boundary", "plot_activation_histograms", "plot_timings",
    "plot_layer_bands", "plot_step_errors", "plot_seed_curves", "BOOK_STYLE", "use_book_style",
]

_FIGSIZE = (6.4, 4.0)

# The book's figures. A figure is shown at most 688 CSS pixels wide (the text column at 1280 px) and at
# 100 dpi an inch is 100 pixels, so a 6.4-inch figure is shown at its own size and a two-panel figure is
# at most 9 inches wide (shown at 76%): 11-point type stays above 11 pixels. Solid, dash-dot and dotted
# lines with distinct colours (Okabe-Ito, legible to colour-blind readers) tell overlapping curves apart;
# plain dashes are left for predictions, which are drawn on top with a white outline (_PREDICTED).
BOOK_STYLE = {
    "figure.figsize": _FIGSIZE,
    "figure.dpi": 100,
    "font.size": 11,
    "axes.titlesize": 11,
    "axes.labelsize": 11,
    "xtick.labelsize": 10,
    "ytick.labelsize": 10,
    "legend.fontsize": 10,
    "legend.frameon": False,
    "legend.loc": "best",
    "lines.linewidth": 1.8,
    "lines.markersize": 5,
    "axes.grid": True,
    "grid.alpha": 0.3,
    "axes.spines.top": False,
    "axes.spines.right": False,
    "axes.prop_cycle": (cycler(color=["#0072B2", "#D55E00", "#009E73", "#CC79A7", "#E69F00", "#56B4E9",
                                      "#000000", "#F0E442"])
                        + cycler(linestyle=["-", "-.", ":", "-", "-.", ":", "-", "-."])),
    "savefig.bbox": "tight",
}

# A prediction: dashed, above the measured curves, outlined in white so it shows where it lies on one.
_PREDICTED = {"linestyle": "--", "zorder": 3,
              "path_effects": [path_effects.withStroke(linewidth=3.5, foreground="white")]}


def use_book_style() -> None:
    """Apply ``BOOK_STYLE`` to matplotlib and, inside IPython, switch inline figures to high-DPI PNG."""
    plt.rcParams.update(BOOK_STYLE)
    try:
        from IPython import get_ipython
    except ImportError:            # plain Python: the rcParams are all there is to set
        return
    if get_ipython() is not None:
        from matplotlib_inline.backend_inline import set_matplotlib_formats
        set_matplotlib_formats("retina")


# --------------------------------------------------------------------------- helpers

def _axes(ax, func: str):
    if ax is None:
        fig, ax = plt.subplots(figsize=_FIGSIZE)
        return fig, ax
    if not hasattr(ax, "plot") or not hasattr(ax, "figure"):
        raise TypeError(f"{func}: ax must be a matplotlib Axes; got {type(ax).__name__}")
    return ax.figure, ax


def _finite(y: np.ndarray) -> np.ndarray:
    """A float64 copy with non-finite entries replaced by NaN (not drawn)."""
    y = np.array(y, dtype=np.float64)
    y[~np.isfinite(y)] = np.nan
    return y


def _series(values_by_label, func: str, name: str = "values_by_label", reserved=()) -> dict[str, np.ndarray]:
    if not isinstance(values_by_label, Mapping) or len(values_by_label) == 0:
        raise TypeError(f"{func}: {name} must be a non-empty dict mapping a label to a 1-D array; "
                        f"got {type(values_by_label).__name__}")
    out = {}
    for label, values in values_by_label.items():
        if not isinstance(label, str):
            raise TypeError(f"{func}: {name} keys must be strings (legend labels); got {label!r}")
        if label in reserved:
            raise ValueError(f"{func}: {name} must not use the label {label!r} (reserved for the x values)")
        out[label] = as_float_array(values, f"{name}[{label!r}]", func, ndim=1, shape="(n,)")
    return out


def _check_bool(value, name: str, func: str) -> bool:
    if not isinstance(value, bool):
        raise TypeError(f"{func}: {name} must be True or False; got {type(value).__name__}")
    return value


def _auto_log(arrays) -> bool:
    """Log scale when every finite value is positive and they span more than two decades."""
    finite = np.concatenate([a[np.isfinite(a)] for a in arrays]) if arrays else np.array([])
    if finite.size == 0 or finite.min() <= 0:
        return False
    return bool(finite.max() / finite.min() > 100.0)


def _draw_median_bands(ax, x_of, bands, pred, *, markersize, alpha, legend_label=lambda label: label) -> dict:
    """Per label a median line over a shaded (low, high) band, then each prediction dashed in its colour.

    ``bands`` maps a label to ``(low, median, high)``; ``x_of(values)`` gives the x values of a curve.
    Returns what was drawn: ``label``, ``label (low)``, ``label (high)`` and ``label (predicted)``.
    """
    data, colours = {}, {}
    for label, (low, mid, high) in bands.items():
        x = x_of(mid)
        data[label], data[f"{label} (low)"], data[f"{label} (high)"] = _finite(mid), _finite(low), _finite(high)
        line, = ax.plot(x, data[label], marker="o", markersize=markersize, label=legend_label(label))
        colours[label] = line.get_color()
        ax.fill_between(x, data[f"{label} (low)"], data[f"{label} (high)"], color=line.get_color(),
                        alpha=alpha, linewidth=0)
    for label, y in pred.items():
        key = f"{label} (predicted)"
        data[key] = _finite(y)
        ax.plot(x_of(y), data[key], color=colours.get(label), label=key, **_PREDICTED)
    return data


def _finish(ax, *, xlabel: str, ylabel: str, title: str | None, logy: bool, legend: bool = True) -> None:
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    if logy:
        ax.set_yscale("log")
    if title is not None:
        ax.set_title(title)
    ax.grid(True, alpha=0.3)
    if legend and ax.get_legend_handles_labels()[0]:
        ax.legend(frameon=False)


# --------------------------------------------------------------------------- generic

def plot_curves(x, values_by_label, *, xlabel: str = "x", ylabel: str = "", logy: bool = False,
                logx: bool = False, title: str | None = None, ax=None):
    """Several curves over one shared x axis.

    Parameters
    ----------
    x : ndarray of shape (n,)
    values_by_label : dict of str to ndarray of shape (n,)
    xlabel, ylabel, title : str
    logy, logx : bool, default False

    Returns
    -------
    fig : matplotlib.figure.Figure
    data : dict
        ``{"x": x, label: y, ...}``.
    """
    func = "plot_curves"
    x = as_float_array(x, "x", func, ndim=1, shape="(n,)")
    series = _series(values_by_label, func, reserved=("x",))
    for label, y in series.items():
        if y.shape != x.shape:
            raise ValueError(f"{func}: values_by_label[{label!r}] must have the shape of x {x.shape}; "
                             f"got shape {y.shape}")
    _check_bool(logy, "logy", func)
    _check_bool(logx, "logx", func)
    fig, ax = _axes(ax, func)
    data = {"x": x.astype(np.float64)}
    for label, y in series.items():
        data[label] = _finite(y)
        ax.plot(data["x"], data[label], label=label)
    if logx:
        ax.set_xscale("log")
    _finish(ax, xlabel=xlabel, ylabel=ylabel, title=title, logy=logy)
    return fig, data


# --------------------------------------------------------------------------- per-layer quantities

def plot_layer_gradients(values_by_label, ylabel: str = "mean |dL/dW|", logy: bool = True,
                         title: str | None = None, *, predicted=None, ax=None):
    """One value per layer (gradient size, activation variance...), one curve per variant.

    Parameters
    ----------
    values_by_label : dict of str to ndarray of shape (L,)
        E.g. ``{"sigmoid": history.grad_mean_abs.mean(axis=0), ...}``; variants
        may have different depths. Layer 1 (nearest the input) is drawn at x = 1.
    ylabel : str, default "mean |dL/dW|"
    logy : bool, default True
        Per-layer gradients typically span orders of magnitude.
    title : str, optional
    predicted : dict of str to ndarray of shape (L,), optional
        Theoretical curves, drawn dashed in the colour of the same label.

    Returns
    -------
    fig : matplotlib.figure.Figure
    data : dict
        ``{label: values, ...}`` and ``{label + " (predicted)": values}`` for the
        predictions; the x values of a curve of length L are ``1, ..., L``.
    """
    func = "plot_layer_gradients"
    series = _series(values_by_label, func)
    pred = {} if predicted is None else _series(predicted, func, "predicted")
    _check_bool(logy, "logy", func)
    fig, ax = _axes(ax, func)
    data: dict[str, np.ndarray] = {}
    colours = {}
    for label, y in series.items():
        data[label] = _finite(y)
        line, = ax.plot(np.arange(1, y.size + 1), data[label], marker="o", label=label)
        colours[label] = line.get_color()
    for label, y in pred.items():
        key = f"{label} (predicted)"
        data[key] = _finite(y)
        ax.plot(np.arange(1, y.size + 1), data[key], color=colours.get(label), label=key, **_PREDICTED)
    longest = max(y.size for y in list(series.values()) + list(pred.values()))
    if longest <= 25:
        ax.set_xticks(np.arange(1, longest + 1))
    _finish(ax, xlabel="layer (1 = nearest the input)", ylabel=ylabel, title=title, logy=logy)
    return fig, data


_HISTORY_STATS = {
    "grad_mean_abs": ("epoch", "mean |dL/dW| per layer"),
    "grad_norm": ("epoch", "||dL/dW|| per layer"),
    "step_grad_mean_abs": ("step", "mean |dL/dW| per layer"),
    "step_grad_norm": ("step", "||dL/dW|| per layer"),
    "activation_mean": ("epoch", "mean activation"),
    "activation_std": ("epoch", "activation std"),
    "saturated": ("epoch", "saturated fraction"),
    "update_ratio": ("epoch", "||update|| / ||W||"),
}


def plot_gradient_history(history, stat: str = "grad_mean_abs", logy: bool = True,
                          title: str | None = None, *, ax=None):
    """One curve per layer: how a per-layer statistic evolved during training.

    Parameters
    ----------
    history : stablegrad.network.History
    stat : str, default "grad_mean_abs"
        A per-layer field of the history: ``"grad_mean_abs"``, ``"grad_norm"``
        (per epoch), ``"step_grad_mean_abs"``, ``"step_grad_norm"`` (per step),
        or, when recorded, ``"activation_mean"``, ``"activation_std"``,
        ``"saturated"``, ``"update_ratio"``.
    logy : bool, default True
    title : str, optional

    Returns
    -------
    fig : matplotlib.figure.Figure
    data : dict
        ``{"epoch" or "step": x (1-based), "layer 1": values, ...}``.
    """
    func = "plot_gradient_history"
    check_choice(stat, "stat", func, _HISTORY_STATS)
    if not hasattr(history, "layer_names"):
        raise TypeError(f"{func}: history must be a History returned by stablegrad.network.train; "
                        f"got {type(history).__name__}")
    values = getattr(history, stat)
    if values is None:
        raise ValueError(f"{func}: history.{stat} was not recorded (pass record_activations=True or "
                         f"record_update_ratio=True to train)")
    _check_bool(logy, "logy", func)
    xname, ylabel = _HISTORY_STATS[stat]
    fig, ax = _axes(ax, func)
    x = np.arange(1, values.shape[0] + 1, dtype=np.float64)
    data = {xname: x}
    for i, name in enumerate(history.layer_names):
        data[name] = _finite(values[:, i])
        ax.plot(x, data[name], label=name)
    _finish(ax, xlabel=xname, ylabel=ylabel, title=title, logy=logy)
    return fig, data


# --------------------------------------------------------------------------- training curves

_METRICS = {
    "loss": ("epoch", "training loss"),
    "accuracy": ("epoch", "training accuracy"),
    "val_loss": ("epoch", "validation loss"),
    "val_accuracy": ("epoch", "validation accuracy"),
    "step_loss": ("step", "training loss (per step)"),
    "step_global_norm": ("step", "global gradient norm"),
}


def plot_training_curves(histories, metric: str = "loss", logy: bool | None = None,
                         title: str | None = None, *, ax=None):
    """A metric over training, one curve per run.

    A run that diverged is drawn up to its last finite value, marked with an
    ``x`` there, and its legend says where it diverged.

    Parameters
    ----------
    histories : dict of str to History
    metric : str, default "loss"
        ``"loss"``, ``"accuracy"``, ``"val_loss"``, ``"val_accuracy"`` (per
        epoch) or ``"step_loss"``, ``"step_global_norm"`` (per step).
    logy : bool, optional
        Default: log scale when all values are positive and span more than
        two decades.
    title : str, optional

    Returns
    -------
    fig : matplotlib.figure.Figure
    data : dict
        ``{label: values}`` per run (x = 1, ..., len(values)); the legend label
        may add a divergence note, the key does not.
    """
    func = "plot_training_curves"
    check_choice(metric, "metric", func, _METRICS)
    if not isinstance(histories, Mapping) or len(histories) == 0:
        raise TypeError(f"{func}: histories must be a non-empty dict mapping a label to a History; "
                        f"got {type(histories).__name__}")
    arrays = {}
    for label, h in histories.items():
        if not isinstance(label, str):
            raise TypeError(f"{func}: histories keys must be strings (legend labels); got {label!r}")
        if not hasattr(h, "layer_names"):
            raise TypeError(f"{func}: histories[{label!r}] must be a History; got {type(h).__name__}")
        values = getattr(h, metric)
        if values is None:
            raise ValueError(f"{func}: histories[{label!r}].{metric} was not recorded "
                             f"(no accuracy for regression, no validation without validation_data)")
        arrays[label] = _finite(values)
    if logy is None:
        logy = _auto_log(list(arrays.values()))
    _check_bool(logy, "logy", func)
    xname, ylabel = _METRICS[metric]
    fig, ax = _axes(ax, func)
    for label, y in arrays.items():
        d = histories[label].diverged_at
        legend = label if d is None else f"{label} (diverged at epoch {d.epoch + 1}, step {d.step + 1})"
        x = np.arange(1, y.size + 1)
        line, = ax.plot(x, y, label=legend)
        if d is not None and np.isfinite(y).any():
            last = np.flatnonzero(np.isfinite(y))[-1]
            ax.plot([x[last]], [y[last]], marker="x", markersize=10, color=line.get_color())
    _finish(ax, xlabel=xname, ylabel=ylabel, title=title, logy=logy)
    return fig, arrays


# --------------------------------------------------------------------------- activations

def plot_activation_and_derivative(name: str, z=None, *, ax=None):
    """An activation function and its derivative on the same axes.

    Parameters
    ----------
    name : str
        ``"sigmoid"``, ``"tanh"``, ``"relu"``, ``"leaky_relu"`` or ``"identity"``.
    z : ndarray of shape (n,), optional
        Points to evaluate at; default 401 points in [-6, 6].

    Returns
    -------
    fig : matplotlib.figure.Figure
    data : dict
        ``{"z": z, "activation": f(z), "derivative": f'(z)}``.
    """
    func = "plot_activation_and_derivative"
    try:
        act = get_activation(name)
    except (TypeError, ValueError) as exc:
        raise type(exc)(str(exc).replace("get_activation: name", f"{func}: name")) from None
    z = np.linspace(-6.0, 6.0, 401) if z is None else as_float_array(z, "z", func, ndim=1, shape="(n,)")
    fig, ax = _axes(ax, func)
    data = {"z": z.astype(np.float64), "activation": act.fn(z).astype(np.float64),
            "derivative": act.grad(z).astype(np.float64)}
    ax.plot(data["z"], data["activation"], label=f"{act.name}(z)")
    ax.plot(data["z"], data["derivative"], linestyle="--", label=f"{act.name}'(z)")
    ax.axhline(0.0, color="0.6", linewidth=0.8)
    _finish(ax, xlabel="z", ylabel="value", title=act.name, logy=False)
    return fig, data


plot_activation = plot_activation_and_derivative


def plot_saturation_curve(scales, predicted, simulated, *, kind: str | None = None,
                          threshold: float | None = None, logx: bool = False, ax=None):
    """Saturated fraction against the pre-activation scale: theory and simulation.

    Parameters
    ----------
    scales : ndarray of shape (n,)
        Standard deviations ``s`` of the Gaussian pre-activations.
    predicted : ndarray of shape (n,)
        Closed form, e.g. :func:`stablegrad.activations.predicted_saturated_fraction`.
    simulated : ndarray of shape (n,)
        Measured on samples.
    kind, threshold : optional
        Only used in the title.
    logx : bool, default False

    Returns
    -------
    fig : matplotlib.figure.Figure
    data : dict
        ``{"scale": scales, "predicted": predicted, "simulated": simulated}``.
    """
    func = "plot_saturation_curve"
    scales = as_float_array(scales, "scales", func, ndim=1, shape="(n,)")
    predicted = as_float_array(predicted, "predicted", func, ndim=1, shape="(n,)")
    simulated = as_float_array(simulated, "simulated", func, ndim=1, shape="(n,)")
    for name, arr in (("predicted", predicted), ("simulated", simulated)):
        if arr.shape != scales.shape:
            raise ValueError(f"{func}: {name} must have the shape of scales {scales.shape}; got shape {arr.shape}")
    _check_bool(logx, "logx", func)
    fig, ax = _axes(ax, func)
    data = {"scale": scales.astype(np.float64), "predicted": _finite(predicted), "simulated": _finite(simulated)}
    ax.plot(data["scale"], data["predicted"], label="predicted (closed form)")
    ax.plot(data["scale"], data["simulated"], linestyle="none", marker="o", label="simulated")
    if logx:
        ax.set_xscale("log")
    what = "" if kind is None else f"{kind}: "
    thr = "" if threshold is None else f" (threshold {threshold:g})"
    _finish(ax, xlabel="pre-activation scale s  (z ~ N(0, s^2))", ylabel="saturated fraction",
            title=f"{what}saturated fraction{thr}", logy=False)
    return fig, data


def plot_activation_histograms(activations, *, bins: int = 50, value_range=None,
                               title: str | None = None, ax=None):
    """Histogram of each layer's activations, as outlines on one axes.

    Parameters
    ----------
    activations : list of ndarray, or dict of str to ndarray
        One array per layer (any shape, flattened); a list is labelled
        "layer 1", "layer 2", ...
    bins : int, default 50
    value_range : (float, float), optional
        Histogram range; default: the range of all finite values.
    title : str, optional

    Returns
    -------
    fig : matplotlib.figure.Figure
    data : dict
        ``{"edges": bin edges (bins + 1,), label: counts (bins,), ...}``.
    """
    func = "plot_activation_histograms"
    if isinstance(activations, Mapping):
        items = list(activations.items())
    elif isinstance(activations, (list, tuple)):
        items = [(f"layer {i}", a) for i, a in enumerate(activations, start=1)]
    else:
        raise TypeError(f"{func}: activations must be a list or dict of arrays; got {type(activations).__name__}")
    if not items:
        raise ValueError(f"{func}: activations must contain at least one layer")
    bins = check_int(bins, "bins", func, minimum=1)
    arrays = {}
    for label, a in items:
        if label == "edges":
            raise ValueError(f"{func}: activations must not use the label 'edges'")
        a = as_float_array(a, f"activations[{label!r}]", func).ravel()
        arrays[str(label)] = a[np.isfinite(a)]
    if value_range is None:
        everything = np.concatenate(list(arrays.values()))
        lo, hi = (0.0, 1.0) if everything.size == 0 else (float(everything.min()), float(everything.max()))
    else:
        lo, hi = (float(v) for v in value_range)
    if not hi > lo:
        hi = lo + 1.0
    edges = np.linspace(lo, hi, bins + 1)
    fig, ax = _axes(ax, func)
    data = {"edges": edges}
    for label, a in arrays.items():
        counts, _ = np.histogram(a, bins=edges)
        data[label] = counts
        ax.stairs(counts, edges, label=label)
    _finish(ax, xlabel="activation", ylabel="count", title=title, logy=False)
    return fig, data


# --------------------------------------------------------------------------- models and timings

def plot_decision_boundary(model, X, y, *, resolution: int = 200, title: str | None = None, ax=None):
    """A 2-D classifier's predicted probability over the plane, with the data on top.

    Parameters
    ----------
    model : stablegrad.network.MLP
        Two inputs; one sigmoid output (probability of class 1), or several
        outputs (the predicted class, argmax, is shaded).
    X : ndarray of shape (N, 2)
    y : ndarray of shape (N,)
        Labels used to colour the points.
    resolution : int, default 200
        Grid points per axis.

    Returns
    -------
    fig : matplotlib.figure.Figure
    data : dict
        ``{"xx": (R, R) grid x, "yy": (R, R) grid y, "prob": (R, R) shaded values}``.
    """
    from stablegrad.network import MLP, predict  # plotting is a layer above the network

    func = "plot_decision_boundary"
    if not isinstance(model, MLP) or model.sizes[0] != 2:
        raise TypeError(f"{func}: model must be an MLP with 2 inputs; got {model!r}")
    X = as_float_array(X, "X", func, ndim=2, shape="(N, 2)")
    if X.shape[1] != 2:
        raise ValueError(f"{func}: X must have shape (N, 2); got shape {X.shape}")
    y = np.asarray(y).ravel()
    if y.shape[0] != X.shape[0]:
        raise ValueError(f"{func}: y must have one label per row of X ({X.shape[0]}); got shape {y.shape}")
    resolution = check_int(resolution, "resolution", func, minimum=2)
    pad = 0.5
    gx = np.linspace(X[:, 0].min() - pad, X[:, 0].max() + pad, resolution)
    gy = np.linspace(X[:, 1].min() - pad, X[:, 1].max() + pad, resolution)
    xx, yy = np.meshgrid(gx, gy)
    out = predict(model, np.column_stack([xx.ravel(), yy.ravel()]))
    prob = (out[:, 0] if out.shape[1] == 1 else out.argmax(axis=1).astype(np.float64)).reshape(xx.shape)
    fig, ax = _axes(ax, func)
    mesh = ax.contourf(xx, yy, prob, levels=20, cmap="RdBu_r", alpha=0.6)
    fig.colorbar(mesh, ax=ax)
    ax.scatter(X[:, 0], X[:, 1], c=y, cmap="RdBu_r", s=8, edgecolors="k", linewidths=0.2)
    _finish(ax, xlabel="x1", ylabel="x2", title=title, logy=False, legend=False)
    return fig, {"xx": xx, "yy": yy, "prob": _finite(prob)}


def plot_timings(times_by_label, *, unit: str = "ms", title: str | None = None, ax=None):
    """Repeated timing measurements, one box per implementation.

    Parameters
    ----------
    times_by_label : dict of str to ndarray of shape (r,)
        Seconds per run, r repetitions each.
    unit : {"s", "ms", "us"}, default "ms"
        Unit of the y axis.

    Returns
    -------
    fig : matplotlib.figure.Figure
    data : dict
        ``{label: times in unit}`` (the values drawn).
    """
    func = "plot_timings"
    series = _series(times_by_label, func, "times_by_label")
    check_choice(unit, "unit", func, {"s": 1.0, "ms": 1e3, "us": 1e6})
    scale = {"s": 1.0, "ms": 1e3, "us": 1e6}[unit]
    fig, ax = _axes(ax, func)
    data = {label: _finite(t * scale) for label, t in series.items()}
    ax.boxplot(list(data.values()))
    ax.set_xticks(np.arange(1, len(data) + 1))
    ax.set_xticklabels(list(data.keys()))
    _finish(ax, xlabel="", ylabel=f"time per call ({unit})", title=title, logy=False, legend=False)
    return fig, data


# --------------------------------------------------------------------------- statistics over seeds, step sizes

def plot_layer_bands(bands_by_label, ylabel: str = "|dL/dz_l|", logy: bool = True,
                     title: str | None = None, *, predicted=None, ax=None):
    """Median per layer over many seeds, with a shaded band between two quantiles.

    Parameters
    ----------
    bands_by_label : dict of str to ndarray of shape (3, L)
        Rows ``(low, median, high)``, e.g. ``np.quantile(values, [0.1, 0.5, 0.9], axis=0)``
        for ``values`` of shape (seeds, L). Layer 1 is drawn at x = 1.
    ylabel : str, default "|dL/dz_l|"
    logy : bool, default True
    title : str, optional
    predicted : dict of str to ndarray of shape (L,), optional
        Theoretical curves, drawn dashed in the colour of the same label.

    Returns
    -------
    fig : matplotlib.figure.Figure
    data : dict
        ``{label: median, label + " (low)": low, label + " (high)": high}`` and
        ``{label + " (predicted)": values}``; the x values are ``1, ..., L``.
    """
    func = "plot_layer_bands"
    if not isinstance(bands_by_label, Mapping) or len(bands_by_label) == 0:
        raise TypeError(f"{func}: bands_by_label must be a non-empty dict mapping a label to an array of "
                        f"shape (3, L); got {type(bands_by_label).__name__}")
    bands = {}
    for label, band in bands_by_label.items():
        if not isinstance(label, str):
            raise TypeError(f"{func}: bands_by_label keys must be strings (legend labels); got {label!r}")
        band = as_float_array(band, f"bands_by_label[{label!r}]", func, ndim=2, shape="(3, L)")
        if band.shape[0] != 3:
            raise ValueError(f"{func}: bands_by_label[{label!r}] must have shape (3, L) (low, median, high); "
                             f"got shape {band.shape}")
        bands[label] = band
    pred = {} if predicted is None else _series(predicted, func, "predicted")
    _check_bool(logy, "logy", func)
    fig, ax = _axes(ax, func)
    data = _draw_median_bands(ax, lambda v: np.arange(1, v.size + 1),
                              bands, pred,
                              markersize=4, alpha=0.15)
    longest = max([b.shape[1] for b in bands.values()] + [y.size for y in pred.values()])
    if longest <= 25:
        ax.set_xticks(np.arange(1, longest + 1))
    _finish(ax, xlabel="layer (1 = nearest the input)", ylabel=ylabel, title=title, logy=logy)
    return fig, data


def plot_step_errors(eps, errors_by_label, *, predicted=None, ylabel: str = "error of the finite difference",
                     title: str | None = None, ax=None):
    """Error of a finite-difference derivative against the step size, on log-log axes.

    Parameters
    ----------
    eps : ndarray of shape (K,)
        Step sizes (> 0), e.g. from :func:`stablegrad.gradcheck.step_errors`.
    errors_by_label : dict of str to ndarray of shape (K,)
        Measured errors, drawn with markers. Zeros (an exact hit) are not drawn.
    predicted : dict of str to ndarray of shape (K,), optional
        Model curves (e.g. truncation + rounding), drawn dashed; a label that
        also names a measured curve takes its colour.
    ylabel, title : str

    Returns
    -------
    fig : matplotlib.figure.Figure
    data : dict
        ``{"eps": eps, label: errors, ...}`` and ``{label + " (predicted)": values}``;
        entries that were not drawn (zero, negative or non-finite) are NaN.
    """
    func = "plot_step_errors"
    eps = as_float_array(eps, "eps", func, ndim=1, shape="(K,)")
    if not np.all(np.isfinite(eps) & (eps > 0)):
        raise ValueError(f"{func}: eps must be finite and > 0; got {eps!r}")
    series = _series(errors_by_label, func, "errors_by_label", reserved=("eps",))
    pred = {} if predicted is None else _series(predicted, func, "predicted")
    for name, group in (("errors_by_label", series), ("predicted", pred)):
        for label, y in group.items():
            if y.shape != eps.shape:
                raise ValueError(f"{func}: {name}[{label!r}] must have the shape of eps {eps.shape}; "
                                 f"got shape {y.shape}")
    fig, ax = _axes(ax, func)
    data = {"eps": eps.astype(np.float64)}
    colours = {}

    def positive(y):
        y = _finite(y)
        y[~(y > 0)] = np.nan
        return y

    for label, y in series.items():
        data[label] = positive(y)
        line, = ax.plot(data["eps"], data[label], marker="o", markersize=4, label=label)
        colours[label] = line.get_color()
    for label, y in pred.items():
        key = f"{label} (predicted)"
        data[key] = positive(y)
        ax.plot(data["eps"], data[key], color=colours.get(label), label=key, **_PREDICTED)
    ax.set_xscale("log")
    _finish(ax, xlabel=r"step $\varepsilon$", ylabel=ylabel, title=title, logy=True)
    return fig, data


def plot_seed_curves(x, values_by_label, *, predicted=None, xlabel: str = "x", ylabel: str = "",
                     logy: bool = False, title: str | None = None, ax=None):
    """Median over seeds of several curves, with the range (lowest to highest seed) shaded.

    The statistics are those of :func:`stablegrad.seeds.spread`, so a figure and a
    :func:`stablegrad.seeds.describe` line in the text report the same median and range.

    Parameters
    ----------
    x : ndarray of shape (n,)
        Shared x values (epochs, layers...).
    values_by_label : dict of str to ndarray of shape (S, n)
        One row per seed, e.g. the loss per epoch of S runs; NaN is not allowed
        (a diverged run must be reported, not drawn as a gap).
    predicted : dict of str to ndarray of shape (n,), optional
        Theoretical curves, drawn dashed in the colour of the same label.
    xlabel, ylabel, title : str
    logy : bool, default False

    Returns
    -------
    fig : matplotlib.figure.Figure
    data : dict
        ``{"x": x, label: median, label + " (low)": minimum, label + " (high)": maximum}``
        per curve, and ``{label + " (predicted)": values}`` for the predictions.
    """
    from stablegrad.seeds import spread

    func = "plot_seed_curves"
    x = as_float_array(x, "x", func, ndim=1, shape="(n,)")
    if not isinstance(values_by_label, Mapping) or len(values_by_label) == 0:
        raise TypeError(f"{func}: values_by_label must be a non-empty dict mapping a label to an array of "
                        f"shape (S, n), one row per seed; got {type(values_by_label).__name__}")
    stats = {}
    for label, values in values_by_label.items():
        if not isinstance(label, str):
            raise TypeError(f"{func}: values_by_label keys must be strings (legend labels); got {label!r}")
        arr = as_float_array(values, f"values_by_label[{label!r}]", func, ndim=2, shape="(S, n)")
        if arr.shape[1] != x.size or arr.shape[0] == 0:
            raise ValueError(f"{func}: values_by_label[{label!r}] must have shape (S, n) with S >= 1 seeds and "
                             f"n = len(x) = {x.size}; got shape {arr.shape}")
        if np.isnan(arr).any():
            raise ValueError(f"{func}: values_by_label[{label!r}] contains NaN; report diverged runs "
                             f"separately instead of drawing them")
        stats[label] = spread(arr)
    pred = {} if predicted is None else _series(predicted, func, "predicted", reserved=("x",))
    for label, y in pred.items():
        if y.shape != x.shape:
            raise ValueError(f"{func}: predicted[{label!r}] must have the shape of x {x.shape}; got shape {y.shape}")
    _check_bool(logy, "logy", func)
    fig, ax = _axes(ax, func)
    data: dict[str, np.ndarray] = {"x": x.astype(np.float64)}
    data.update(_draw_median_bands(ax, lambda v: data["x"],
                                   {label: (s.low, s.median, s.high) for label, s in stats.items()}, pred,
                                   markersize=3, alpha=0.2,
                                   legend_label=lambda label: f"{label} (median of {stats[label].n})"))
    _finish(ax, xlabel=xlabel, ylabel=ylabel, title=title, logy=logy)
    return fig, data
