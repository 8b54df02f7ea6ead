# Real point sets: readers for meshes, point files and LiDAR, a PLY writer, the bunny.
# SPDX-License-Identifier: MIT
"""Real point sets as ``(N, 3)`` float64 NumPy arrays.

:func:`load_points` reads

* meshes (``.off .obj .stl``, and ``.ply`` files that have faces), sampled
  uniformly on the surface with trimesh (``DEFAULT_MESH_SAMPLES`` points unless
  ``n_points`` is given);
* point files (``.xyz .pts .pwn .txt .csv``): whitespace- or comma-separated
  columns, the first three are x, y, z; ``.ply`` files without faces;
* LiDAR (``.las``, and ``.laz`` with the lazrs backend) through laspy, as
  scaled coordinates.

:func:`bunny` returns the low-resolution Stanford bunny that ships inside the
package (1,839 vertices, 3,674 triangles; see ``deepscope/data/README.md`` for
its source and terms).

trimesh and laspy are optional dependencies (``pip install deepscope[io]``)
and are imported only when a file needs them. Progress is logged through the
``deepscope.datasets`` logger; the library never prints.
"""

from __future__ import annotations

import importlib
import logging
import os
import time
from functools import cache
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np

from deepscope._arrays import check_count, check_seed, to_numpy

__all__ = [
    "DEFAULT_MESH_SAMPLES",
    "LIDAR_EXTENSIONS",
    "MESH_EXTENSIONS",
    "POINT_EXTENSIONS",
    "bunny",
    "load_default",
    "load_points",
    "save_ply",
]

logger = logging.getLogger(__name__)

#: Surface samples drawn from a mesh when ``n_points`` is not given.
DEFAULT_MESH_SAMPLES = 50_000
#: Extensions read as triangle meshes (``.ply`` is a mesh only if it has faces).
MESH_EXTENSIONS = (".off", ".obj", ".stl", ".ply")
#: Extensions read as text columns x, y, z, extra...
POINT_EXTENSIONS = (".xyz", ".pts", ".pwn", ".txt", ".csv")
#: Extensions read with laspy.
LIDAR_EXTENSIONS = (".las", ".laz")

_COMMENTS = ("#", "//")
_INSTALL_HINT = "install it with `pip install deepscope[io]`"


def load_points(
    path: str | os.PathLike[str],
    *,
    n_points: int | None = None,
    seed: int = 0,
    return_attributes: bool = False,
) -> np.ndarray | tuple[np.ndarray, dict[str, Any]]:
    """Reads a real point set from a mesh, point or LiDAR file.

    Args:
        path: file to read; the format follows the extension (case-insensitive):
            ``.off .obj .stl .ply`` (mesh, or vertices when the file has no
            faces), ``.xyz .pts .pwn .txt .csv`` (text columns), ``.las .laz``.
        n_points: for meshes, the number of surface samples (default
            ``DEFAULT_MESH_SAMPLES`` = 50,000; area-uniform, seeded); for point
            and LiDAR files, a uniform subsample without replacement of this
            size, kept in file order (default: all points).
        seed: seed of the surface sampling or the subsampling.
        return_attributes: also return a dict of per-point attributes.

    Returns:
        points: ``(N, 3)`` float64, C-contiguous. With ``return_attributes``, a
        tuple ``(points, attributes)`` where each attribute is an array whose
        first axis has length N:

        * text files: ``columns`` ``(N, C - 3)`` float64 when there are more
          than three columns, and ``column_names`` (list of str, all C names)
          when the file has a header row;
        * ``.ply`` point files: every vertex property other than x, y, z under
          its own name (e.g. ``red``, ``nx``, ``label``);
        * LiDAR: every point dimension other than X, Y, Z under its laspy name
          (``intensity``, ``classification``, ``gps_time``...), plus ``rgb``
          ``(N, 3)`` uint16 when the format has colours;
        * meshes: ``face_index`` ``(N,)`` int64 (triangle of each sample) and
          ``normals`` ``(N, 3)`` float64 (that triangle's unit normal).

    Raises:
        FileNotFoundError: ``path`` does not exist or is not a file.
        ValueError: unknown extension, bad ``n_points``, an empty, malformed
            or unreadable file, or rows holding NaN or inf.
        ImportError: trimesh (meshes, PLY) or laspy / lazrs (LAS / LAZ) is not
            installed.
    """
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"{path}: no such file")
    if not path.is_file():
        raise FileNotFoundError(f"{path}: not a regular file")
    if n_points is not None:
        n_points = check_count(n_points, "n_points")
    seed = check_seed(seed)

    start = time.perf_counter()
    ext = path.suffix.lower()
    if ext in POINT_EXTENSIONS:
        points, attributes = _read_text(path)
    elif ext in LIDAR_EXTENSIONS:
        points, attributes = _read_lidar(path)
    elif ext in MESH_EXTENSIONS:
        geometry = _read_trimesh(path)
        if len(getattr(geometry, "faces", ())) > 0:
            count = DEFAULT_MESH_SAMPLES if n_points is None else n_points
            points, attributes = _sample_mesh(geometry, count, seed, str(path))
            n_points = None  # already the requested size
        else:
            points, attributes = _vertices_of(geometry)
    else:
        supported = " ".join(MESH_EXTENSIONS + POINT_EXTENSIONS + LIDAR_EXTENSIONS)
        raise ValueError(
            f"{path}: unknown point-set extension {path.suffix!r}; "
            f"expected one of {supported}"
        )

    _check_points(points, str(path))
    if n_points is not None:
        points, attributes = _subsample(points, attributes, n_points, seed, path)
    logger.info(
        "read %d points from %s in %.3f s",
        points.shape[0],
        path,
        time.perf_counter() - start,
    )
    if return_attributes:
        return points, attributes
    return points


def save_ply(
    path: str | os.PathLike[str],
    points: Any,
    *,
    colors: Any = None,
) -> Path:
    """Writes points as a binary little-endian PLY point cloud.

    With plyfile installed, coordinates keep their precision (``double`` for
    float64 input, ``float`` for float32), so a float64 cloud reads back
    exactly. Without it, trimesh writes ``float`` (float32) coordinates.

    Args:
        path: output file; parent folders must exist.
        points: ``(N, 3)`` float array (NumPy, torch or CuPy; N may be 0).
        colors: optional ``(N, 3)`` or ``(N, 4)`` colours, uint8 (0-255) or
            float in [0, 1]; written as uchar ``red green blue [alpha]``.

    Returns:
        The path written.

    Raises:
        ValueError: wrong shapes, non-float points, NaN / inf coordinates or
            colours out of range.
        ImportError: neither plyfile nor trimesh is installed.
    """
    path = Path(path)
    xyz = np.asarray(to_numpy(points))
    if xyz.ndim != 2 or xyz.shape[1] != 3:
        raise ValueError(f"points: expected shape (N, 3), got {xyz.shape}")
    if not np.issubdtype(xyz.dtype, np.floating):
        raise ValueError(f"points: expected a float dtype, got {xyz.dtype}")
    if xyz.dtype not in (np.float32, np.float64):
        xyz = xyz.astype(np.float32)
    if not np.isfinite(xyz).all():
        raise ValueError("points: expected finite values, found NaN or inf")
    rgba = None if colors is None else _as_uint8_colors(colors, xyz.shape[0])

    try:
        import plyfile
    except ImportError:
        plyfile = None
    if plyfile is not None:
        fields = [(name, xyz.dtype.newbyteorder("<")) for name in ("x", "y", "z")]
        if rgba is not None:
            names = ("red", "green", "blue", "alpha")[: rgba.shape[1]]
            fields += [(name, "u1") for name in names]
        vertex = np.empty(xyz.shape[0], dtype=fields)
        for i, name in enumerate(("x", "y", "z")):
            vertex[name] = xyz[:, i]
        if rgba is not None:
            for i, name in enumerate(names):
                vertex[name] = rgba[:, i]
        element = plyfile.PlyElement.describe(vertex, "vertex")
        plyfile.PlyData([element], text=False, byte_order="<").write(str(path))
    else:
        trimesh = _import("trimesh", "writing PLY files")
        if xyz.shape[0] == 0:
            raise ValueError(
                "points: writing an empty cloud needs plyfile; "
                "install it with `pip install plyfile`"
            )
        cloud = trimesh.PointCloud(xyz, colors=rgba)
        path.write_bytes(cloud.export(file_type="ply", encoding="binary"))
    logger.info("wrote %d points to %s", xyz.shape[0], path)
    return path


def bunny(n_points: int | None = None, seed: int = 0) -> np.ndarray:
    """The low-resolution Stanford bunny that ships with deepscope.

    A real range scan (Turk and Levoy, Stanford 3D Scanning Repository,
    1994), as simplified in the npm package ``bunny`` 1.0.1: 1,839 vertices
    and 3,674 triangles, a closed genus-0 surface about 10 units tall with the
    y axis up. Needs trimesh (``pip install deepscope[io]``).

    Args:
        n_points: None for the mesh vertices; otherwise this many points
            sampled uniformly on the surface (seeded).
        seed: seed of the surface sampling.

    Returns:
        ``(1839, 3)`` float64 vertices, or ``(n_points, 3)`` float64 samples.
    """
    mesh = _bunny_mesh()
    if n_points is None:
        return np.array(mesh.vertices, dtype=np.float64)
    n_points = check_count(n_points, "n_points")
    points, _ = _sample_mesh(mesh, n_points, check_seed(seed), "bunny")
    return points


def load_default(n_points: int | None = None, seed: int = 0) -> np.ndarray:
    """The default real scan of examples and the CLI: :func:`bunny`."""
    return bunny(n_points, seed)


# ----------------------------------------------------------------------------
# Readers


def _import(module: str, purpose: str, package: str | None = None) -> Any:
    """Imports an optional dependency or says which extra to install."""
    try:
        return importlib.import_module(module)
    except ImportError as error:
        raise ImportError(
            f"{purpose} needs {package or module}; {_INSTALL_HINT}"
        ) from error


def _read_text(path: Path) -> tuple[np.ndarray, dict[str, Any]]:
    """Reads columns x y z [extra...] separated by whitespace or commas."""
    # Find the first data line: skip comments, a header row of names and a
    # single point-count line (as written at the top of some .pts files).
    skip, first, names = 0, None, None
    with path.open("r", encoding="utf-8", errors="replace") as stream:
        for line in stream:
            skip += 1
            text = line.strip()
            if not text or text.startswith(_COMMENTS):
                continue
            tokens = text.replace(",", " ").split()
            if not all(_is_number(token) for token in tokens):
                if names is None and first is None:
                    names = tokens
                    continue
                raise ValueError(
                    f"{path}: malformed point file, line {skip} is not numeric: "
                    f"{text[:60]!r}"
                )
            if len(tokens) == 1 and tokens[0].isdigit() and names is None:
                continue
            first = text
            skip -= 1
            break
    if first is None:
        raise ValueError(f"{path}: contains no points")

    delimiter = "," if "," in first else None
    try:
        table = np.loadtxt(
            path,
            dtype=np.float64,
            delimiter=delimiter,
            comments=list(_COMMENTS),
            skiprows=skip,
            ndmin=2,
            encoding="utf-8",
        )
    except ValueError as error:
        raise ValueError(f"{path}: malformed point file: {error}") from error
    if table.shape[1] < 3:
        raise ValueError(
            f"{path}: expected at least 3 columns (x y z), got {table.shape[1]}"
        )

    attributes: dict[str, Any] = {}
    if table.shape[1] > 3:
        attributes["columns"] = np.ascontiguousarray(table[:, 3:])
    if names is not None:
        if len(names) != table.shape[1]:
            raise ValueError(
                f"{path}: header names {len(names)} columns but rows have "
                f"{table.shape[1]}"
            )
        attributes["column_names"] = names
    return np.ascontiguousarray(table[:, :3]), attributes


def _is_number(token: str) -> bool:
    try:
        float(token)
    except ValueError:
        return False
    return True


def _read_lidar(path: Path) -> tuple[np.ndarray, dict[str, Any]]:
    """Reads scaled x, y, z and every other point dimension with laspy."""
    laspy = _import("laspy", f"reading {path.suffix} files", "laspy")
    try:
        las = laspy.read(str(path))
    except laspy.errors.LaspyException as error:
        if "LazBackend" in str(error) or "decompress" in str(error).lower():
            raise ImportError(
                f"{path}: reading .laz files needs the lazrs backend "
                f"(laspy[lazrs]); {_INSTALL_HINT}"
            ) from error
        raise ValueError(f"{path}: could not read LAS/LAZ file: {error}") from error
    except (OSError, ValueError, EOFError) as error:
        raise ValueError(f"{path}: could not read LAS/LAZ file: {error}") from error

    points = np.column_stack(
        [np.asarray(las.x), np.asarray(las.y), np.asarray(las.z)]
    ).astype(np.float64)
    attributes: dict[str, Any] = {}
    for name in las.point_format.dimension_names:
        if name in ("X", "Y", "Z"):
            continue
        attributes[name] = np.asarray(las[name])
    if all(name in attributes for name in ("red", "green", "blue")):
        attributes["rgb"] = np.column_stack(
            [attributes["red"], attributes["green"], attributes["blue"]]
        )
    return points, attributes


def _read_trimesh(path: Path) -> Any:
    """The triangle mesh or point cloud in ``path``, read by trimesh."""
    trimesh = _import("trimesh", f"reading {path.suffix} files")
    if path.stat().st_size == 0:
        raise ValueError(f"{path}: contains no points (empty file)")
    try:
        loaded = trimesh.load(str(path), process=False)
    except Exception as error:  # trimesh raises many types on bad input
        raise ValueError(f"{path}: could not read mesh: {error}") from error
    if isinstance(loaded, trimesh.Scene):
        if not loaded.geometry:
            raise ValueError(f"{path}: contains no points")
        loaded = loaded.to_geometry()
    if not isinstance(loaded, trimesh.Trimesh | trimesh.PointCloud):
        raise ValueError(
            f"{path}: expected a triangle mesh or point cloud, "
            f"got {type(loaded).__name__}"
        )
    return loaded


def _vertices_of(geometry: Any) -> tuple[np.ndarray, dict[str, Any]]:
    """The vertices of a face-less geometry and, for PLY, their properties."""
    points = np.asarray(geometry.vertices, dtype=np.float64).reshape(-1, 3)
    attributes: dict[str, Any] = {}
    raw = geometry.metadata.get("_ply_raw", {}).get("vertex", {}).get("data")
    if raw is not None:
        columns = raw.dtype.names if hasattr(raw, "dtype") else list(raw)
        for name in columns or ():
            if name in ("x", "y", "z"):
                continue
            value = np.asarray(raw[name]).reshape(points.shape[0], -1)
            attributes[name] = value[:, 0] if value.shape[1] == 1 else value
    return np.ascontiguousarray(points), attributes


def _sample_mesh(
    mesh: Any, count: int, seed: int, name: str
) -> tuple[np.ndarray, dict[str, Any]]:
    """Area-uniform surface samples of a triangle mesh."""
    import trimesh

    vertices = np.asarray(mesh.vertices)
    if not np.isfinite(vertices).all():
        raise ValueError(f"{name}: mesh vertices hold NaN or inf")
    if not mesh.area > 0:
        raise ValueError(f"{name}: mesh has zero surface area; cannot sample it")
    points, face_index = trimesh.sample.sample_surface(mesh, count, seed=seed)
    face_index = np.asarray(face_index, dtype=np.int64)
    attributes = {
        "face_index": face_index,
        "normals": np.asarray(mesh.face_normals, dtype=np.float64)[face_index],
    }
    return np.ascontiguousarray(points, dtype=np.float64), attributes


@cache
def _bunny_mesh() -> Any:
    trimesh = _import("trimesh", "the embedded bunny")
    data = resources.files("deepscope").joinpath("data", "bunny.ply")
    with data.open("rb") as stream:
        mesh = trimesh.load(stream, file_type="ply", process=False)
    return mesh


# ----------------------------------------------------------------------------
# Checks and helpers


def _check_points(points: np.ndarray, name: str) -> None:
    if points.shape[0] == 0:
        raise ValueError(f"{name}: contains no points")
    finite = np.isfinite(points).all(axis=1)
    if not finite.all():
        bad = np.flatnonzero(~finite)
        raise ValueError(
            f"{name}: {bad.size} of {points.shape[0]} points hold NaN or inf "
            f"(first at point index {bad[0]})"
        )


def _subsample(
    points: np.ndarray,
    attributes: dict[str, Any],
    n_points: int,
    seed: int,
    path: Path,
) -> tuple[np.ndarray, dict[str, Any]]:
    """A seeded uniform subsample without replacement, kept in file order."""
    total = points.shape[0]
    if n_points > total:
        raise ValueError(
            f"n_points: expected n_points <= {total} (points in {path}), got {n_points}"
        )
    if n_points == total:
        return points, attributes
    keep = np.sort(np.random.default_rng(seed).choice(total, n_points, replace=False))
    subset = {
        name: value[keep]
        if isinstance(value, np.ndarray) and value.shape[:1] == (total,)
        else value
        for name, value in attributes.items()
    }
    return np.ascontiguousarray(points[keep]), subset


def _as_uint8_colors(colors: Any, count: int) -> np.ndarray:
    rgba = np.asarray(to_numpy(colors))
    if rgba.ndim != 2 or rgba.shape[0] != count or rgba.shape[1] not in (3, 4):
        raise ValueError(
            f"colors: expected shape ({count}, 3) or ({count}, 4), got {rgba.shape}"
        )
    if np.issubdtype(rgba.dtype, np.floating):
        if rgba.size and not (np.isfinite(rgba).all() and 0 <= rgba.min()):
            raise ValueError("colors: float colours must be finite and in [0, 1]")
        if rgba.size and rgba.max() > 1:
            raise ValueError("colors: float colours must be in [0, 1]")
        return np.round(rgba * 255).astype(np.uint8)
    if rgba.dtype == np.uint8:
        return rgba
    if np.issubdtype(rgba.dtype, np.integer):
        if rgba.size and (rgba.min() < 0 or rgba.max() > 255):
            raise ValueError("colors: integer colours must be in [0, 255]")
        return rgba.astype(np.uint8)
    raise ValueError(f"colors: expected uint8 or float colours, got {rgba.dtype}")
