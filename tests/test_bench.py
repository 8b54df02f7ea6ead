# Tests of deepscope.bench and the `deepscope bench` subcommand (tiny workloads).
# SPDX-License-Identifier: MIT
from __future__ import annotations

import argparse
import json
import time

import numpy as np
import pytest

from deepscope import bench
from deepscope._cli_bench import add_bench_command


@pytest.fixture
def tiny_data() -> bench.Data:
    rng = np.random.default_rng(0)
    return bench.Data(
        scan=rng.standard_normal((500, 3)),
        lidar=rng.standard_normal((800, 3)),
        scan_name="tiny scan",
        lidar_name="tiny lidar",
        source="synthetic test data",
        real=False,
    )


@pytest.fixture
def tiny_workload():
    """A registered two-candidate workload plus one missing and one slow peer."""

    def setup(data, quick):
        return data.scan

    def ours(state):
        from deepscope.pointcloud import farthest_point_sample

        return lambda: farthest_point_sample(state, 8)

    def slower(state):
        return lambda: time.sleep(0.004)

    def broken(state):
        raise RuntimeError("peer exploded")

    workload = bench.register(
        bench.Workload(
            name="tiny-test",
            title="tiny fps ({scan})",
            setup=setup,
            candidates=(
                bench.Candidate("deepscope fps", ours),
                bench.Candidate(
                    "sleep 4 ms", slower, peer="numpy", note="a fake peer", scale=2.0
                ),
                bench.Candidate("missing peer", slower, peer="pytorch3d"),
                bench.Candidate("slow one", slower, peer="numpy", slow=True),
                bench.Candidate("broken", broken, peer="numpy"),
            ),
        )
    )
    yield workload
    bench._REGISTRY.pop("tiny-test")


def test_measure_counts_rounds_and_scales():
    calls = []
    timing = bench.measure(lambda: calls.append(1), warmup=2, repeats=7, budget=5.0)
    assert timing.rounds == 7
    assert len(calls) == 9
    slow = bench.measure(lambda: time.sleep(0.03), warmup=1, repeats=50, budget=0.01)
    assert slow.rounds == 1  # one call exceeds the budget: timed once
    scaled = bench.measure(lambda: time.sleep(0.002), repeats=3, scale=10.0)
    assert scaled.median >= 0.02
    assert scaled.iqr >= 0


def test_run_reports_ratios_skips_and_errors(tiny_data, tiny_workload):
    peers = bench.installed_peers()
    assert set(peers) == set(bench.PEERS)
    report = bench.run(quick=True, only=["tiny-test"], data=tiny_data, repeats=3)
    rows = {r.candidate: r for r in report.results}
    assert rows["deepscope fps"].status == "ok"
    assert rows["deepscope fps"].ratio == pytest.approx(1.0)
    assert rows["deepscope fps"].title == "tiny fps (tiny scan)"
    assert rows["sleep 4 ms"].timing.median >= 0.008  # scaled by 2
    assert rows["sleep 4 ms"].ratio > 0
    if peers["pytorch3d"] is None:
        assert rows["missing peer"].status == "skipped"
        assert "not installed" in rows["missing peer"].note
    assert rows["slow one"].status == "skipped"
    assert rows["broken"].status == "error"
    assert "peer exploded" in rows["broken"].note

    text = bench.format_table(report)
    assert "tiny fps (tiny scan)" in text
    assert "synthetic test data" in text
    assert "skipped" in text
    data = json.loads(bench.dumps(report))
    assert data["metadata"]["mode"] == "quick"
    assert data["metadata"]["real_data"] is False
    assert {"cpu", "python", "deepscope", "peers"} <= set(data["metadata"])
    timed = [r for r in data["results"] if r["status"] == "ok"]
    assert all(r["timing"]["median_s"] > 0 for r in timed)


def test_unknown_workload_is_a_value_error(tiny_data):
    with pytest.raises(ValueError, match="unknown workload"):
        bench.run(only=["no-such-thing"], data=tiny_data)


def test_builtin_workloads_are_registered():
    names = [w.name for w in bench.workloads()]
    assert names[:3] == ["fps", "fps-large", "knn"]
    assert {"ball_query", "importance", "patches"} <= set(names)
    for workload in bench.workloads():
        assert workload.candidates[0].peer is None  # deepscope first
        assert all(c.peer is None or c.peer in bench.PEERS for c in workload.candidates)
        # Only deepscope's own candidates have no peer (they set the ratios).
        assert all(
            c.name.startswith("deepscope") == (c.peer is None)
            for c in workload.candidates
        )


def test_builtin_importance_workload_runs_quickly(tiny_data):
    # The candidates of one real workload run (reduced to one round each).
    workload = next(w for w in bench.workloads() if w.name == "random_subsets")
    state = workload.setup(tiny_data, True)
    for candidate in workload.candidates:
        if candidate.peer is None or bench.installed_peers()[candidate.peer]:
            candidate.make(state)()


def test_load_data_falls_back_to_embedded_bunny(tmp_path, monkeypatch):
    pytest.importorskip("trimesh")
    monkeypatch.delenv("DEEPSCOPE_BENCH_DATA", raising=False)
    data = bench.load_data(tmp_path)  # an empty folder: no real scans
    assert not data.real
    assert data.scan.shape == (50_000, 3)
    assert data.lidar.shape == (100_000, 3)
    assert "embedded" in data.source


def test_load_data_reads_real_scans(tmp_path):
    rng = np.random.default_rng(0)
    np.save(tmp_path / "stanford_bunny.npy", rng.standard_normal((50, 3)))
    np.save(tmp_path / "autzen.npy", rng.standard_normal((120_000, 3)) + 1000.0)
    data = bench.load_data(tmp_path)
    assert data.real
    assert data.lidar.shape == (100_000, 3)
    assert abs(data.lidar.mean()) < 1.0  # centred
    assert str(tmp_path) in data.source


def _parser():
    parser = argparse.ArgumentParser(prog="deepscope")
    add_bench_command(parser.add_subparsers(dest="command"))
    return parser


def test_cli_list_and_json(tiny_data, tiny_workload, monkeypatch, capsys, tmp_path):
    args = _parser().parse_args(["bench", "--list"])
    assert args.run(args) == 0
    out = capsys.readouterr().out
    assert "fps" in out
    assert "peers:" in out

    monkeypatch.setattr(bench, "load_data", lambda data_dir=None: tiny_data)
    output = tmp_path / "report.json"
    args = _parser().parse_args(
        ["bench", "--quick", "--json", "--only", "tiny-test", "-o", str(output)]
    )
    assert args.run(args) == 0
    printed = json.loads(capsys.readouterr().out)
    assert printed == json.loads(output.read_text())
    assert printed["results"][0]["candidate"] == "deepscope fps"

    args = _parser().parse_args(["bench", "--quick", "--only", "tiny-test"])
    assert args.run(args) == 0
    captured = capsys.readouterr()
    assert "tiny fps (tiny scan)" in captured.out
    assert "timing tiny fps" in captured.err


def test_cli_rejects_bad_arguments(tmp_path):
    args = _parser().parse_args(["bench", "--repeats", "0"])
    with pytest.raises(ValueError, match="--repeats"):
        args.run(args)
    args = _parser().parse_args(["bench", "--only", "no-such-thing"])
    with pytest.raises(ValueError, match="^--only: unknown workload"):
        args.run(args)
    args = _parser().parse_args(["bench", "--data", str(tmp_path / "missing")])
    with pytest.raises(ValueError, match="--data"):
        args.run(args)


def test_cuda_workloads_skip_without_a_gpu(tiny_data):
    if bench._cuda_usable():
        pytest.skip("a GPU is usable here; the CUDA workloads run instead")
    cuda = [w.name for w in bench.workloads() if w.cuda]
    assert {"cuda-feature_knn", "cuda-conformity", "cuda-cmd_fit"} <= set(cuda)
    report = bench.run(quick=True, only=cuda, data=tiny_data)
    assert report.results
    assert all(r.status == "skipped" for r in report.results)
    assert "skipped: needs a usable CUDA GPU" in bench.format_table(report)


def test_method_workloads_are_registered():
    names = {w.name for w in bench.workloads()}
    assert {
        "feature_knn",
        "knn_graph",
        "conformity",
        "cmd_fit",
        "epic_partials",
        "epic_ensemble",
    } <= names
    peers = {
        c.peer
        for w in bench.workloads()
        if w.name in ("feature_knn", "knn_graph")
        for c in w.candidates
    }
    assert {"scikit-learn", "faiss"} <= peers


def test_epic_peer_sampling_matches_deepscope():
    from deepscope._bench_workloads import numpy_epic_partials
    from deepscope.pointcloud import farthest_point_sample, knn, knn_patches

    rng = np.random.default_rng(3)
    clouds = rng.standard_normal((2, 1024, 3)).astype(np.float32)
    patches, curves, subsets = numpy_epic_partials(clouds)
    anchors = farthest_point_sample(clouds, 4, start_index=0).indices
    np.testing.assert_array_equal(patches, knn_patches(clouds, anchors, 512).indices)
    np.testing.assert_array_equal(curves[..., 0], anchors)
    # Every step of a walk goes to one of the 19 nearest others of the last point.
    graph = knn(clouds, k=19, exclude_self=True).indices
    for b in range(2):
        steps = graph[b][curves[b, :, :-1]]  # (4, 511, 19)
        assert (steps == curves[b, :, 1:, None]).any(-1).all()
    assert subsets.shape == (2, 4, 128)
    assert all(len(set(row)) == 128 for row in subsets.reshape(-1, 128))


def test_torch_cmd_peer_matches_numpy_peer():
    torch = pytest.importorskip("torch")
    from deepscope._bench_workloads import numpy_cmd_fit, torch_cmd_fit

    rng = np.random.default_rng(4)
    refs = np.cumsum(rng.standard_normal((3, 15)), axis=1)
    window = rng.standard_normal((500, 15)) + refs[rng.integers(0, 3, 500)]
    expected = numpy_cmd_fit(window, refs, chunk=128)
    got = torch_cmd_fit(torch.from_numpy(window), torch.from_numpy(refs), chunk=128)
    np.testing.assert_array_equal(got[0].numpy(), expected[0])
    for g, e in zip(got[1:], expected[1:], strict=True):
        np.testing.assert_allclose(g.numpy(), e, rtol=1e-12, atol=1e-12)
