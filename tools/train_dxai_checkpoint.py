# Trains and writes the shipped DXAI checkpoint (Fashion-MNIST, 1 CPU thread).
# SPDX-License-Identifier: MIT
"""Usage: python tools/train_dxai_checkpoint.py [ITERATIONS]"""

import logging
import sys

import torch

from deepscope.decompose._default import DEFAULT_CHECKPOINT, save_bundle, train_bundle

if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO)
    torch.set_num_threads(1)
    iters = int(sys.argv[1]) if len(sys.argv) > 1 else 700
    bundle = train_bundle("fashion-mnist", iterations=iters)
    save_bundle(bundle, DEFAULT_CHECKPOINT)
    logging.info("wrote %s: %s", DEFAULT_CHECKPOINT, bundle.meta)
