#!/usr/bin/env python3
"""Writes q.npy, k.npy, v.npy (f32, uniform in [-1, 1]) into a directory.

Usage: random-inputs.py DIR BATCH HEADS Q_LEN KV_LEN HEAD_DIM
"""
import os
import sys

import numpy as np

out, b, h, sq, sk, d = sys.argv[1], *map(int, sys.argv[2:7])
rng = np.random.default_rng(1234)
for name, s in (("q", sq), ("k", sk), ("v", sk)):
    a = rng.uniform(-1, 1, size=(b, h, s, d)).astype(np.float32)
    np.save(os.path.join(out, name + ".npy"), a)
