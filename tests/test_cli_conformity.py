# Tests of the `deepscope conformity` command and the embedding file loaders.
# SPDX-License-Identifier: MIT
from __future__ import annotations

import argparse
import warnings

import numpy as np
import pytest
import torch

import deepscope.embedding as E
from deepscope._cli_conformity import add_conformity_command


def _run(argv):
    parser = argparse.ArgumentParser(prog="deepscope")
    add_conformity_command(parser.add_subparsers(dest="command"))
    args = parser.parse_args(["conformity", *argv])
    return args.run(args)


def test_default_runs_with_no_arguments(tmp_path, capsys):
    assert _run(["--out-dir", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "NOT CLIP" in out
    pair = E.default_embeddings()
    assert f"[image] N = {len(pair.image)}, D = 384" in out
    assert f"[text] N = {len(pair.text)}, D = 384" in out
    assert "Pearson r with exact" in out
    assert "most typical" in out
    assert "smallest at alpha = 0" in out
    for name in ("centred_norms", "hist", "gap_shift"):
        png = tmp_path / f"conformity_{name}.png"
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_files_and_text(tmp_path, capsys):
    d = E.double_ellipsoid(120, 100, 16, seed=0)
    np.save(tmp_path / "img.npy", d.image)
    torch.save({"feats": torch.from_numpy(d.text)}, tmp_path / "txt.pt")
    argv = [str(tmp_path / "img.npy"), "--text", str(tmp_path / "txt.pt")]
    assert _run([*argv, "--no-png", "--top", "2"]) == 0
    out = capsys.readouterr().out
    assert "[text] N = 100, D = 16" in out
    assert "linear probe:" in out
    assert not list(tmp_path.glob("*.png"))
    assert _run([str(tmp_path / "img.npy"), "--no-png"]) == 0
    assert "[modality gap]" not in capsys.readouterr().out


def test_single_row_writes_figures_without_warnings(tmp_path, capsys):
    # One row has no leave-one-out conformity: the empty histogram's
    # ax.legend() leaked matplotlib's "No artists with labels" UserWarning.
    np.save(tmp_path / "one.npy", np.ones((1, 4)))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert _run([str(tmp_path / "one.npy"), "--out-dir", str(tmp_path)]) == 0
    assert "conformity: needs at least 2 rows" in capsys.readouterr().out
    assert (tmp_path / "conformity_hist.png").read_bytes()[:4] == b"\x89PNG"


def test_bad_arguments(tmp_path):
    with pytest.raises(ValueError, match="--text"):
        _run(["--text", "x.npy"])
    with pytest.raises(ValueError, match="--top"):
        _run(["--top", "-1", "--no-png"])
    with pytest.raises(FileNotFoundError, match="^EMB: no such file"):
        _run([str(tmp_path / "missing.npy")])
    np.save(tmp_path / "a.npy", np.ones((4, 3)))
    np.save(tmp_path / "b.npy", np.ones((4, 5)))
    with pytest.raises(FileNotFoundError, match="^--text: no such file"):
        _run([str(tmp_path / "a.npy"), "--text", str(tmp_path / "nope.npy")])
    with pytest.raises(ValueError, match=r"^--text: expected D = 3 .* got 5"):
        _run([str(tmp_path / "a.npy"), "--text", str(tmp_path / "b.npy")])
    # Errors about the array name name --key / --text-key, not the API's key=.
    np.savez(tmp_path / "z.npz", p=np.ones((4, 3)), q=np.ones((4, 3)))
    with pytest.raises(ValueError, match="^--key: .*several.*name one with --key$"):
        _run([str(tmp_path / "z.npz")])
    with pytest.raises(ValueError, match=r"^--text-key: expected one of \['p', 'q'\]"):
        _run(
            [str(tmp_path / "a.npy"), "--text", str(tmp_path / "z.npz")]
            + ["--text-key", "r"]
        )
    # Corrupt files: one line naming the argument, no traceback.
    (tmp_path / "bad.pt").write_bytes(b"nonsense")
    torch = pytest.importorskip("torch")
    torch.save(torch.ones(4, 3), tmp_path / "ok.pt")
    data = (tmp_path / "ok.pt").read_bytes()
    (tmp_path / "cut.pt").write_bytes(data[: len(data) // 2])
    for name, flag in (("bad.pt", "EMB"), ("cut.pt", "--text")):
        argv = [str(tmp_path / "a.npy"), "--text", str(tmp_path / name)]
        if flag == "EMB":
            argv = [str(tmp_path / name)]
        with pytest.raises(ValueError, match=f"^{flag}: cannot read .*{name}") as info:
            _run(argv)
        assert "\n" not in str(info.value)


def test_default_embeddings_is_small_and_real():
    pair = E.default_embeddings()
    assert pair.image.shape[1] == pair.text.shape[1] == 384
    assert 1500 <= len(pair.image) <= 4000
    assert 1500 <= len(pair.text) <= 4000
    assert pair.image.dtype == pair.text.dtype == np.float16
    assert len(pair.image_labels) == len(pair.image)
    assert len(pair.text_labels) == len(pair.text)
    assert "NOT CLIP" in pair.description
    for x in (pair.image, pair.text):
        x = x.astype(np.float64)
        assert np.isfinite(x).all()
        # Raw embeddings: not L2-normalised.
        assert np.abs(np.linalg.norm(x, axis=1) - 1.0).max() > 0.5
    # Every text label is an ImageNet prompt; the text rows are distinct.
    assert len(np.unique(pair.text_labels)) == len(pair.text_labels)


def test_default_embeddings_image_side_is_real_photos():
    pair = E.default_embeddings()
    meta = pair.provenance
    assert meta["not_clip"] is True
    assert meta["image_source"] == "real photos"
    counts = meta["image_counts"]
    assert sum(counts.values()) == len(pair.image)
    assert set(counts) == {
        "skimage photos",
        "sklearn china/flower",
        "skimage lfw_subset",
        "fashion-mnist test",
    }
    assert all(v > 0 for v in counts.values())
    sources = {str(label).split()[0] for label in pair.image_labels}
    assert sources == {"skimage", "sklearn", "lfw_subset", "fashion-mnist"}
    # The fitted map retrieves held-out classes far above chance (1 / 200).
    assert meta["held_out_classes"] == 200
    assert meta["held_out_top1_prototype_to_text"] > 0.2
    assert "EfficientNet-Lite0" in meta["image_encoder"]
    assert "MiniLM" in meta["text_encoder"]


def test_load_embeddings_formats(tmp_path):
    x = np.arange(12, dtype=np.float32).reshape(4, 3) + 1
    np.save(tmp_path / "a.npy", x)
    np.savez(tmp_path / "b.npz", embeddings=x, labels=np.arange(4))
    np.savez(tmp_path / "c.npz", image=x, text=x * 2)
    torch.save(torch.from_numpy(x).to(torch.bfloat16), tmp_path / "d.pt")
    np.testing.assert_array_equal(E.load_embeddings(tmp_path / "a.npy"), x)
    np.testing.assert_array_equal(E.load_embeddings(tmp_path / "b.npz"), x)
    np.testing.assert_array_equal(E.load_embeddings(tmp_path / "c.npz", "text"), 2 * x)
    np.testing.assert_array_equal(E.load_embeddings(tmp_path / "c.npz"), x)
    d = E.load_embeddings(tmp_path / "d.pt")
    assert d.dtype == np.float32
    assert d.shape == (4, 3)
    with pytest.raises(ValueError, match="key"):
        E.load_embeddings(tmp_path / "c.npz", "nope")
    np.save(tmp_path / "e.npy", np.arange(4))
    with pytest.raises(ValueError, match="2-D floating"):
        E.load_embeddings(tmp_path / "e.npy")
    (tmp_path / "f.txt").write_text("1 2")
    with pytest.raises(ValueError, match=".npy, .npz or .pt"):
        E.load_embeddings(tmp_path / "f.txt")
    with pytest.raises(FileNotFoundError):
        E.load_embeddings(tmp_path / "none.npy")


@pytest.mark.parametrize("with_text", [False, True])
def test_bad_seed_is_rejected_up_front_naming_the_option(tmp_path, with_text):
    # Without --text the seed was unused and -3 accepted; with --text the
    # error named the API's "seed" instead of the option.
    d = E.double_ellipsoid(40, 30, 8, seed=0)
    np.save(tmp_path / "img.npy", d.image)
    np.save(tmp_path / "txt.npy", d.text)
    argv = [str(tmp_path / "img.npy"), "--no-png", "--seed", "-3"]
    if with_text:
        argv += ["--text", str(tmp_path / "txt.npy")]
    with pytest.raises(ValueError, match=r"^--seed: .*-3"):
        _run(argv)
