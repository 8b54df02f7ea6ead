# Tests of deepscope.robust: ModelNet-C corruptions, mCE scores, EPiC ensembles.
# SPDX-License-Identifier: MIT
from __future__ import annotations

import math

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from deepscope import robust  # noqa: E402
from deepscope.robust import _corrupt  # noqa: E402

from tests import reference as ref  # noqa: E402
from tests.conftest import HAS_GPU  # noqa: E402


def _clouds(B=4, N=1024, seed=0, dtype=np.float32):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(B, N, 3))
    x /= np.linalg.norm(x, axis=-1).max(axis=1)[:, None, None]
    return x.astype(dtype)


EXPECTED_SIZES = {
    "scale": [1024] * 5,
    "jitter": [1024] * 5,
    "rotate": [1024] * 5,
    "dropout_global": [768, 640, 512, 384, 256],
    "dropout_local": [924, 824, 724, 624, 524],
    "add_global": [1034, 1044, 1054, 1064, 1074],
    "add_local": [1124, 1224, 1324, 1424, 1524],
}


# ----------------------------------------------------------------------------
# Corruptions


@pytest.mark.parametrize("kind", robust.CORRUPTIONS)
def test_sizes_dtype_and_lengths(kind):
    x = _clouds(B=2)
    for level in robust.LEVELS:
        out = robust.corrupt(x, kind, level, seed=1)
        M = EXPECTED_SIZES[kind][level]
        assert out.points.shape == (2, M, 3)
        assert out.points.dtype == np.float32
        assert np.all(out.lengths == M)
        assert out.lengths.dtype == np.int64
        assert np.isfinite(out.points).all()


@pytest.mark.parametrize("kind", robust.CORRUPTIONS)
def test_seeded_deterministic_not_modified_and_per_sample(kind):
    x = _clouds(B=3)
    before = x.copy()
    a = robust.corrupt(x, kind, 2, seed=5).points
    b = robust.corrupt(x, kind, 2, seed=5).points
    c = robust.corrupt(x, kind, 2, seed=6).points
    np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(x, before)
    assert not np.array_equal(a, c)
    # Streams are per sample: two identical clouds in one batch get different
    # corruptions, and sample 0's result does not depend on the batch size.
    same = np.repeat(x[:1], 2, axis=0)
    twins = robust.corrupt(same, kind, 2, seed=5).points
    assert not np.array_equal(twins[0], twins[1])
    np.testing.assert_array_equal(
        robust.corrupt(same[:1], kind, 2, seed=5).points[0], twins[0]
    )


def test_dataset_matches_corrupt_and_chunking():
    x = _clouds(B=5, N=1024)
    full = robust.corrupt_dataset(x, kinds=["jitter", "add_local"], levels=[0, 3])
    assert sorted(full) == [
        "add_local_0",
        "add_local_3",
        "clean",
        "jitter_0",
        "jitter_3",
    ]
    chunked = robust.corrupt_dataset(
        x, kinds=["jitter", "add_local"], levels=[0, 3], chunk=2
    )
    for key in full:
        np.testing.assert_array_equal(full[key], chunked[key])
    np.testing.assert_array_equal(
        full["jitter_3"], robust.corrupt(x, "jitter", 3, seed=0).points
    )


def test_scale_statistics():
    x = _clouds(B=64, N=256)
    out = robust.corrupt(x, "scale", 4, seed=0).points.astype(np.float64)
    np.testing.assert_allclose(out.mean(axis=1), 0, atol=1e-5)
    np.testing.assert_allclose(np.linalg.norm(out, axis=-1).max(axis=1), 1, atol=1e-5)
    # Undo the normalisation: per-axis factors lie in [1/2, 2] up to one
    # common factor, so their ratios lie in [1/4, 4].
    centred = x - x.mean(axis=1, keepdims=True)
    factors = (out * centred).sum(axis=1) / (centred * centred).sum(axis=1)
    ratios = factors[:, :, None] / factors[:, None, :]
    assert ratios.max() <= 4 + 1e-3
    assert ratios.min() >= 0.25 - 1e-3
    assert ratios.max() > 1.5  # the scaling is anisotropic


def test_jitter_statistics():
    x = _clouds(B=8, N=1024, dtype=np.float64)
    for level in (0, 4):
        noise = robust.corrupt(x, "jitter", level, seed=3).points - x
        sigma = 0.01 * (level + 1)
        assert abs(noise.std() / sigma - 1) < 0.02
        assert abs(noise.mean()) < 0.05 * sigma


def test_rotate_matches_reference_and_angle_range():
    x = _clouds(B=16, N=64, dtype=np.float64)
    for level in (0, 4):
        out = robust.corrupt(x, "rotate", level, seed=2).points
        clip = math.pi / 6 / 5 * (level + 1)
        for b in range(len(x)):
            rng = _corrupt._rng(2, "rotate", level, b)
            angles = rng.uniform(-clip, clip, size=3)
            assert np.all(np.abs(angles) <= clip)
            expected = x[b] @ ref.modelnet_c_rotation_reference(angles)
            np.testing.assert_allclose(out[b], expected, rtol=0, atol=1e-12)
        # Rotations keep norms.
        np.testing.assert_allclose(
            np.linalg.norm(out, axis=-1), np.linalg.norm(x, axis=-1), atol=1e-12
        )


def test_dropout_global_keeps_a_subset():
    x = _clouds(B=3, N=1024, dtype=np.float64)
    out = robust.corrupt(x, "dropout_global", 3, seed=0).points
    for b in range(3):
        rows = {tuple(p) for p in x[b]}
        assert all(tuple(p) in rows for p in out[b])
        assert len({tuple(p) for p in out[b]}) == 384


def test_dropout_local_matches_reference():
    x = _clouds(B=6, N=1024, dtype=np.float64)
    for level in (0, 4):
        out = robust.corrupt(x, "dropout_local", level, seed=9).points
        for b in range(len(x)):
            rng = _corrupt._rng(9, "dropout_local", level, b)
            sizes = _corrupt._cluster_sizes(rng, 100 * (level + 1))
            assert 1 <= len(sizes) <= 7
            assert sizes.sum() == 100 * (level + 1)
            remaining, ranks = 1024, []
            for size in sizes:
                if size:
                    ranks.append(int(rng.integers(remaining)))
                    remaining -= size
            kept = ref.dropout_local_reference(x[b], sizes[sizes > 0], ranks)
            np.testing.assert_array_equal(out[b], x[b][kept])


def test_cluster_counts_follow_the_code_not_the_docs():
    counts = [
        len(_corrupt._cluster_sizes(_corrupt._rng(0, "add_local", 0, b), 100))
        for b in range(400)
    ]
    assert min(counts) == 1
    assert max(counts) == 7


def test_add_global_in_unit_ball():
    x = _clouds(B=32, N=128, dtype=np.float64)
    out = robust.corrupt(x, "add_global", 4, seed=0).points
    np.testing.assert_array_equal(out[:, :128], x)
    added = out[:, 128:]
    r = np.linalg.norm(added, axis=-1)
    assert r.max() <= 1
    assert added.shape == (32, 50, 3)
    # Uniform in the ball: P(r < 1/2) = 1/8.
    assert abs((r < 0.5).mean() - 0.125) < 0.05


def test_add_local_clusters():
    x = _clouds(B=16, N=1024, dtype=np.float64)
    out = robust.corrupt(x, "add_local", 1, seed=0).points
    np.testing.assert_array_equal(out[:, :1024], x)
    added = out[:, 1024:]
    # Inside the unit ball after dividing by r^2; near some input point.
    assert np.linalg.norm(added, axis=-1).max() <= 1 + 1e-12
    nearest = np.sqrt(((added[:, :, None] - x[:, None]) ** 2).sum(-1)).min(-1)
    assert np.median(nearest) < 0.25


def test_add_local_more_points_than_the_cloud():
    x = _clouds(B=2, N=64)
    out = robust.corrupt(x, "add_local", 4, seed=0)
    assert out.points.shape == (2, 564, 3)


def test_unbatched_torch_and_dtypes():
    x = _clouds(B=1, N=1024)[0]
    out = robust.corrupt(x, "dropout_local", 0, seed=0)
    assert out.points.shape == (924, 3)
    assert int(out.lengths) == 924
    t = torch.from_numpy(x).requires_grad_(True)
    out_t = robust.corrupt(t, "dropout_local", 0, seed=0)
    assert isinstance(out_t.points, torch.Tensor)
    np.testing.assert_array_equal(out_t.points.numpy(), out.points)
    half = robust.corrupt(t.detach().to(torch.bfloat16), "jitter", 0)
    assert half.points.dtype == torch.float32
    f64 = robust.corrupt(x.astype(np.float64), "scale", 0).points
    assert f64.dtype == np.float64


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"kind": "blur"}, "kind"),
        ({"level": 5}, "level"),
        ({"level": -1}, "level"),
        ({"level": 1.0}, "level"),
        ({"seed": -1}, "seed"),
        ({"points": np.zeros((4, 3), np.int64)}, "float"),
        ({"points": np.zeros((4, 2), np.float32)}, "shape"),
        ({"points": np.zeros((0, 3), np.float32)}, "at least one"),
        ({"points": np.full((4, 3), np.nan, np.float32)}, "finite"),
        ({"points": np.zeros((64, 3), np.float32), "kind": "dropout_local"}, "drops"),
    ],
)
def test_errors(kwargs, match):
    args = {"points": _clouds(B=1, N=8)[0], "kind": "jitter", "level": 0, "seed": 0}
    args.update(kwargs)
    with pytest.raises(ValueError, match=match):
        robust.corrupt(args["points"], args["kind"], args["level"], args["seed"])


@pytest.mark.parametrize("kind", robust.CORRUPTIONS)
def test_empty_batch_is_named(kind):
    # An empty batch failed inside NumPy ("need at least one array to
    # stack"), naming no argument.
    empty = np.zeros((0, 1024, 3), np.float32)
    with pytest.raises(ValueError, match=r"^points: expected at least one cloud"):
        robust.corrupt(empty, kind, 0)
    with pytest.raises(ValueError, match=r"^points: expected at least one cloud"):
        robust.corrupt_dataset(empty, kinds=[kind])


def test_corrupt_dataset_rejects_a_string_of_kinds():
    # "scale" used to be read letter by letter ("got 's'").
    x = _clouds(B=1, N=1024)
    with pytest.raises(ValueError, match=r"^kinds: expected a sequence.*'scale'"):
        robust.corrupt_dataset(x, kinds="scale")
    data = robust.corrupt_dataset(x, kinds=["scale"], levels=[0])
    assert sorted(data) == ["clean", "scale_0"]


def test_hdf5_round_trip(tmp_path):
    pytest.importorskip("h5py")
    x = _clouds(B=3, N=1024)
    labels = np.array([2, 0, 1])
    data = robust.corrupt_dataset(x, kinds=["dropout_global"], levels=[1])
    robust.save_modelnet_c(tmp_path / "modelnet_c", data, labels)
    loaded = robust.load_modelnet_c(tmp_path)
    assert list(loaded) == ["clean", "dropout_global_1"]
    points, got = loaded["dropout_global_1"]
    assert points.shape == (3, 640, 3)
    np.testing.assert_array_equal(got, labels)
    with pytest.raises(FileNotFoundError):
        robust.load_modelnet_c(tmp_path, names=["jitter_0"])


@pytest.mark.cuda
@pytest.mark.skipif(not HAS_GPU, reason="needs a GPU")
@pytest.mark.parametrize("kind", robust.CORRUPTIONS)
def test_cuda_matches_cpu(kind):
    x = torch.from_numpy(_clouds(B=3, N=1024, dtype=np.float64))
    cpu = robust.corrupt(x, kind, 3, seed=4).points
    gpu = robust.corrupt(x.cuda(), kind, 3, seed=4).points
    assert gpu.device.type == "cuda"
    torch.testing.assert_close(gpu.cpu(), cpu, rtol=0, atol=1e-12)


# ----------------------------------------------------------------------------
# mCE

DGCNN_LEVELS = {"clean": 0.926, **robust.DGCNN_ACCURACY}


def test_dgcnn_scores_one():
    result = robust.mce(robust.DGCNN_ACCURACY)
    assert result.mce == 1.0
    assert result.rmce == 1.0
    assert all(v == 1.0 for v in result.ce.values())
    assert result.moa == round(sum(list(robust.DGCNN_ACCURACY.values())[1:]) / 7, 3)


def test_rpc_epic_row_from_the_notebook():
    # RPC-EPiC + WOLFMix (EPiC.ipynb): per-level OA of jitter and add_local,
    # and per-corruption CE .915 .680 .544 .315 .420 .251 .382 -> mCE .501.
    levels = {
        "jitter": [0.912, 0.890, 0.820, 0.731, 0.572],
        "add_local": [0.919, 0.910, 0.902, 0.888, 0.856],
    }
    ce = {
        "scale": 0.915,
        "rotate": 0.544,
        "dropout_global": 0.315,
        "dropout_local": 0.420,
        "add_global": 0.251,
    }
    accuracies = {"clean": 0.927, **levels}
    for kind, value in ce.items():
        # An OA (3 decimals) whose CE rounds to the published value.
        accuracies[kind] = round(1 - value * (1 - robust.DGCNN_ACCURACY[kind]), 3)
    result = robust.mce(accuracies)
    assert result.ce["jitter"] == 0.680
    assert result.oa["jitter"] == 0.785
    assert result.ce["add_local"] == 0.382
    assert result.oa["add_local"] == 0.895
    for kind, value in ce.items():
        assert result.ce[kind] == value
    assert result.mce == 0.501


def test_rounding_matters_and_unrounded_option():
    levels = {f"{k}_{lvl}": 0.8 for k in robust.CORRUPTIONS for lvl in robust.LEVELS}
    levels["jitter_0"] = 0.8014  # jitter mean .80028 -> .800 when rounded
    levels["clean"] = 0.9004
    rounded = robust.mce(levels)
    exact = robust.mce(levels, rounded=False)
    assert rounded.oa["jitter"] == 0.8
    assert exact.oa["jitter"] == pytest.approx(0.80028)
    assert rounded.clean == 0.9
    assert exact.clean == 0.9004
    expected = (1 - 0.80028) / (1 - 0.684)
    assert exact.ce["jitter"] == pytest.approx(expected)
    assert rounded.ce["jitter"] == round((1 - 0.8) / (1 - 0.684), 3)
    assert exact.rce["scale"] == pytest.approx((0.9004 - 0.8) / (0.926 - 0.906))


def test_own_reference_and_errors():
    mine = {"clean": 0.8, **{k: 0.6 for k in robust.CORRUPTIONS}}
    result = robust.mce(mine, reference=mine)
    assert result.mce == 1.0
    assert result.rmce == 1.0
    better = {"clean": 0.8, **{k: 0.7 for k in robust.CORRUPTIONS}}
    assert robust.mce(better, reference=mine).mce == 0.75
    with pytest.raises(ValueError, match="clean"):
        robust.mce({k: 0.5 for k in robust.CORRUPTIONS})
    with pytest.raises(ValueError, match="jitter"):
        robust.mce({"clean": 0.9, "scale": 0.5})
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        robust.mce({**mine, "rotate": 1.5})


def test_mce_kinds_must_be_distinct_and_non_empty():
    # A repeated corruption used to halve mCE (one CE per name, divided by
    # len(kinds)); an empty list divided by zero.
    mine = {"clean": 0.8, **{k: 0.6 for k in robust.CORRUPTIONS}}
    # Hand-computed: CE = 0.4 / 0.4 = 1 for the single corruption scored.
    assert robust.mce(mine, reference=mine, kinds=["scale"]).mce == 1.0
    with pytest.raises(ValueError, match=r"kinds: expected distinct.*'scale'"):
        robust.mce(mine, reference=mine, kinds=["scale", "scale"])
    with pytest.raises(ValueError, match="kinds: expected at least one"):
        robust.mce(mine, kinds=[])
    with pytest.raises(ValueError, match="kinds: expected a sequence.*string"):
        robust.mce(mine, kinds="scale")


@pytest.mark.parametrize(
    ("key", "value"),
    [("clean", "0.8"), ("clean", True), ("scale", "0.55"), ("scale", [True] * 5)],
)
def test_mce_rejects_non_numeric_accuracies(key, value):
    mine = {"clean": 0.8, **{k: 0.6 for k in robust.CORRUPTIONS}}
    with pytest.raises(ValueError, match=rf"accuracies\['{key}'\]: expected"):
        robust.mce({**mine, key: value}, reference=mine)


def test_mce_numpy_scalars_and_arrays_of_levels():
    mine = {"clean": 0.8, **{k: 0.6 for k in robust.CORRUPTIONS}}
    levels = [0.5, 0.6, 0.7, 0.4, 0.3]  # mean 0.5
    for value in (np.float32(0.5), np.array(levels), tuple(levels)):
        result = robust.mce({**mine, "scale": value}, reference=mine)
        # Hand-computed: CE = (1 - 0.5) / (1 - 0.6) = 1.25.
        assert result.ce["scale"] == 1.25


# ----------------------------------------------------------------------------
# EPiC


class _Mean(torch.nn.Module):
    """A tiny deterministic backbone: logits from the mean and the size."""

    def __init__(self, classes=4):
        super().__init__()
        self.linear = torch.nn.Linear(4, classes)

    def forward(self, points):
        size = torch.full_like(points[:, :1, 0], points.shape[1] / 100.0)
        return self.linear(torch.cat([points.mean(1), size], 1))


def _torch_clouds(B=3, N=600):
    return torch.from_numpy(_clouds(B=B, N=N))


def test_epic_mean_of_member_logits_and_shapes():
    torch.manual_seed(0)
    backbones = [_Mean(), _Mean(), _Mean()]
    model = robust.EPiC.from_backbones(backbones).eval()
    assert model.n_members == 12
    x = _torch_clouds()
    members = model.member_logits(x)
    assert members.shape == (12, 3, 4)
    torch.testing.assert_close(model(x), members.mean(0))
    # Member i * 4 + a is backbone i on its a-th partial cloud.
    seen = []
    backbones[1].register_forward_hook(lambda m, i, o: seen.append(i[0].shape))
    model(x)
    assert seen == [(3 * 4, 512, 3)]
    patch = model.members[0]
    parts = patch.partial(x, None, 0)
    assert parts.shape == (3, 4, 512, 3)
    torch.testing.assert_close(
        members[:4],
        backbones[0](parts.reshape(12, 512, 3)).reshape(3, 4, 4).transpose(0, 1),
    )
    assert model.members[2].partial(x, None, 0).shape == (3, 4, 128, 3)


def test_partial_member_small_clouds_and_training_mode():
    torch.manual_seed(0)
    member = robust.PartialMember(_Mean(), "curve")
    x = _torch_clouds(B=2, N=256)  # fewer points than the curve length
    assert member.eval().member_logits(x).shape == (4, 2, 4)
    member.train()
    out = member(x)
    assert out.shape == (2, 4)
    out.sum().backward()
    assert member.backbone.linear.weight.grad is not None


def test_critical_member_subsets():
    from deepscope.models import PointNet

    torch.manual_seed(0)
    net = PointNet(5, emb_dims=32).eval()
    member = robust.CriticalSubsetMember(net).eval()
    x = _torch_clouds(B=3, N=128)
    indices = member.subset_indices(x, None)
    assert indices.shape[0] == 3
    assert (indices >= 0).all()
    fixed = member.subset_indices(x, 40)
    assert fixed.shape == (3, 40)
    # The fixed subset is the least important points (discrete importance).
    from deepscope.importance import importance_stats

    counts = importance_stats(net.forward_features(x)[1], p=1).counts
    chosen = torch.gather(counts, 1, fixed)
    others = counts.clone().scatter_(1, fixed, -1)
    assert (chosen.max(1).values <= others.max(1).values).all()
    assert member(x).shape == (3, 5)
    ensemble = robust.EPiC([robust.PartialMember(net, "random"), member]).eval()
    logits = ensemble.member_logits(x)
    assert logits.shape == (5, 3, 5)
    torch.testing.assert_close(ensemble(x), logits.mean(0))
    member.train()
    assert member(x).shape == (3, 5)


def test_train_member_runs():
    from deepscope.models import PointNet

    torch.manual_seed(0)
    x = _clouds(B=16, N=256)
    y = np.arange(16) % 2
    member = robust.PartialMember(PointNet(2, emb_dims=16), "patch", size=64)
    history = robust.train_member(
        member, (x, y), epochs=1, batch_size=8, progress=False
    )
    assert len(history["train_loss"]) == 1
    assert not member.training


def test_evaluate_robustness_and_table():
    torch.manual_seed(0)
    x = _clouds(B=6, N=128)
    labels = np.arange(6) % 4
    data = robust.corrupt_dataset(x, kinds=["jitter", "rotate"])
    models = {"a": _Mean().eval(), "b": _Mean().eval()}
    report = robust.evaluate_robustness(models, data, labels, reference="a")
    assert len(report.accuracy["a"]) == 11
    assert report.scores["a"].mce == 1.0
    assert set(report.scores["b"].ce) == {"jitter", "rotate"}
    text = robust.format_report(report)
    assert "Jitter" in text
    assert "normalised by a" in text
    assert robust.format_report(report, markdown=True).startswith("| Model |")
    with pytest.raises(ValueError, match="reference"):
        robust.evaluate_robustness(models, data, labels, reference="c")


def test_undefined_scores_are_nan():
    perfect = {"clean": 1.0, **{k: 1.0 for k in robust.CORRUPTIONS}}
    result = robust.mce(perfect, reference=perfect)
    assert math.isnan(result.ce["jitter"])
    assert math.isnan(result.mce)
    assert math.isnan(result.rmce)


def test_report_explains_nan_cells():
    # deepscope evaluate --limit 5 printed a column of "nan" RmCE with no
    # word on why (the normaliser lost no accuracy on a corruption).
    ref_acc = {"clean": 0.8, **{k: 0.6 for k in robust.CORRUPTIONS}}
    ref_acc["rotate"] = 0.8  # no drop: RCE undefined
    mine = {"clean": 0.9, **{k: 0.7 for k in robust.CORRUPTIONS}}
    scores = {
        "ref": robust.mce(ref_acc, reference=ref_acc),
        "mine": robust.mce(mine, reference=ref_acc),
    }
    assert math.isnan(scores["mine"].rce["rotate"])
    report = robust.RobustnessReport({}, scores, "ref", {})
    for markdown in (False, True):
        text = robust.format_report(report, markdown=markdown)
        assert "nan: undefined" in text
    clean = robust.RobustnessReport({}, {"mine": robust.mce(mine, mine)}, "x", {})
    assert "nan" not in robust.format_report(clean)


@pytest.mark.parametrize("N", [1, 2, 3, 5])
def test_epic_tiny_clouds(N):
    torch.manual_seed(0)
    model = robust.EPiC.from_backbones([_Mean(), _Mean(), _Mean()]).eval()
    x = _torch_clouds(B=2, N=N)
    out = model(x)
    assert out.shape == (2, 4)
    assert torch.isfinite(out).all()
