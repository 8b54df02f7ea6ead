# Tests for deepscope.datasets: readers, the PLY writer and the embedded bunny.
# SPDX-License-Identifier: MIT
from __future__ import annotations

import logging
import sys
from importlib import resources
from pathlib import Path

import numpy as np
import pytest

from deepscope import datasets

trimesh = pytest.importorskip("trimesh")
laspy = pytest.importorskip("laspy")

AUTZEN = Path("/work/data/bench/laspy/autzen_trim.laz")
CGAL_POINTS = Path("/work/data/bench/cgal/points_3")
# First vertex of index.js in the npm package bunny@1.0.1.
BUNNY_FIRST_VERTEX = [1.301895, 0.122622, 2.550061]


def _has_lazrs() -> bool:
    return bool(laspy.LazBackend.detect_available())


# ----------------------------------------------------------------------------
# The embedded bunny


def test_bunny_data_file_ships_inside_the_package():
    data = resources.files("deepscope").joinpath("data")
    ply = data.joinpath("bunny.ply")
    assert ply.is_file()
    assert 20_000 < len(ply.read_bytes()) < 100_000
    assert ply.read_bytes().startswith(b"ply\nformat binary_little_endian 1.0\n")
    notice = data.joinpath("README.md").read_text()
    assert "bunny" in notice
    assert "Public" in notice
    assert "Stanford" in notice


def test_bunny_vertices_match_the_npm_source():
    points = datasets.bunny()
    assert points.shape == (1839, 3)
    assert points.dtype == np.float64
    assert points.flags.c_contiguous
    np.testing.assert_allclose(points[0], BUNNY_FIRST_VERTEX, rtol=1e-6)
    np.testing.assert_allclose(points.min(0), [-4.958475, -0.003149, -3.729833], 1e-6)
    np.testing.assert_allclose(points.max(0), [4.94885, 9.654748, 3.810639], 1e-6)
    assert len(np.unique(points, axis=0)) == 1839


def test_bunny_returns_a_fresh_copy():
    points = datasets.bunny()
    points[:] = 0
    assert np.abs(datasets.bunny()).max() > 1


def test_bunny_surface_samples_are_seeded_and_on_the_surface():
    a = datasets.bunny(2000, seed=3)
    assert a.shape == (2000, 3)
    np.testing.assert_array_equal(a, datasets.bunny(2000, seed=3))
    assert not np.array_equal(a, datasets.bunny(2000, seed=4))
    vertices = datasets.bunny()
    assert (a >= vertices.min(0) - 1e-9).all()
    assert (a <= vertices.max(0) + 1e-9).all()
    # Every sample lies inside its triangle: barycentric coordinates in [0, 1]
    # and no offset along the triangle's normal.
    mesh = datasets._bunny_mesh()
    points, attributes = datasets._sample_mesh(mesh, 2000, 3, "bunny")
    np.testing.assert_array_equal(points, a)
    triangles = np.asarray(mesh.triangles, dtype=np.float64)[attributes["face_index"]]
    weights = trimesh.triangles.points_to_barycentric(triangles, points)
    assert (weights > -1e-6).all()
    assert (weights < 1 + 1e-6).all()
    height = np.einsum("ij,ij->i", points - triangles[:, 0], attributes["normals"])
    assert np.abs(height).max() < 1e-5


def test_load_default_is_the_bunny():
    np.testing.assert_array_equal(datasets.load_default(), datasets.bunny())
    np.testing.assert_array_equal(datasets.load_default(10, 1), datasets.bunny(10, 1))


@pytest.mark.parametrize("n_points", [0, -1, 2.5, True])
def test_bunny_rejects_bad_n_points(n_points):
    with pytest.raises(ValueError, match="n_points"):
        datasets.bunny(n_points)


# ----------------------------------------------------------------------------
# save_ply and PLY point files


def test_save_ply_round_trip_float64_is_exact(tmp_path, rng):
    points = rng.normal(size=(500, 3)) * 1e5 + 6e5
    path = datasets.save_ply(tmp_path / "cloud.ply", points)
    assert path == tmp_path / "cloud.ply"
    header = path.read_bytes()[:200]
    assert header.startswith(b"ply\nformat binary_little_endian 1.0\n")
    assert b"property double x" in header
    back = datasets.load_points(path)
    assert back.dtype == np.float64
    np.testing.assert_array_equal(back, points)


def test_save_ply_round_trip_float32_and_colors(tmp_path, rng):
    points = rng.random((50, 3)).astype(np.float32)
    colors = rng.integers(0, 256, size=(50, 3)).astype(np.uint8)
    path = datasets.save_ply(tmp_path / "c.ply", points, colors=colors)
    back, attributes = datasets.load_points(path, return_attributes=True)
    np.testing.assert_array_equal(back, points.astype(np.float64))
    np.testing.assert_array_equal(attributes["red"], colors[:, 0])
    np.testing.assert_array_equal(attributes["blue"], colors[:, 2])


def test_save_ply_float_colors_and_alpha(tmp_path):
    points = np.eye(3)
    colors = np.array([[0, 0, 0, 1], [1, 1, 1, 0.5], [0.2, 0.4, 0.6, 0]])
    path = datasets.save_ply(tmp_path / "c.ply", points, colors=colors)
    _, attributes = datasets.load_points(path, return_attributes=True)
    np.testing.assert_array_equal(attributes["alpha"], [255, 128, 0])
    np.testing.assert_array_equal(attributes["green"], [0, 255, 102])


def test_save_ply_accepts_torch_and_leaves_input_alone(tmp_path):
    torch = pytest.importorskip("torch")
    points = torch.arange(12, dtype=torch.float64).reshape(4, 3).requires_grad_()
    path = datasets.save_ply(tmp_path / "t.ply", points)
    np.testing.assert_array_equal(
        datasets.load_points(path), np.arange(12.0).reshape(4, 3)
    )


def test_save_ply_without_plyfile_writes_float32_with_trimesh(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "plyfile", None)
    points = np.array([[0.1, 0.2, 0.3], [1e3, 2e3, 3e3]])
    path = datasets.save_ply(tmp_path / "f.ply", points)
    assert b"property float x" in path.read_bytes()[:200]
    back = datasets.load_points(path)
    np.testing.assert_allclose(back, points, rtol=1e-7)
    with pytest.raises(ValueError, match="plyfile"):
        datasets.save_ply(tmp_path / "empty.ply", np.zeros((0, 3)))


def test_save_ply_empty_cloud_with_plyfile(tmp_path):
    pytest.importorskip("plyfile")
    path = datasets.save_ply(tmp_path / "empty.ply", np.zeros((0, 3)))
    assert b"element vertex 0" in path.read_bytes()
    with pytest.raises(ValueError, match="no points"):
        datasets.load_points(path)


@pytest.mark.parametrize(
    ("points", "colors", "match"),
    [
        (np.zeros((4, 2)), None, r"points: expected shape \(N, 3\)"),
        (np.zeros((2, 3, 3)), None, r"points: expected shape \(N, 3\)"),
        (np.zeros((4, 3), dtype=np.int64), None, "points: expected a float dtype"),
        (np.array([[0.0, np.nan, 0.0]]), None, "points: expected finite"),
        (np.zeros((4, 3)), np.zeros((3, 3)), "colors: expected shape"),
        (np.zeros((1, 3)), np.array([[0, 0, 2.0]]), "colors: float colours"),
        (np.zeros((1, 3)), np.array([[0, 0, 300]]), "colors: integer colours"),
    ],
)
def test_save_ply_rejects_bad_input(tmp_path, points, colors, match):
    with pytest.raises(ValueError, match=match):
        datasets.save_ply(tmp_path / "x.ply", points, colors=colors)


def test_ply_with_faces_is_a_mesh_and_without_faces_is_points(tmp_path):
    box = trimesh.creation.box()
    box.export(tmp_path / "box.ply")
    samples = datasets.load_points(tmp_path / "box.ply", n_points=300)
    assert samples.shape == (300, 3)
    np.testing.assert_allclose(np.abs(samples).max(axis=1), 0.5, atol=1e-6)
    trimesh.PointCloud(box.vertices).export(tmp_path / "corners.ply")
    corners = datasets.load_points(tmp_path / "corners.ply")
    np.testing.assert_allclose(corners, box.vertices, atol=1e-7)


# ----------------------------------------------------------------------------
# Meshes


@pytest.mark.parametrize("ext", [".off", ".obj", ".stl", ".ply", ".OFF"])
def test_mesh_files_are_sampled_on_the_surface(tmp_path, ext):
    box = trimesh.creation.box(extents=(2.0, 4.0, 6.0))
    path = tmp_path / f"box{ext}"
    data = box.export(file_type=ext[1:].lower())
    path.write_bytes(data.encode() if isinstance(data, str) else data)
    points, attributes = datasets.load_points(
        path, n_points=1000, seed=7, return_attributes=True
    )
    assert points.shape == (1000, 3)
    assert points.dtype == np.float64
    # On the surface of the box: some coordinate sits on a face plane.
    on_face = np.isclose(np.abs(points), [1.0, 2.0, 3.0], atol=1e-9).any(axis=1)
    assert on_face.all()
    assert attributes["face_index"].shape == (1000,)
    assert attributes["face_index"].dtype == np.int64
    normals = attributes["normals"]
    assert normals.shape == (1000, 3)
    np.testing.assert_allclose(np.linalg.norm(normals, axis=1), 1.0)
    again = datasets.load_points(path, n_points=1000, seed=7)
    np.testing.assert_array_equal(points, again)


def test_mesh_default_sample_count(tmp_path):
    trimesh.creation.icosahedron().export(tmp_path / "ico.off")
    points = datasets.load_points(tmp_path / "ico.off")
    assert points.shape == (datasets.DEFAULT_MESH_SAMPLES, 3)
    assert datasets.DEFAULT_MESH_SAMPLES == 50_000


def test_mesh_without_area_is_rejected(tmp_path):
    path = tmp_path / "flat.off"
    path.write_text("OFF\n3 1 0\n0 0 0\n1 0 0\n2 0 0\n3 0 1 2\n")
    with pytest.raises(ValueError, match="zero surface area"):
        datasets.load_points(path)


def test_off_without_faces_gives_vertices(tmp_path):
    path = tmp_path / "pts.off"
    path.write_text("OFF\n3 0 0\n0 0 0\n1 0 0\n0 1 0\n")
    np.testing.assert_array_equal(
        datasets.load_points(path), [[0, 0, 0], [1, 0, 0], [0, 1, 0]]
    )


@pytest.mark.parametrize(
    ("name", "text", "match"),
    [
        ("empty.off", "", "no points"),
        ("bad.off", "OFF\n3 1 0\n0 0 0\n1 0 x\n", "could not read mesh"),
        ("nan.off", "OFF\n3 1 0\n0 0 0\n1 0 nan\n0 1 0\n3 0 1 2\n", "NaN or inf"),
    ],
)
def test_bad_mesh_files_are_rejected(tmp_path, name, text, match):
    path = tmp_path / name
    path.write_text(text)
    with pytest.raises(ValueError, match=match) as error:
        datasets.load_points(path)
    assert str(path) in str(error.value) or match == "NaN or inf"


# ----------------------------------------------------------------------------
# Text point files


def test_xyz_whitespace_with_extra_columns(tmp_path, rng):
    table = rng.normal(size=(100, 6))
    path = tmp_path / "cloud.xyz"
    np.savetxt(path, table, fmt="%.17g")
    points, attributes = datasets.load_points(path, return_attributes=True)
    np.testing.assert_array_equal(points, table[:, :3])
    np.testing.assert_array_equal(attributes["columns"], table[:, 3:])
    assert "column_names" not in attributes
    assert datasets.load_points(path).flags.c_contiguous


def test_csv_with_header_comments_and_blank_lines(tmp_path):
    path = tmp_path / "cloud.csv"
    path.write_text(
        "# exported by a scanner\nx,y,z,intensity\n\n1,2,3,10\n4, 5, 6 ,20\n"
        "// a comment line\n7,8,9,30\n"
    )
    points, attributes = datasets.load_points(path, return_attributes=True)
    np.testing.assert_array_equal(points, [[1, 2, 3], [4, 5, 6], [7, 8, 9]])
    np.testing.assert_array_equal(attributes["columns"], [[10], [20], [30]])
    assert attributes["column_names"] == ["x", "y", "z", "intensity"]


def test_pts_with_a_point_count_line(tmp_path):
    path = tmp_path / "scan.PTS"
    path.write_text("2\n0.5 1.5 2.5 100 255 0 0\n-1 -2 -3 50 0 255 0\n")
    points, attributes = datasets.load_points(path, return_attributes=True)
    np.testing.assert_array_equal(points, [[0.5, 1.5, 2.5], [-1, -2, -3]])
    assert attributes["columns"].shape == (2, 4)


def test_txt_single_point(tmp_path):
    path = tmp_path / "one.txt"
    path.write_text("1e-6 0 1e5\n")
    np.testing.assert_array_equal(datasets.load_points(path), [[1e-6, 0, 1e5]])


def test_subsample_is_uniform_seeded_and_in_file_order(tmp_path, rng):
    table = np.column_stack([np.arange(1000.0), rng.random((1000, 2))])
    path = tmp_path / "c.xyz"
    np.savetxt(path, table, fmt="%.17g")
    a, attributes = datasets.load_points(
        path, n_points=100, seed=1, return_attributes=True
    )
    assert a.shape == (100, 3)
    assert attributes == {}
    ids = a[:, 0].astype(int)
    assert len(set(ids)) == 100
    assert (np.diff(ids) > 0).all()
    np.testing.assert_array_equal(a, table[ids])
    np.testing.assert_array_equal(a, datasets.load_points(path, n_points=100, seed=1))
    assert not np.array_equal(a, datasets.load_points(path, n_points=100, seed=2))
    np.testing.assert_array_equal(datasets.load_points(path, n_points=1000), table)


def test_subsample_keeps_attributes_aligned(tmp_path):
    table = np.column_stack([np.arange(50.0)] * 4)
    path = tmp_path / "c.xyz"
    np.savetxt(path, table)
    points, attributes = datasets.load_points(path, n_points=10, return_attributes=True)
    np.testing.assert_array_equal(attributes["columns"][:, 0], points[:, 0])


@pytest.mark.parametrize(
    ("text", "match"),
    [
        ("", "contains no points"),
        ("# only a comment\n\n", "contains no points"),
        ("1 2 3\n4 5\n", "malformed point file"),
        ("1 2 3\n4 5 six\n", "malformed point file"),
        ("x y z\nnot numbers here\n", "malformed point file"),
        ("1 2\n3 4\n", "at least 3 columns"),
        ("1 2 3\nnan 0 0\n0 inf 0\n", "2 of 3 points hold NaN or inf"),
    ],
)
def test_bad_text_files_are_rejected(tmp_path, text, match):
    path = tmp_path / "bad.xyz"
    path.write_text(text)
    with pytest.raises(ValueError, match=match) as error:
        datasets.load_points(path)
    assert str(path) in str(error.value)


# ----------------------------------------------------------------------------
# LiDAR


def _write_las(path: Path, points: np.ndarray) -> None:
    header = laspy.LasHeader(point_format=3, version="1.2")
    header.scales = np.array([0.001, 0.001, 0.001])
    header.offsets = np.floor(points.min(axis=0)) if len(points) else np.zeros(3)
    las = laspy.LasData(header)
    las.x, las.y, las.z = points.T
    las.classification = (np.arange(len(points)) % 3 + 1).astype(np.uint8)
    las.red = np.arange(len(points), dtype=np.uint16) * 7
    las.green = np.full(len(points), 5, dtype=np.uint16)
    las.blue = np.full(len(points), 9, dtype=np.uint16)
    las.write(str(path))


@pytest.mark.parametrize("ext", [".las", ".laz"])
def test_las_round_trip_with_attributes(tmp_path, rng, ext):
    if ext == ".laz" and not _has_lazrs():
        pytest.skip("lazrs not installed")
    points = rng.random((300, 3)) * [100, 50, 10] + [637_000, 850_000, 400]
    path = tmp_path / f"scan{ext}"
    _write_las(path, points)
    back, attributes = datasets.load_points(path, return_attributes=True)
    assert back.shape == (300, 3)
    assert back.dtype == np.float64
    np.testing.assert_allclose(back, points, atol=0.0006)
    np.testing.assert_array_equal(attributes["classification"], np.arange(300) % 3 + 1)
    assert attributes["rgb"].shape == (300, 3)
    np.testing.assert_array_equal(attributes["rgb"][:, 0], np.arange(300) * 7)
    assert "X" not in attributes
    sub, sub_attributes = datasets.load_points(
        path, n_points=40, seed=0, return_attributes=True
    )
    assert sub.shape == (40, 3)
    assert sub_attributes["classification"].shape == (40,)
    rows = np.flatnonzero((back[:, None] == sub[None]).all(-1).any(1))
    np.testing.assert_array_equal(
        sub_attributes["classification"], attributes["classification"][rows]
    )


def test_empty_las_is_rejected(tmp_path):
    path = tmp_path / "empty.las"
    _write_las(path, np.zeros((0, 3)))
    with pytest.raises(ValueError, match="no points"):
        datasets.load_points(path)


def test_corrupt_las_is_rejected(tmp_path):
    path = tmp_path / "bad.las"
    path.write_bytes(b"LASF" + bytes(50))
    with pytest.raises(ValueError, match="could not read LAS/LAZ") as error:
        datasets.load_points(path)
    assert str(path) in str(error.value)


@pytest.mark.skipif(not AUTZEN.exists(), reason=f"{AUTZEN} not present")
def test_real_autzen_lidar():
    if not _has_lazrs():
        pytest.skip("lazrs not installed")
    points, attributes = datasets.load_points(AUTZEN, return_attributes=True)
    assert points.shape == (110_000, 3)
    extent = points.max(0) - points.min(0)
    np.testing.assert_allclose(extent, [1178, 563, 114], atol=2)
    counts = np.bincount(attributes["classification"])
    assert counts[1] == 83_893
    assert counts[2] == 26_107
    assert attributes["rgb"].shape == (110_000, 3)


@pytest.mark.skipif(not CGAL_POINTS.exists(), reason=f"{CGAL_POINTS} not present")
def test_real_cgal_point_files():
    kitten = datasets.load_points(CGAL_POINTS / "kitten.xyz")
    assert kitten.shape == (5210, 3)
    points, attributes = datasets.load_points(
        CGAL_POINTS / "b9_training.ply", return_attributes=True
    )
    assert points.shape == (22_300, 3)
    assert set(np.unique(attributes["label"])) == {-1, 0, 1, 2}


# ----------------------------------------------------------------------------
# Arguments, missing files and dependencies


def test_missing_file_names_the_path(tmp_path):
    path = tmp_path / "nope.xyz"
    with pytest.raises(FileNotFoundError, match="nope.xyz"):
        datasets.load_points(path)
    with pytest.raises(FileNotFoundError, match="not a regular file"):
        datasets.load_points(tmp_path)


def test_unknown_extension_names_the_path_and_the_formats(tmp_path):
    path = tmp_path / "cloud.vtk"
    path.write_text("1 2 3\n")
    with pytest.raises(ValueError, match=r"cloud\.vtk.*'\.vtk'.*\.laz"):
        datasets.load_points(path)


@pytest.mark.parametrize("n_points", [0, -3, 1.5, True, "10"])
def test_bad_n_points(tmp_path, n_points):
    path = tmp_path / "c.xyz"
    path.write_text("1 2 3\n4 5 6\n")
    with pytest.raises(ValueError, match="n_points"):
        datasets.load_points(path, n_points=n_points)


def test_n_points_more_than_available(tmp_path):
    path = tmp_path / "c.xyz"
    path.write_text("1 2 3\n4 5 6\n")
    with pytest.raises(ValueError, match=r"n_points: expected n_points <= 2"):
        datasets.load_points(path, n_points=3)
    assert datasets.load_points(path, n_points=np.int64(1)).shape == (1, 3)


def test_missing_trimesh_says_which_extra(tmp_path, monkeypatch):
    path = tmp_path / "box.off"
    trimesh.creation.box().export(path)
    monkeypatch.setitem(sys.modules, "trimesh", None)
    with pytest.raises(ImportError, match=r"trimesh.*pip install deepscope\[io\]"):
        datasets.load_points(path)


def test_missing_laspy_says_which_extra(tmp_path, monkeypatch):
    path = tmp_path / "scan.las"
    path.write_bytes(b"LASF")
    monkeypatch.setitem(sys.modules, "laspy", None)
    with pytest.raises(ImportError, match=r"laspy.*pip install deepscope\[io\]"):
        datasets.load_points(path)


def test_loading_logs_and_does_not_print(tmp_path, caplog, capsys):
    path = tmp_path / "c.xyz"
    path.write_text("1 2 3\n")
    with caplog.at_level(logging.INFO, logger="deepscope.datasets"):
        datasets.load_points(path)
    assert "read 1 points" in caplog.text
    assert capsys.readouterr() == ("", "")
