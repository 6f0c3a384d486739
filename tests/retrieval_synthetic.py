"""A tiny retrieval train split with hard candidates (tests of negatives and of mined candidates)."""

from __future__ import annotations

import numpy as np

from cotrain.data.arrays import Split
from cotrain.data.stores import VisualStore

N, C, M = 12, 6, 20  # captions, candidates per caption, stored images


def split(n: int = N, duplicates: bool = False) -> Split:
    """Caption r shows store row r (image id 100 + r; with ``duplicates`` rows 2j and 2j + 1 share
    an image); its candidates are store rows r + 1 .. r + C (mod M). Store row j's regions are all j."""
    own = np.arange(n) // 2 * 2 if duplicates else np.arange(n)
    cand = (own[:, None] + 1 + np.arange(C)[None]) % M
    store = VisualStore({"regions": np.arange(M, dtype=np.float32)[:, None, None] * np.ones((1, 2, 3), np.float32),
                         "region_mask": np.ones((M, 2), bool)})
    arrays = {"visual_index": own, "image_id": 100 + own, "candidate_index": cand, "candidate_id": 100 + cand,
              "text": np.arange(n)[:, None] * np.ones((1, 4), np.int64), "label": np.zeros(n, np.int64)}
    return Split(arrays, {"visual": store})
