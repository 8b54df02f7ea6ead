# Benchmarks of point-cloud explanations: FBI vs gradients, IG, point dropping.
# SPDX-License-Identifier: MIT
"""FBI against the usual point-cloud XAI baselines on the shipped PointNet.

Model: ``pretrained("pointnet-fmnist")`` (PointNet, 256-d features, 256
points, ~78 % test accuracy). Data: the first ``S`` Fashion-MNIST test clouds
(``dataset-fashion-mnist``; the module is skipped without it).

* time per cloud (group ``explain-per-cloud``): one cloud per call, for FBI
  (pre- and post-bottleneck), the Critical Points++ counts, the vanilla
  gradient, Captum Integrated Gradients (50 steps, the Captum default; skipped
  without Captum) and exact leave-one-out point dropping (256 forward passes
  of 255 points, batched);
* faithfulness (``extra_info``): MoRF / LeRF curves over removal fractions
  0, 0.1, ..., 0.9 (removed points replaced by copies of kept points) on the
  ``S`` clouds, with ``aopc_morf``, ``aopc_lerf`` and ``area_between``
  (larger is better); a random importance is the reference;
* entropy as an OOD score (group ``ood-entropy``): AUROC (scikit-learn) of the
  normalized entropy separating Fashion-MNIST test clouds from the bunny,
  Gaussian blobs and uniform cubes.

Run with ``.venv/bin/python -m pytest benchmarks/bench_explain.py
--benchmark-only -q``, or ``.venv/bin/python benchmarks/bench_explain.py`` for
the Markdown table.
"""

from __future__ import annotations

import importlib.util
import time
from functools import cache

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from deepscope.importance import explain, removal_curves  # noqa: E402
from deepscope.models import pretrained  # noqa: E402

#: Clouds used for the faithfulness curves and the OOD scores.
S = 40
#: Integrated Gradients steps (Captum's default).
IG_STEPS = 50
MEASURES = [
    "fbi",
    "fbi_post",
    "critical",
    "gradient",
    "integrated_gradients",
    "point_dropping",
]
HAS_CAPTUM = importlib.util.find_spec("captum") is not None


@cache
def _data():
    from deepscope import pointsets

    try:
        test = pointsets.fashion_mnist_points("test", 256, seed=0, limit=S)
    except FileNotFoundError as error:
        pytest.skip(str(error))
    return test.points, test.labels


@cache
def _model():
    # One thread: the 2-core machine is shared, and one thread times steadier.
    torch.set_num_threads(1)
    return pretrained("pointnet-fmnist")


@cache
def faithfulness(measure: str) -> dict:
    """Faithfulness metrics of ``measure`` on the S clouds (computed once)."""
    points, labels = _data()
    model = _model()
    if measure == "random":
        importance = np.random.default_rng(0).random(points.shape[:2])
    else:
        importance = explain(
            model, points, measure=measure, n_steps=IG_STEPS, batch_size=32
        ).importance
    curves = removal_curves(model, points, labels, importance, seed=0)
    return {
        "aopc_morf": round(curves.aopc_morf, 4),
        "aopc_lerf": round(curves.aopc_lerf, 4),
        "area_between": round(curves.area_between, 4),
        "morf": [round(float(v), 4) for v in curves.morf],
        "lerf": [round(float(v), 4) for v in curves.lerf],
    }


def _skip_missing(measure: str) -> None:
    if measure == "integrated_gradients" and not HAS_CAPTUM:
        pytest.skip("needs captum")


@pytest.mark.parametrize("measure", MEASURES)
@pytest.mark.benchmark(group="explain-per-cloud")
def test_explain_one_cloud(benchmark, measure):
    _skip_missing(measure)
    points, _ = _data()
    model = _model()
    cloud = points[0]
    benchmark.extra_info["method"] = (
        f"deepscope explain {measure}"
        if measure.startswith(("fbi", "crit"))
        else f"{measure} (peer)"
    )
    benchmark.extra_info.update(faithfulness(measure))
    rounds = 3 if measure in ("integrated_gradients", "point_dropping") else 20
    out = benchmark.pedantic(
        explain,
        args=(model, cloud),
        kwargs={"measure": measure, "n_steps": IG_STEPS},
        rounds=rounds,
        warmup_rounds=1,
    )
    assert out.importance.shape == (256,)


def test_random_importance_reference(benchmark):
    """Not timed: the faithfulness of a random ranking, for the table."""
    benchmark.extra_info["method"] = "random importance (reference)"
    benchmark.extra_info.update(faithfulness("random"))
    benchmark.pedantic(lambda: None, rounds=1)


# ------------------------------------------------------------------- OOD


def _normalise(clouds: np.ndarray) -> np.ndarray:
    clouds = clouds - clouds.mean(axis=1, keepdims=True)
    radius = np.linalg.norm(clouds, axis=-1).max(axis=1)
    return (clouds / radius[:, None, None]).astype(np.float32)


@cache
def ood_clouds() -> dict[str, np.ndarray]:
    from deepscope import datasets

    rng = np.random.default_rng(0)
    sets = {
        "gaussian": rng.normal(size=(S, 256, 3)),
        "cube": rng.uniform(-1, 1, size=(S, 256, 3)),
    }
    try:
        sets["bunny"] = np.stack([datasets.bunny(256, seed=s) for s in range(S)])
    except ImportError:
        pass
    return {name: _normalise(clouds) for name, clouds in sets.items()}


@cache
def ood_auroc(measure: str) -> dict:
    """AUROC of two entropy scores, in-distribution vs each OOD set.

    ``low``: 1 - H (over-focused attention is suspicious). ``dev``: the
    distance of H from the mean entropy of S Fashion-MNIST TRAIN clouds, in
    their standard deviations (two-sided; calibrated on training data only).
    """
    from sklearn.metrics import roc_auc_score

    from deepscope import pointsets

    points, _ = _data()
    model = _model()
    train = pointsets.fashion_mnist_points("train", 256, seed=1, limit=S).points
    calib = np.asarray(explain(model, train, measure=measure).entropy, np.float64)
    mean, std = calib.mean(), max(calib.std(), 1e-12)
    inside = np.asarray(explain(model, points, measure=measure).entropy, np.float64)
    result = {"entropy_in_mean": round(float(inside.mean()), 4)}
    for name, clouds in ood_clouds().items():
        outside = np.asarray(explain(model, clouds, measure=measure).entropy)
        truth = np.r_[np.zeros(len(inside)), np.ones(len(outside))]
        h = np.r_[inside, outside]
        result[f"entropy_{name}_mean"] = round(float(outside.mean()), 4)
        result[f"auroc_low_{name}"] = round(float(roc_auc_score(truth, 1 - h)), 4)
        dev = np.abs(h - mean) / std
        result[f"auroc_dev_{name}"] = round(float(roc_auc_score(truth, dev)), 4)
    return result


@pytest.mark.parametrize("measure", ["critical", "fbi"])
@pytest.mark.benchmark(group="ood-entropy")
def test_entropy_ood_score(benchmark, measure):
    pytest.importorskip("sklearn")
    points, _ = _data()
    benchmark.extra_info["method"] = f"deepscope entropy of {measure} (B={S})"
    benchmark.extra_info.update(ood_auroc(measure))
    benchmark.pedantic(
        explain, args=(_model(), points), kwargs={"measure": measure}, rounds=5
    )


# ---------------------------------------------------------------- table


def _best_seconds(measure: str, cloud: np.ndarray, rounds: int) -> float:
    """Best of ``rounds`` after a warm-up (the machine is shared: best = least
    disturbed)."""
    model = _model()
    explain(model, cloud, measure=measure, n_steps=IG_STEPS)
    times = []
    for _ in range(rounds):
        start = time.perf_counter()
        explain(model, cloud, measure=measure, n_steps=IG_STEPS)
        times.append(time.perf_counter() - start)
    return float(np.min(times))


def main() -> None:
    points, _ = _data()
    print(f"Shipped PointNet, {S} Fashion-MNIST test clouds of 256 points\n")
    print("| measure | ms / cloud | x FBI | AOPC MoRF | AOPC LeRF | area LeRF-MoRF |")
    print("|---|---|---|---|---|---|")
    base = None
    for measure in [*MEASURES, "random"]:
        if measure == "integrated_gradients" and not HAS_CAPTUM:
            continue
        if measure == "random":
            ms, ratio = "-", "-"
        else:
            slow = measure in ("integrated_gradients", "point_dropping")
            seconds = _best_seconds(measure, points[0], 3 if slow else 15)
            base = base or seconds
            ms, ratio = f"{seconds * 1e3:.2f}", f"{seconds / base:.1f}"
        m = faithfulness(measure)
        print(
            f"| {measure} | {ms} | {ratio} | {m['aopc_morf']:.3f} | "
            f"{m['aopc_lerf']:.3f} | {m['area_between']:.3f} |"
        )
    print("\n(ms / cloud: best of 15 runs, 3 for IG and point dropping; 1 thread)")
    names = list(ood_clouds())
    print(
        "\n| entropy of | mean H in | "
        + " | ".join(f"mean H {k} | AUROC 1-H {k} | AUROC dev {k}" for k in names)
        + " |"
    )
    print("|---|---|" + "---|---|---|" * len(names))
    for measure in ("critical", "fbi"):
        r = ood_auroc(measure)
        cells = " | ".join(
            f"{r[f'entropy_{k}_mean']:.3f} | {r[f'auroc_low_{k}']:.3f} | "
            f"{r[f'auroc_dev_{k}']:.3f}"
            for k in names
        )
        print(f"| {measure} | {r['entropy_in_mean']:.3f} | {cells} |")


if __name__ == "__main__":
    main()
