"""The image–text corruptions of vision-and-language pretraining (ViLBERT / 12-in-1, CVLP): wrong
captions for image–text matching (``match_pairs``) and masked regions (``mask_regions``).

Both are per-task batch transforms ``(batch, generator) -> batch`` (:mod:`cotrain.data.transforms`)
on a caption batch of B rows without a view axis:

- ``text`` int64 ``[B, L]`` (0 = padding), ``image_id`` int64 ``[B]`` (optional);
- ``regions`` float ``[B, R, F]``, ``boxes`` float ``[B, R, 4]`` (normalised x0, y0, x1, y1),
  ``region_mask`` bool ``[B, R]`` (True = a real region, False = padding).

``match_pairs`` (:class:`MatchPairs`): each row is chosen with probability ``mismatch_prob``; a chosen
row's ``text`` becomes the text of another row, drawn uniformly among the rows whose ``image_id``
differs (any other row when the batch has no ``image_id``). A chosen row without such a row stays
matched. Adds ``itm_label`` int64 ``[B]``: 1 matched, 0 mismatched. Put it BEFORE ``mask_text``, so
that ``mlm_labels`` refer to the caption actually shown.

``mask_regions`` (:class:`MaskRegions`): each real region is chosen with probability ``prob``; then
every real region of the same row whose IoU with a chosen one is > ``overlap_iou`` is chosen too
(12-in-1's rule against the answer leaking through overlapping proposals; one pass: the overlap
with a region drawn in the first step counts, not with one pulled in; ``overlap_iou = 1`` turns the
rule off and ``boxes`` are not needed). The chosen regions' features become zeros (``fill="zero"``)
or, each independently, the features of a region drawn uniformly among the real regions of the
OTHER rows of the batch (``fill="swap"``, CVLP's alternative; other rows of a different
``image_id`` when the batch has one; zeros where there is none). Padding is never chosen and
``boxes`` are left alone. Adds ``region_target`` (``regions`` as they came in, same tensor, dtype
and shape) and ``region_masked`` bool ``[B, R]`` (True = chosen).

Every random draw comes from the generator, in a fixed number whatever is chosen (drawn on the CPU
like :class:`~cotrain.data.transforms.MaskText`), so the same generator state masks alike.
"""

from __future__ import annotations

import torch

from cotrain.detection.boxes import box_iou

FILLS = ("zero", "swap")


def _need(batch: dict, key: str, kind: str, shape: str) -> torch.Tensor:
    if key not in batch:
        raise KeyError(f"{kind} needs batch[{key!r}] {shape}; the batch has {sorted(batch)}")
    return batch[key]


def _check_shape(x: torch.Tensor, key: str, kind: str, shape: str, dims: int, rows: int | None = None) -> None:
    if x.dim() != dims or (rows is not None and x.shape[0] != rows):
        raise ValueError(f"{kind}: batch[{key!r}] must be {shape} (no view axis), got shape {list(x.shape)}")


def _image_id(batch: dict, kind: str, rows: int) -> torch.Tensor | None:
    """``image_id`` ``[B]`` if the batch has one (checked), else None."""
    ids = batch.get("image_id")
    if ids is not None:
        _check_shape(ids, "image_id", kind, f"[B={rows}]", 1, rows)
    return ids


def pick_other(eligible: torch.Tensor, u: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """For each row ``b`` of ``eligible`` bool ``[B, N]`` and each uniform ``u [B, M]`` in [0, 1): the
    column of the row's True number ``floor(u * n_b)`` (0-based; ``n_b`` = the row's count of True),
    so each draw is uniform over the row's eligible columns. Returns ``(index [B, M] int64, has [B] bool)``;
    ``has[b]`` False (no eligible column) leaves ``index[b]`` meaningless (clamped into range)."""
    n_cols = eligible.shape[1]
    cum = eligible.long().cumsum(1)  # [B, N]
    count = cum[:, -1] if n_cols else torch.zeros(eligible.shape[0], dtype=torch.long, device=eligible.device)
    k = (u.to(eligible.device, torch.float64) * count[:, None]).long()  # < count for u < 1 (no rounding up in float64)
    if not n_cols:
        return k, count > 0
    index = torch.searchsorted(cum, k + 1)  # the first column where the count of True reaches k + 1
    return index.clamp(max=n_cols - 1), count > 0


class MatchPairs:
    """``(batch, gen) -> batch`` with a ``mismatch_prob`` share of captions swapped for another
    image's and ``itm_label`` ``[B]`` added (module docstring)."""

    def __init__(self, mismatch_prob: float) -> None:
        if not 0.0 < mismatch_prob < 1.0:
            raise ValueError(f"match_pairs: mismatch probability must lie in (0, 1), got {mismatch_prob}")
        self.prob = float(mismatch_prob)

    def __call__(self, batch: dict, gen: torch.Generator) -> dict:
        text = _need(batch, "text", "match_pairs", "[B, L]")
        _check_shape(text, "text", "match_pairs", "[B, L]", 2)
        rows, device = text.shape[0], text.device
        ids = _image_id(batch, "match_pairs", rows)
        if ids is not None:
            ids = ids.cpu()
            eligible = ids[:, None] != ids[None, :]  # [B, B]: another image
        else:
            eligible = ~torch.eye(rows, dtype=torch.bool)  # [B, B]: another row
        chosen = torch.rand(rows, generator=gen) < self.prob
        partner, has = pick_other(eligible, torch.rand(rows, 1, generator=gen))
        mismatched = chosen & has
        source = torch.where(mismatched, partner[:, 0], torch.arange(rows))
        return {**batch, "text": text[source.to(device)], "itm_label": (~mismatched).long().to(device)}


class MaskRegions:
    """``(batch, gen) -> batch`` with chosen real regions (plus their overlaps) zeroed or swapped,
    ``region_target`` ``[B, R, F]`` and ``region_masked`` ``[B, R]`` added (module docstring)."""

    def __init__(self, prob: float, overlap_iou: float = 0.4, fill: str = "zero") -> None:
        if not 0.0 < prob < 1.0:
            raise ValueError(f"mask_regions: mask probability must lie in (0, 1), got {prob}")
        if not 0.0 <= overlap_iou <= 1.0:
            raise ValueError(f"mask_regions: overlap_iou must lie in [0, 1], got {overlap_iou}")
        if fill not in FILLS:
            raise ValueError(f"mask_regions: unknown fill {fill!r}; known: {list(FILLS)}")
        self.prob, self.overlap_iou, self.fill = float(prob), float(overlap_iou), fill

    def choose(self, real: torch.Tensor, boxes: torch.Tensor | None, gen: torch.Generator) -> torch.Tensor:
        """``real`` bool ``[B, R]``, ``boxes`` ``[B, R, 4]`` xyxy (None: no overlap rule) → the
        chosen regions bool ``[B, R]``: drawn with ``prob``, plus real overlaps of the drawn ones."""
        drawn = real & (torch.rand(real.shape, generator=gen).to(real.device) < self.prob)
        if boxes is None or self.overlap_iou >= 1.0:
            return drawn
        boxes = boxes.float()
        iou = torch.stack([box_iou(boxes[b], boxes[b])[0] for b in range(len(boxes))])  # [B, R, R]
        pulled = ((iou > self.overlap_iou) & drawn[:, None, :]).any(-1)  # overlaps some drawn region
        return drawn | (real & pulled)

    def swap_features(self, regions: torch.Tensor, real: torch.Tensor, ids: torch.Tensor | None,
                      gen: torch.Generator) -> torch.Tensor:
        """For every slot of ``regions`` ``[B, R, F]``, the features of a real region of another row
        (of another image with ``ids`` ``[B]``), drawn uniformly; zeros for a row without one."""
        rows, slots, _ = regions.shape
        u = torch.rand(rows, slots, generator=gen)
        pool = real.reshape(-1).nonzero().squeeze(1)  # [P] flat indices of the real regions
        pool_row = pool // slots
        if ids is not None:
            eligible = ids[:, None] != ids[pool_row][None, :]  # [B, P]
        else:
            eligible = torch.arange(rows, device=real.device)[:, None] != pool_row[None, :]
        pick, has = pick_other(eligible, u)
        if not bool(has.any()):
            return torch.zeros_like(regions)
        source = regions.reshape(rows * slots, -1)[pool[pick]]  # [B, R, F]
        return torch.where(has[:, None, None], source, torch.zeros_like(source))

    def __call__(self, batch: dict, gen: torch.Generator) -> dict:
        regions = _need(batch, "regions", "mask_regions", "[B, R, F]")
        _check_shape(regions, "regions", "mask_regions", "[B, R, F]", 3)
        rows, slots = regions.shape[:2]
        real = _need(batch, "region_mask", "mask_regions", "[B, R]")
        if tuple(real.shape) != (rows, slots):
            raise ValueError(f"mask_regions: batch['region_mask'] must be [B={rows}, R={slots}] like regions, "
                             f"got shape {list(real.shape)}")
        real = real.bool()
        boxes = None
        if self.overlap_iou < 1.0:
            boxes = _need(batch, "boxes", "mask_regions (overlap_iou < 1)", "[B, R, 4]")
            if tuple(boxes.shape) != (rows, slots, 4):
                raise ValueError(f"mask_regions: batch['boxes'] must be [B={rows}, R={slots}, 4] (no view axis), "
                                 f"got shape {list(boxes.shape)}")
        chosen = self.choose(real, boxes, gen)
        if self.fill == "swap":
            fill = self.swap_features(regions, real, _image_id(batch, "mask_regions", rows), gen)
        else:
            fill = torch.zeros_like(regions)
        masked = torch.where(chosen[..., None], fill, regions)
        return {**batch, "regions": masked, "region_target": regions, "region_masked": chosen}


__all__ = ["FILLS", "MaskRegions", "MatchPairs", "pick_other"]
