"""Per-task batch transforms (``tasks[].transforms``), from ONE table (:data:`TRANSFORMS`).

A transform is built from its config and the experiment's tokenizer, and is then a callable
``(batch, generator) -> batch`` on a training batch of tensors (the trainer's
:class:`~cotrain.train.hooks.TransformHook` seeds the generator from the run seed, the step and the
task, so a resumed run transforms alike).

``mask_text`` — BERT's masked-language-model corruption (Devlin et al. 2019; ViLBERT / 12-in-1
pretraining): each real word piece of ``batch["text"]`` ``[B, L]`` is chosen with probability
``prob``; a chosen one becomes ``[MASK]`` with probability 0.8, a uniformly random word piece
(special tokens excluded) with 0.1, and stays as it is with 0.1. ``batch["mlm_labels"]`` ``[B, L]``
holds the original id at chosen positions and -100 elsewhere (the ignore index of cross-entropy).
Padding (id 0) and special tokens are never chosen.

``match_pairs`` — image–text matching (ViLBERT / 12-in-1; :mod:`cotrain.data.pretrain_masks`): a
``mismatch_prob`` share of the rows get the ``text`` of another row of a different ``image_id``;
``itm_label`` ``[B]`` (1 matched, 0 mismatched) is added. List it BEFORE ``mask_text``, so that
``mlm_labels`` refer to the caption actually shown.

``mask_regions`` — masked region modelling (:mod:`cotrain.data.pretrain_masks`): a ``prob`` share of
the real regions of ``regions`` ``[B, R, F]`` is chosen, plus every real region of the same row
overlapping a chosen one with IoU > ``overlap_iou`` (from ``boxes``); chosen features are zeroed
(``fill: zero``) or replaced by a real region of another image of the batch (``fill: swap``).
``region_target`` (the features before masking) and ``region_masked`` ``[B, R]`` are added.

``detr_augment`` — DETR's detection augmentation (:mod:`cotrain.data.detr_augment`): a random
horizontal flip (``flip_prob``) and a random resize of each image's content by a factor in
``scales``, placed top-left on its canvas; ``target_boxes`` follow and ``image_mask`` ``[B, H, W]``
(True = real pixel) is added.

``image_augment`` (:mod:`cotrain.data.image_augment`): each image (every view) zoomed about its
centre and shifted a little, edge pixels repeated - no flip and no colour change, so a caption
stays true.
"""

from __future__ import annotations

from typing import Callable

import torch

from cotrain.config import ConfigError, TransformConfig
from cotrain.data.detr_augment import DetrAugment
from cotrain.data.image_augment import ImageAugment
from cotrain.data.pretrain_masks import MaskRegions, MatchPairs

Transform = Callable[[dict, torch.Generator], dict]
IGNORE = -100


class MaskText:
    """``(batch, gen) -> batch`` with ``text`` masked and ``mlm_labels`` added (module docstring)."""

    def __init__(self, prob: float, mask_id: int, vocab_size: int, special_ids: list[int]) -> None:
        if not 0.0 < prob < 1.0:
            raise ValueError(f"mask probability must lie in (0, 1), got {prob}")
        self.prob, self.mask_id, self.vocab_size = float(prob), int(mask_id), int(vocab_size)
        self.special = torch.tensor(sorted(set(special_ids) | {0}), dtype=torch.long)
        ordinary = torch.ones(vocab_size, dtype=torch.bool)
        ordinary[self.special[self.special < vocab_size]] = False
        self.ordinary = ordinary.nonzero().squeeze(1)  # ids a random replacement may take

    def __call__(self, batch: dict, gen: torch.Generator) -> dict:
        if "text" not in batch:
            raise KeyError(f"mask_text needs batch['text']; the batch has {sorted(batch)}")
        ids = batch["text"]
        real = ~torch.isin(ids, self.special.to(ids.device))
        draw = torch.rand(ids.shape, generator=gen)
        chosen = real & (draw.to(ids.device) < self.prob)
        kind = torch.rand(ids.shape, generator=gen).to(ids.device)  # < .8 mask, < .9 random, else keep
        random_ids = self.ordinary[torch.randint(len(self.ordinary), ids.shape, generator=gen)].to(ids.device)
        masked = torch.where(chosen & (kind < 0.8), torch.full_like(ids, self.mask_id), ids)
        masked = torch.where(chosen & (kind >= 0.8) & (kind < 0.9), random_ids, masked)
        labels = torch.where(chosen, ids, torch.full_like(ids, IGNORE))
        return {**batch, "text": masked, "mlm_labels": labels}


def _mask_text(cfg: TransformConfig, tokenizer) -> Transform:
    if tokenizer is None:
        raise ConfigError("transform mask_text needs a text tokenizer: the task reads no text")
    mask_id = tokenizer.token_to_id("[MASK]")
    if mask_id is None:
        raise ConfigError("transform mask_text: the vocabulary has no [MASK] token")
    special = [i for t in ("[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]") if (i := tokenizer.token_to_id(t)) is not None]
    return MaskText(cfg.prob, mask_id, tokenizer.vocab_size, special)


def _detr_augment(cfg: TransformConfig, tokenizer) -> Transform:
    return DetrAugment(cfg.flip_prob, (cfg.scales[0], cfg.scales[1]))


def _match_pairs(cfg: TransformConfig, tokenizer) -> Transform:
    return MatchPairs(cfg.mismatch_prob)


def _mask_regions(cfg: TransformConfig, tokenizer) -> Transform:
    return MaskRegions(cfg.prob, cfg.overlap_iou, cfg.fill)


def _image_augment(cfg: TransformConfig, tokenizer) -> Transform:
    return ImageAugment(cfg.translate, (cfg.zoom[0], cfg.zoom[1]))


TRANSFORMS: dict[str, Callable[[TransformConfig, object], Transform]] = {
    "mask_text": _mask_text,
    "detr_augment": _detr_augment,
    "match_pairs": _match_pairs,
    "mask_regions": _mask_regions,
    "image_augment": _image_augment,
}


def build_transforms(cfgs: list[TransformConfig], tokenizer=None) -> list[Transform]:
    """The transforms of one task, in order."""
    out = []
    for c in cfgs:
        if c.kind not in TRANSFORMS:
            raise ConfigError(f"unknown transform {c.kind!r}; known: {sorted(TRANSFORMS)}")
        out.append(TRANSFORMS[c.kind](c, tokenizer))
    return out


__all__ = ["IGNORE", "DetrAugment", "ImageAugment", "MaskRegions", "MaskText", "MatchPairs", "TRANSFORMS", "build_transforms"]
