"""A V&L source's missing val / test split, carved out of its train records **by image**.

Records are grouped so that no image ends up in two splits, and whole groups are split:

- one-image records (VQA / GQA / VG-QA, captions, referring expressions, SNLI-VE): by ``image_id``;
- NLVR2 pairs (:class:`~cotrain.data.formats.vl.records.PairRecord`): by the row's **image set**.
  NLVR2 names its images ``<split>-<set_id>-<pair_id>-img<k>``; every pair (and so every
  statement) drawn from one ``<split>-<set_id>`` set stays together. A multi-image row whose ids
  are not in that form is grouped by all of its images;
- groups that share an image are merged (connected components), so the splits are disjoint by
  image whatever the rows share.

Of ``n`` groups, :func:`cotrain.data.formats.splits.split_counts` ``(n, val_fraction,
test_fraction)`` go to val and test (round half up, at least one when the fraction is positive,
at least one group left in train). The groups are ranked by ``blake2b(f"{seed}:{group name}")``
(a group's name is its smallest image key or set name as text): test takes the first, val the
next, train the rest. The ranking depends only on the seed and the names, so the same seed gives
the same split in any record order and another seed another split. The fractions are exact in
images (groups); in rows they are as close as the images' row counts are alike.
"""

from __future__ import annotations

import dataclasses
import hashlib
import re
from typing import NamedTuple, Sequence

import numpy as np

from cotrain.data.formats.splits import SPLITS, split_counts
from cotrain.data.formats.vl.records import ImageKey, PairRecord, normalize_image_key

_NLVR2_IMAGE = re.compile(r"^(.+-\d+)-\d+-img\d+$")  # <split>-<set_id>-<pair_id>-img<k> → <split>-<set_id>


def record_images(record) -> tuple[ImageKey, ...]:
    """The (normalised) image keys a record shows: one, or a pair's two."""
    keys = record.image_ids if isinstance(record, PairRecord) else (record.image_id,)
    return tuple(normalize_image_key(k) for k in keys)


def _nodes(record) -> list[tuple[str, ImageKey]]:
    images = record_images(record)
    nodes = [("image", k) for k in images]
    if isinstance(record, PairRecord):
        nodes += [("set", m.group(1)) for m in (_NLVR2_IMAGE.match(str(k)) for k in images) if m]
    return nodes


def image_groups(records: Sequence) -> tuple[np.ndarray, list[str]]:
    """``(group, names)``: int64 ``[N]`` group index of each record (records sharing an image, or an
    NLVR2 image set, share a group) and each group's name (its smallest image key or set, as text)."""
    parent: dict = {}

    def find(x):
        while parent[x] != x:
            parent[x] = parent[parent[x]]
            x = parent[x]
        return x

    record_nodes = []
    for r in records:
        nodes = _nodes(r)
        if not nodes:
            raise ValueError(f"record {r!r} shows no image")
        for node in nodes:
            parent.setdefault(node, node)
        root = find(nodes[0])
        for node in nodes[1:]:
            other = find(node)
            if other != root:
                parent[other] = root
        record_nodes.append(nodes[0])
    names: dict = {}
    for node in parent:
        root = find(node)
        text = str(node[1])
        if root not in names or text < names[root]:
            names[root] = text
    index = {root: i for i, root in enumerate(names)}
    group = np.array([index[find(n)] for n in record_nodes], dtype=np.int64)
    return group, list(names.values())


def _rank(seed: int, name: str) -> int:
    return int.from_bytes(hashlib.blake2b(f"{int(seed)}:{name}".encode("utf-8"), digest_size=8).digest(), "little")


class Carved(NamedTuple):
    records: dict[str, list]  # train / val / test → records, input order kept
    groups: dict[str, int]  # train / val / test → how many image groups


def carve_by_image(records: Sequence, *, val_fraction: float, test_fraction: float, seed: int) -> Carved:
    """Split ``records`` (a source's train records) into train / val / test by image group.

    A fraction of 0 leaves that split empty. Records moved to val / test are copies with their
    ``split`` set; the others are returned as they are (``split`` set to train when it was not)."""
    group, names = image_groups(records)
    _, n_val, n_test = split_counts(len(names), val_fraction, test_fraction)
    order = sorted(range(len(names)), key=lambda g: (_rank(seed, names[g]), names[g]))
    split_of = ["train"] * len(names)
    for g in order[:n_test]:
        split_of[g] = "test"
    for g in order[n_test : n_test + n_val]:
        split_of[g] = "val"
    out: dict[str, list] = {s: [] for s in SPLITS}
    for r, g in zip(records, group):
        s = split_of[g]
        out[s].append(r if r.split == s else dataclasses.replace(r, split=s))
    return Carved(out, {s: split_of.count(s) for s in SPLITS})
