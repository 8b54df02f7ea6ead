# The `deepscope conformity` command: shell statistics, conformity and PNG histograms.
# SPDX-License-Identifier: MIT
"""``deepscope conformity [EMB] [--text TEXT_EMB]``.

Prints the double-ellipsoid shell statistics of raw embeddings, the
correlation between estimated and exact conformity, the most and least
typical instances and (with two modalities) the modality-gap analysis, and
writes histograms as PNG files. Without EMB it runs on the small real
embedding pair shipped with deepscope (not CLIP). Register it with
:func:`add_conformity_command`.
"""

from __future__ import annotations

import argparse
import logging
import pickle
import zipfile
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["add_conformity_command"]

log = logging.getLogger(__name__)

#: Rows checked against the exact blocked pairwise kernel at most.
EXACT_CHECK_ROWS = 2000


def add_conformity_command(subparsers: Any) -> argparse.ArgumentParser:
    """Adds the ``conformity`` sub-command to an argparse sub-parser set."""
    parser = subparsers.add_parser(
        "conformity",
        help="shell geometry and conformity of raw embeddings, with PNG histograms",
        description=(
            "Double-ellipsoid statistics and conformity of raw (unnormalised) "
            "embeddings, after Levi & Gilboa, ICML 2025. Without EMB: a small "
            "real embedding pair shipped with deepscope (EfficientNet-Lite0 features "
            "of real photos and MiniLM prompt embeddings paired by a ridge map; NOT "
            "CLIP)."
        ),
    )
    parser.add_argument(
        "emb",
        nargs="?",
        type=Path,
        metavar="EMB",
        help="(N, D) embeddings: .npy, .npz or .pt (default: the embedded pair)",
    )
    parser.add_argument(
        "--text", type=Path, metavar="TEXT_EMB", help="second modality, same D"
    )
    parser.add_argument("--key", help="array name inside EMB (.npz / .pt)")
    parser.add_argument("--text-key", help="array name inside TEXT_EMB")
    parser.add_argument(
        "--top", type=int, default=5, help="instances shown at each end (default: 5)"
    )
    parser.add_argument(
        "--out-dir",
        type=Path,
        default=Path("."),
        help="folder of the PNG histograms (default: current folder)",
    )
    parser.add_argument("--no-png", action="store_true", help="write no pictures")
    parser.add_argument(
        "--seed", type=int, default=0, help="seed of the separability split"
    )
    parser.set_defaults(run=_run_conformity)
    return parser


def _run_conformity(args: argparse.Namespace) -> int:
    from deepscope import embedding as E

    if args.top < 0:
        raise ValueError(f"--top: expected >= 0, got {args.top}")
    # Checked up front, also when one modality leaves the seed unused.
    if not 0 <= args.seed <= 2**64 - 1:
        raise ValueError(
            f"--seed: expected an integer in [0, 2**64 - 1], got {args.seed}"
        )
    sets, labels, source = _inputs(args, E)
    print(f"embeddings: {source}")

    geometry = E.ShellGeometry.fit(
        sets[0][1], sets[1][1] if len(sets) > 1 else None, seed=args.seed
    )
    shells = [geometry.image] + ([geometry.text] if geometry.text else [])
    conformities = []
    for (name, x), shell, names in zip(sets, shells, labels, strict=True):
        conformities.append(_report_modality(E, name, x, shell, names, args.top))
    if geometry.text is not None:
        shift = _report_gap(E, geometry, sets)
    else:
        shift = None
    if not args.no_png:
        _write_pngs(args.out_dir, sets, shells, conformities, shift)
    return 0


def _inputs(args, E) -> tuple[list, list, str]:
    if args.emb is None:
        if args.text is not None:
            raise ValueError("--text: needs EMB as well")
        pair = E.default_embeddings()
        sets = [("image", pair.image), ("text", pair.text)]
        labels = [pair.image_labels, pair.text_labels]
        return sets, labels, f"embedded default pair. {pair.description}"
    first = _load(E, args.emb, args.key, "EMB", "--key")
    sets = [("image" if args.text else "embeddings", first)]
    if args.text is not None:
        text = _load(E, args.text, args.text_key, "--text", "--text-key")
        if text.shape[1] != first.shape[1]:
            raise ValueError(
                f"--text: expected D = {first.shape[1]} columns like EMB, "
                f"got {text.shape[1]}"
            )
        sets.append(("text", text))
    source = ", ".join(
        f"{n} {p}"
        for n, p in zip(("EMB", "TEXT"), (args.emb, args.text), strict=True)
        if p
    )
    return sets, [None] * len(sets), source


def _report_modality(E, name, x, shell, names, top) -> np.ndarray:
    print(f"\n[{name}] N = {x.shape[0]}, D = {x.shape[1]}")
    print(
        f"  centred norm |v - m|: mean {shell.norm_mean:.4g}, std "
        f"{shell.norm_std:.4g}, CV {shell.norm_cv:.4f}"
    )
    print(f"  |m| / |sigma| = {shell.mean_to_std_ratio:.4f}")
    if x.shape[0] < 2:
        print("  conformity: needs at least 2 rows")
        return np.zeros(0)
    exact = np.asarray(E.conformity(x), np.float64)
    est = shell.estimate
    if est is not None:
        print(
            f"  estimate a*cos(m, v) + b: a = {est.a:.4f}, b = {est.b:.4f}; "
            f"Pearson r with exact = {est.pearson_r:.5f}, max |error| = "
            f"{est.max_abs_error:.3g}"
        )
    n_check = min(x.shape[0], EXACT_CHECK_ROWS)
    pairwise = np.asarray(E.exact_conformity(x[:n_check]), np.float64)
    identity = np.asarray(E.conformity(x[:n_check]), np.float64)
    print(
        f"  exact pairwise kernel vs O(N D) identity on {n_check} rows: max "
        f"|diff| = {np.abs(pairwise - identity).max():.2e}"
    )
    order = E.typicality_order(exact)
    outliers = E.conformity_outliers(exact)
    print(
        f"  conformity: mean {exact.mean():.4f}, min {exact.min():.4f}, max "
        f"{exact.max():.4f}; {int(outliers.sum())} low outlier(s) (robust z < -3.5)"
    )
    for title, idx in (
        ("most typical", order[:top]),
        ("least typical", order[::-1][:top]),
    ):
        if len(idx) == 0:
            continue
        print(f"  {title}:")
        for i in idx:
            label = f"  {names[i]}" if names is not None else ""
            print(f"    {i:6d}  C = {exact[i]:.4f}{label}")
    return exact


def _report_gap(E, geometry, sets):
    gap = geometry.gap
    print(f"\n[modality gap] |m_image - m_text| = {np.linalg.norm(gap):.4g}")
    sep = geometry.separability
    if sep is not None:
        verdict = "separable" if sep.reached else "not fully separable"
        print(
            f"  linear probe: {verdict} with {len(sep.dims)} dimension(s) "
            f"{sep.dims.tolist()}, held-out accuracy {sep.accuracy:.3f}"
        )
    shift = E.gap_shift_divergence(sets[0][1], sets[1][1])
    print(
        f"  KL(image || text) of conformity while text moves by alpha * gap: "
        f"{shift.at_zero:.4f} at alpha = 0, smallest {shift.divergence.min():.4f} "
        f"at alpha = {shift.argmin_alpha:+.2f}, largest {shift.divergence.max():.4f} "
        f"at alpha = {shift.argmax_alpha:+.2f}"
    )
    print(
        "  smallest at alpha = 0 (the paper's claim for CLIP): "
        f"{'yes' if shift.minimal_at_zero else 'no'}"
    )
    return shift


def _write_pngs(out_dir: Path, sets, shells, conformities, shift) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out_dir.mkdir(parents=True, exist_ok=True)
    written = []

    fig, ax = plt.subplots(figsize=(6, 4))
    edges = np.histogram_bin_edges(
        np.concatenate([s.centred_norms for s in shells]), 40
    )
    for (name, _), shell in zip(sets, shells, strict=True):
        ax.hist(shell.centred_norms, bins=edges, alpha=0.6, label=name)
    ax.set(xlabel="centred norm |v - m|", ylabel="count", title="Shell thickness")
    ax.legend()
    written.append(_save(fig, out_dir / "conformity_centred_norms.png", plt))

    fig, ax = plt.subplots(figsize=(6, 4))
    values = [c for c in conformities if len(c)]
    edges = np.histogram_bin_edges(np.concatenate(values), 40) if values else 40
    for (name, _), c in zip(sets, conformities, strict=True):
        if len(c):
            ax.hist(c, bins=edges, alpha=0.6, label=name)
    ax.set(xlabel="conformity (leave-one-out)", ylabel="count", title="Conformity")
    if values:
        ax.legend()
    else:
        ax.text(
            0.5,
            0.5,
            "conformity needs at least 2 rows",
            ha="center",
            transform=ax.transAxes,
        )
    written.append(_save(fig, out_dir / "conformity_hist.png", plt))

    if shift is not None:
        fig, ax = plt.subplots(figsize=(6, 4))
        ax.plot(shift.alphas, shift.divergence, marker="o")
        ax.axvline(0.0, color="grey", lw=0.8)
        ax.set(
            xlabel="alpha (text moved by alpha * gap)",
            ylabel="KL(image || text)",
            title="Conformity divergence along the modality gap",
        )
        written.append(_save(fig, out_dir / "conformity_gap_shift.png", plt))
    print("\nwrote " + ", ".join(str(p) for p in written))


def _save(fig, path: Path, plt) -> Path:
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def _load(E, path, key, flag: str, key_flag: str):
    """``E.load_embeddings`` with errors naming the command-line argument."""
    try:
        return E.load_embeddings(path, key)
    except (FileNotFoundError, ValueError) as error:
        message = str(error)
        if message.startswith("key: "):
            message = message[len("key: ") :].replace("key=", key_flag)
            raise ValueError(f"{key_flag}: {message}") from None
        if message.startswith("path: "):
            message = message[len("path: ") :]
        raise type(error)(f"{flag}: {message}") from None
    except (pickle.UnpicklingError, zipfile.BadZipFile, EOFError, RuntimeError):
        # Corrupt or truncated files: torch / zipfile errors, some many lines long.
        raise ValueError(
            f"{flag}: cannot read {path} (corrupt, or it holds objects other "
            "than arrays / tensors)"
        ) from None
