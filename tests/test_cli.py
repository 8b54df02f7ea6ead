# Tests for the `deepscope` command: info, sample, argument errors.
# SPDX-License-Identifier: MIT
from __future__ import annotations

import json
import struct
import subprocess
import sys
from pathlib import Path
from typing import NamedTuple

import numpy as np
import pytest

import deepscope
from deepscope import cli, datasets, pointcloud

pytest.importorskip("trimesh")
pytest.importorskip("matplotlib")

SAMPLERS = ("farthest_point_sample", "random_subsets", "partial_clouds")
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def _png_size(path: Path) -> tuple[int, int]:
    data = path.read_bytes()
    assert data[:8] == PNG_MAGIC
    assert data[12:16] == b"IHDR"
    return struct.unpack(">II", data[16:24])


def _rows_of(samples: np.ndarray, points: np.ndarray) -> np.ndarray:
    """Index in ``points`` of each row of ``samples`` (asserts all are found)."""
    match = (samples[:, None, :] == points[None, :, :]).all(-1)
    assert match.any(1).all()
    return match.argmax(1)


class _Result(NamedTuple):
    indices: np.ndarray
    counts: np.ndarray | None = None


@pytest.fixture
def fake_samplers(monkeypatch):
    """Simple NumPy stand-ins for the samplers, to test the command alone."""
    calls = []

    def farthest_point_sample(points, n_samples, **kwargs):
        calls.append(("fps", n_samples, kwargs))
        points = np.asarray(points)
        chosen = [0]
        distance = ((points - points[0]) ** 2).sum(1)
        for _ in range(n_samples - 1):
            chosen.append(int(distance.argmax()))
            distance = np.minimum(distance, ((points - points[chosen[-1]]) ** 2).sum(1))
        return _Result(np.array(chosen))

    def random_subsets(points, size, n_subsets, *, seed=0, **kwargs):
        calls.append(("random", size, n_subsets, seed))
        rng = np.random.default_rng(seed)
        return _Result(rng.choice(len(points), size, replace=False)[None])

    def partial_clouds(points, method, *, n_anchors=4, size=None, seed=0, **kwargs):
        calls.append((method, size, n_anchors, seed))
        # Half the requested size, -1 padded, as a sampler short of points does.
        keep = np.argsort(((points - points[seed]) ** 2).sum(1))[: size // 2]
        indices = np.full((n_anchors, size), -1)
        indices[0, : keep.size] = keep
        return _Result(indices, np.array([keep.size]))

    for name, function in zip(
        SAMPLERS, (farthest_point_sample, random_subsets, partial_clouds), strict=True
    ):
        monkeypatch.setattr(pointcloud, name, function, raising=False)
    return calls


# ----------------------------------------------------------------------------
# deepscope info


def test_info_prints_a_readable_summary(capsys):
    assert cli.main(["info"]) == 0
    out = capsys.readouterr().out
    facts = deepscope.info()
    assert out.startswith(f"deepscope {deepscope.__version__}\n")
    assert "CUDA" in out
    assert "GPU" in out
    assert f"up to {facts['omp_max_threads']} threads" in out
    if facts["cuda_compiled"]:
        assert facts["cuda_architectures"] in out
    if not facts["cuda_available"]:
        assert facts["cuda_error"] in out


def test_info_json_is_the_info_dict(capsys):
    assert cli.main(["info", "--json"]) == 0
    assert json.loads(capsys.readouterr().out) == deepscope.info()


def test_info_summary_with_a_gpu_and_without_cuda():
    facts = {
        "version": "9.9",
        "cuda_compiled": True,
        "cuda_architectures": "80-real,90",
        "cuda_runtime_version": 12040,
        "cuda_available": True,
        "cuda_device_count": 2,
        "cuda_devices": ["NVIDIA H200", "NVIDIA H200"],
        "cuda_error": "",
        "openmp": True,
        "omp_max_threads": 16,
    }
    text = "\n".join(cli._describe(facts))
    assert "architectures 80-real,90 (runtime 12.4)" in text
    assert "2 usable: NVIDIA H200, NVIDIA H200" in text
    facts.update(cuda_compiled=False, cuda_available=False, cuda_device_count=0)
    facts.update(cuda_devices=[], cuda_error="built without CUDA", openmp=False)
    text = "\n".join(cli._describe(facts))
    assert "not compiled" in text
    assert "none usable (built without CUDA)" in text
    assert "OpenMP   no" in text


def test_python_m_deepscope_info_runs_in_a_subprocess():
    done = subprocess.run(
        [sys.executable, "-m", "deepscope", "info"],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert f"deepscope {deepscope.__version__}" in done.stdout
    assert "OpenMP" in done.stdout


def test_version_flag(capsys):
    assert cli.main(["--version"]) == 0
    assert deepscope.__version__ in capsys.readouterr().out


def test_no_command_prints_usage_and_exits_2(capsys):
    assert cli.main([]) == 2
    assert "usage: deepscope" in capsys.readouterr().err


# ----------------------------------------------------------------------------
# deepscope sample: argument errors (no sampler is called)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["-n", "0"], "-n: expected a positive number of samples, got 0"),
        (["-n", "-5"], "-n: expected a positive number of samples"),
        (["-n", "5000"], "-n: expected at most 1839 samples"),
        (["-n", "ten"], "invalid int value"),
        (["--method", "grid"], "invalid choice"),
        (["--device", "tpu"], "invalid choice"),
        (["--mesh-samples", "0"], "--mesh-samples: expected >= 1"),
        (["INPUT:missing.xyz"], "missing.xyz: no such file"),
        (["INPUT:cloud.vtk"], "unknown point-set extension '.vtk'"),
        (["INPUT:bad.xyz"], "malformed point file"),
        (["INPUT:small.xyz", "-n", "4"], "-n: expected at most 3 samples"),
        (["-o", "OUT:no/such/folder/out.ply"], "does not exist"),
        (["--png", "OUT:no/such/folder/out.png"], "does not exist"),
        (["-o", "OUT:out.txt"], "-o: expected a .ply file name"),
        (["--seed", "-1"], "--seed: expected an integer in [0, 2**64 - 1], got -1"),
    ],
)
def test_sample_bad_arguments_exit_2_without_traceback(tmp_path, capsys, args, message):
    (tmp_path / "cloud.vtk").write_text("1 2 3\n")
    (tmp_path / "bad.xyz").write_text("1 2 3\n4 5\n")
    (tmp_path / "small.xyz").write_text("1 2 3\n4 5 6\n7 8 9\n")
    argv = ["sample", "-o", str(tmp_path / "out.ply")]
    for arg in args:
        if arg.startswith("INPUT:"):
            argv.insert(1, str(tmp_path / arg[6:]))
        elif arg.startswith("OUT:"):
            argv.append(str(tmp_path / arg[4:]))
        else:
            argv.append(arg)
    assert cli.main(argv) == 2
    err = capsys.readouterr().err
    assert message in err
    assert "Traceback" not in err
    assert not (tmp_path / "out.ply").exists()


@pytest.mark.skipif(deepscope.cuda_available(), reason="a GPU is usable here")
def test_sample_on_cuda_without_a_gpu_exits_2(tmp_path, capsys):
    argv = ["sample", "--device", "cuda", "-o", str(tmp_path / "o.ply")]
    assert cli.main(argv) == 2
    assert "--device cuda: no usable GPU" in capsys.readouterr().err


# ----------------------------------------------------------------------------
# deepscope sample: outputs, with stand-in samplers


@pytest.mark.parametrize("method", ["fps", "random", "patch"])
def test_sample_writes_ply_png_and_summary(tmp_path, capsys, fake_samplers, method):
    out = tmp_path / "bunny.ply"
    argv = ["sample", "--method", method, "-n", "64", "--seed", "3", "-o", str(out)]
    assert cli.main(argv) == 0
    bunny = datasets.bunny()
    samples = datasets.load_points(out)
    expected = 32 if method == "patch" else 64  # the stand-in pads half with -1
    assert samples.shape == (expected, 3)
    rows = _rows_of(samples, bunny)
    assert len(set(rows.tolist())) == expected
    if method == "fps":
        assert fake_samplers == [("fps", 64, {})]
        assert rows[0] == 0
    elif method == "random":
        assert fake_samplers == [("random", 64, 1, 3)]
    else:
        assert fake_samplers == [("patch", 64, 1, 3)]
    png = out.with_suffix(".png")
    assert _png_size(png) == (1100, 550)
    assert png.stat().st_size > 10_000
    summary = capsys.readouterr().out
    assert "embedded Stanford bunny (vertices): 1839 points" in summary
    assert f"sampled  {expected} points with {method} on cpu" in summary
    assert str(out) in summary
    assert str(png) in summary


def test_sample_default_output_name_and_no_png(tmp_path, monkeypatch, fake_samplers):
    monkeypatch.chdir(tmp_path)
    assert cli.main(["sample", "--method", "curve", "-n", "16", "--no-png"]) == 0
    assert datasets.load_points(tmp_path / "bunny_curve_16.ply").shape == (8, 3)
    assert not list(tmp_path.glob("*.png"))


def test_sample_file_input_custom_png_and_progress(
    tmp_path, capsys, monkeypatch, fake_samplers
):
    points = np.random.default_rng(0).normal(size=(500, 3)) * [1e3, 1e3, 10]
    source = tmp_path / "scan.xyz"
    np.savetxt(source, points + [6e5, 5e6, 100], fmt="%.6f")
    monkeypatch.setattr(cli, "PROGRESS_MIN_POINTS", 100)
    monkeypatch.setattr(cli, "PLOT_MAX_POINTS", 200)
    out, png = tmp_path / "s.ply", tmp_path / "pictures" / "s.png"
    png.parent.mkdir()
    argv = ["sample", str(source), "-n", "50", "-o", str(out), "--png", str(png)]
    assert cli.main(argv) == 0
    samples = datasets.load_points(out)
    _rows_of(samples, datasets.load_points(source))
    assert _png_size(png) == (1100, 550)
    assert not out.with_suffix(".png").exists()
    captured = capsys.readouterr()
    assert f"{source}: 500 points" in captured.out
    assert "stage" in captured.err  # the tqdm bar over load/sample/write


def test_sample_mesh_input_uses_mesh_samples(tmp_path, capsys, fake_samplers):
    import trimesh

    source = tmp_path / "box.off"
    trimesh.creation.box().export(source)
    out = tmp_path / "box.ply"
    argv = ["sample", str(source), "--mesh-samples", "300", "-n", "20", "--no-png"]
    assert cli.main([*argv, "-o", str(out)]) == 0
    assert datasets.load_points(out).shape == (20, 3)
    assert f"{source}: 300 points" in capsys.readouterr().out


# ----------------------------------------------------------------------------
# deepscope sample with the real samplers (after the sampler branches merge)


@pytest.mark.parametrize("method", ["fps", "random", "patch", "curve"])
def test_sample_with_real_samplers(tmp_path, capsys, method):
    out = tmp_path / "o.ply"
    argv = ["sample", "--method", method, "-n", "256", "-o", str(out), "--no-png"]
    assert cli.main(argv) == 0, capsys.readouterr().err
    bunny = datasets.bunny()
    samples = datasets.load_points(out)
    assert 1 <= samples.shape[0] <= 256
    rows = _rows_of(samples, bunny)
    if method == "fps":
        expected = pointcloud.farthest_point_sample(bunny, 256).indices
        np.testing.assert_array_equal(rows, np.asarray(expected))
    if method in ("fps", "random", "patch"):
        assert samples.shape[0] == 256
        assert len(set(rows.tolist())) == 256


def test_sample_real_fps_writes_png(tmp_path):
    out = tmp_path / "fps.ply"
    assert cli.main(["sample", "-n", "128", "-o", str(out)]) == 0
    assert _png_size(out.with_suffix(".png")) == (1100, 550)


def test_sample_on_cuda_matches_cpu(tmp_path):
    if not deepscope.cuda_available():
        pytest.skip("no usable GPU")
    pytest.importorskip("torch")
    for device in ("cpu", "cuda"):
        argv = ["sample", "-n", "300", "--device", device, "--no-png"]
        assert cli.main([*argv, "-o", str(tmp_path / f"{device}.ply")]) == 0
    np.testing.assert_array_equal(
        datasets.load_points(tmp_path / "cpu.ply"),
        datasets.load_points(tmp_path / "cuda.ply"),
    )
