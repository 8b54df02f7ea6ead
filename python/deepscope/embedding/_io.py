# Embedding files: .npy, .npz and .pt loaders, and the embedded default pair.
# SPDX-License-Identifier: MIT
"""Reading embedding matrices from files.

Raw features from open_clip (``encode_image(x, normalize=False)``) or Hugging
Face (``get_image_features``) saved with ``np.save`` / ``np.savez`` /
``torch.save`` load unchanged.
"""

from __future__ import annotations

import json
from importlib import resources
from pathlib import Path
from typing import NamedTuple

import numpy as np

__all__ = ["EmbeddingPair", "default_embeddings", "load_embeddings"]

_KEYS = ("embeddings", "features", "emb", "image", "x")


def _pick(arrays: dict, key: str | None, path: Path) -> np.ndarray:
    if key is not None:
        if key not in arrays:
            raise ValueError(
                f"key: expected one of {sorted(arrays)} in {path.name}, got {key!r}"
            )
        return arrays[key]
    matrices = [k for k, v in arrays.items() if getattr(v, "ndim", 0) == 2]
    if len(matrices) == 1:
        return arrays[matrices[0]]
    for k in _KEYS:
        if k in matrices:
            return arrays[k]
    raise ValueError(
        f"key: {path.name} holds several matrices {sorted(matrices)}; name one "
        "with key="
    )


def load_embeddings(path: str | Path, key: str | None = None) -> np.ndarray:
    """Loads an (N, D) embedding matrix from ``.npy``, ``.npz`` or ``.pt``.

    Args:
        path: file path. ``.npz`` files and ``.pt`` dictionaries pick ``key``,
            else their only 2-D array, else the first of ``embeddings``,
            ``features``, ``emb``, ``image``, ``x``. ``.pt`` files are read
            with ``torch.load(weights_only=True)`` (no arbitrary pickles).
        key: array name inside an ``.npz`` / ``.pt`` dictionary.

    Returns:
        (N, D) NumPy floating array (float16 / float32 / float64 as stored;
        bfloat16 tensors become float32).

    Raises:
        FileNotFoundError: missing file. ValueError: unknown suffix, missing
        key, or an array that is not a 2-D floating matrix.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"path: no such file: {path}")
    suffix = path.suffix.lower()
    if suffix == ".npy":
        array = np.load(path, allow_pickle=False)
    elif suffix == ".npz":
        with np.load(path, allow_pickle=False) as data:
            array = _pick({k: data[k] for k in data.files}, key, path)
    elif suffix in (".pt", ".pth"):
        import torch

        obj = torch.load(path, map_location="cpu", weights_only=True)
        if isinstance(obj, dict):
            obj = _pick(obj, key, path)
        if not isinstance(obj, torch.Tensor):
            raise ValueError(f"path: expected a tensor in {path.name}, got {type(obj)}")
        obj = obj.detach()
        if obj.dtype == torch.bfloat16:
            obj = obj.to(torch.float32)
        array = obj.numpy()
    else:
        raise ValueError(f"path: expected a .npy, .npz or .pt file, got {path.name}")
    array = np.asarray(array)
    if array.ndim != 2 or not np.issubdtype(array.dtype, np.floating):
        raise ValueError(
            f"path: expected a 2-D floating (N, D) matrix in {path.name}, got "
            f"shape {array.shape} dtype {array.dtype}"
        )
    return array


class EmbeddingPair(NamedTuple):
    """The embedded default pair (NOT CLIP; see ``description``).

    Attributes:
        image: (N_image, 384) float16 image-side embeddings (real photos).
        text: (N_text, 384) float16 text-side embeddings (prompts).
        image_labels: (N_image,) where each photo comes from, with the
            classifier's top-1 ImageNet class in brackets.
        text_labels: (N_text,) the prompts.
        description: how the pair was made, in one paragraph.
        provenance: sources, counts, seeds and the fitted map's held-out
            retrieval accuracy (a dict read from the file's JSON metadata).
    """

    image: np.ndarray
    text: np.ndarray
    image_labels: np.ndarray
    text_labels: np.ndarray
    description: str
    provenance: dict


def default_embeddings() -> EmbeddingPair:
    """Loads the small real embedding pair shipped with deepscope.

    Image side: EfficientNet-Lite0 features of real photos, mapped into the
    text space by a ridge map fitted on the ImageNet class prototypes; text
    side: raw all-MiniLM-L6-v2 embeddings of ImageNet class prompts. It is a
    real-encoder stand-in for developing CLIP-geometry code, NOT CLIP (its
    small modality gap comes from the fitted map, not from contrastive
    training); see ``python/deepscope/data/README.md`` and
    ``tools/make_embedding_default.py``. The provenance dict records the
    sources, counts, seed and the map's held-out retrieval accuracy.
    """
    ref = resources.files("deepscope") / "data" / "embedding_default.npz"
    with resources.as_file(ref) as path, np.load(path, allow_pickle=False) as z:
        return EmbeddingPair(
            image=z["image"],
            text=z["text"],
            image_labels=z["image_labels"],
            text_labels=z["text_labels"],
            description=str(z["description"]),
            provenance=json.loads(str(z["provenance"])),
        )
