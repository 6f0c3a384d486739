"""Mined hard candidates: the file ``cotrain data mine`` writes and a retrieval train split reads.

12-in-1 trains retrieval as a multiple choice against hard negatives that a trained model mined
offline. ``cotrain data mine RUN --task T`` (:mod:`cotrain.train.mining`) scores every training
caption of T against the training images with the run's model and keeps, per caption, the C
non-matching images it scores highest. They go into one safetensors file:

- ``caption_image_id`` int64 ``[N]``: each training row's own image (checked against the split);
- ``candidate_id`` int64 ``[N, C]``: the mined images, hardest first, -1 where there were fewer;
- ``score`` float32 ``[N, C]``: the model's score of each (NaN where none);
- ``own_score`` float32 ``[N]``: the model's score of each caption with its own image;

with string metadata (``format``, the task, the checkpoint and its step, how the pairs were scored,
counts). ``tasks[].retrieval.mined: FILE`` makes a training run draw its hard negatives from the
file instead of the data's own candidates (the world's attribute overlap, the readers' feature
similarity): :func:`apply_mined` swaps the split's ``candidate_index`` / ``candidate_id`` (keeping
the first ``tasks[].retrieval.candidates`` columns). The file must come from the same training
split - the same rows in the same order -, which it checks (row count and every row's image id)
and names the first difference otherwise.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .arrays import CANDIDATE_KEYS, CANDIDATE_STORE, Split, index_key
from .errors import DataError

FORMAT = "cotrain-mined-candidates/1"
ARRAYS = ("caption_image_id", "candidate_id", "score", "own_score")


@dataclass
class MinedCandidates:
    """``caption_image_id [N]``, ``candidate_id [N, C]`` (-1: none), ``score [N, C]``, ``own_score [N]``
    and ``metadata``."""

    caption_image_id: np.ndarray
    candidate_id: np.ndarray
    score: np.ndarray
    own_score: np.ndarray
    metadata: dict[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.caption_image_id = np.asarray(self.caption_image_id, dtype=np.int64)
        self.candidate_id = np.asarray(self.candidate_id, dtype=np.int64)
        self.score = np.asarray(self.score, dtype=np.float32)
        self.own_score = np.asarray(self.own_score, dtype=np.float32)
        n = len(self.caption_image_id)
        if self.caption_image_id.ndim != 1 or self.candidate_id.ndim != 2 or self.candidate_id.shape[0] != n \
                or self.score.shape != self.candidate_id.shape or self.own_score.shape != (n,):
            raise ValueError(f"mined candidates need caption_image_id [N], candidate_id [N, C], score [N, C] and "
                             f"own_score [N]; got {self.caption_image_id.shape}, {self.candidate_id.shape}, "
                             f"{self.score.shape} and {self.own_score.shape}")

    def __len__(self) -> int:
        return len(self.caption_image_id)

    @property
    def per_caption(self) -> int:
        """C: candidate columns per caption."""
        return self.candidate_id.shape[1]


def write_mined(path: str | Path, mined: MinedCandidates) -> Path:
    """Write ``mined`` to ``path`` (safetensors; parent folders made); returns the path."""
    from safetensors.numpy import save_file

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    meta = {**{str(k): str(v) for k, v in mined.metadata.items()}, "format": FORMAT}
    save_file({"caption_image_id": mined.caption_image_id, "candidate_id": mined.candidate_id,
               "score": mined.score, "own_score": mined.own_score}, str(path), metadata=meta)
    return path


def read_mined(path: str | Path) -> MinedCandidates:
    """The :class:`MinedCandidates` of a file :func:`write_mined` wrote; DataError naming the file
    when it is missing, not safetensors, of another format or lacks an array."""
    from safetensors import SafetensorError
    from safetensors.numpy import safe_open

    path = Path(path)
    if not path.is_file():
        raise DataError(f"mined candidates file not found: {path} (write one with `cotrain data mine RUN --task TASK "
                        f"--out {path}`)")
    try:
        with safe_open(str(path), "np") as f:
            meta = dict(f.metadata() or {})
            arrays = {k: f.get_tensor(k) for k in f.keys()}
    except (SafetensorError, OSError, ValueError) as e:
        raise DataError(f"{path}: not a mined candidates file (cannot read it as safetensors: {e})") from e
    if meta.get("format") != FORMAT:
        raise DataError(f"{path}: not a mined candidates file of this version (format {meta.get('format')!r}, "
                        f"expected {FORMAT!r})")
    missing = [k for k in ARRAYS if k not in arrays]
    if missing:
        raise DataError(f"{path}: mined candidates file lacks {', '.join(missing)}")
    try:
        return MinedCandidates(*(arrays[k] for k in ARRAYS), meta)
    except ValueError as e:
        raise DataError(f"{path}: {e}") from e


def apply_mined(split: Split, path: str | Path, *, task: str, keep: int | None = None) -> Split:
    """``split`` (a retrieval train split: ``image_id`` and ``visual_index`` ``[N]``, the ``visual``
    store) with its hard candidates replaced by the first ``keep`` (all: None) columns of the file
    at ``path``. DataError naming the file when it does not belong to this split: another row
    count, a row whose image differs (the first one named), a candidate that is not a train image
    or is the row's own."""
    mined = read_mined(path)
    path = Path(path)
    a = split.arrays
    if "image_id" not in a or index_key(CANDIDATE_STORE) not in a or CANDIDATE_STORE not in split.stores:
        raise DataError(f"task {task!r}: retrieval.mined needs a retrieval train split (one image per caption: "
                        f"image_id, visual_index and its store); this one has {sorted(a)}")
    own_id = np.asarray(a["image_id"], dtype=np.int64)
    own = np.asarray(a[index_key(CANDIDATE_STORE)], dtype=np.int64)
    if own_id.ndim != 1 or own.ndim != 1:
        raise DataError(f"task {task!r}: retrieval.mined needs one image per training caption, got image_id "
                        f"{own_id.shape}")
    if len(mined) != len(own_id):
        raise DataError(f"{path}: mined for {len(mined)} training captions but task {task!r} has {len(own_id)} "
                        f"(mined from other data: another n_train, seed or clean split? Mine again from a run on "
                        f"this data)")
    differ = np.flatnonzero(mined.caption_image_id != own_id)
    if len(differ):
        r = int(differ[0])
        raise DataError(f"{path}: row {r} was mined for image {int(mined.caption_image_id[r])} but task {task!r}'s "
                        f"training row {r} shows image {int(own_id[r])} ({len(differ)} rows differ): mined from "
                        f"other data")
    ids, first = np.unique(own_id, return_index=True)  # image id -> its store row
    cand_id = mined.candidate_id[:, :keep] if keep is not None else mined.candidate_id
    real = cand_id >= 0
    pos = np.searchsorted(ids, np.where(real, cand_id, ids[0]))
    pos = np.minimum(pos, len(ids) - 1)
    unknown = real & (ids[pos] != cand_id)
    if unknown.any():
        r, c = (int(x[0]) for x in np.nonzero(unknown))
        raise DataError(f"{path}: row {r}'s candidate image {int(cand_id[r, c])} is not an image of task {task!r}'s "
                        f"training split ({int(unknown.sum())} such candidates): mined from other data")
    if (real & (cand_id == own_id[:, None])).any():
        r = int(np.nonzero(real & (cand_id == own_id[:, None]))[0][0])
        raise DataError(f"{path}: row {r} lists its own image {int(own_id[r])} as a hard candidate")
    index = np.where(real, own[first[pos]], -1).astype(np.int64)
    arrays = {**a, CANDIDATE_KEYS[0]: index, CANDIDATE_KEYS[1]: np.where(real, cand_id, -1).astype(np.int64)}
    return Split(arrays, split.stores)


__all__ = ["FORMAT", "MinedCandidates", "apply_mined", "read_mined", "write_mined"]
