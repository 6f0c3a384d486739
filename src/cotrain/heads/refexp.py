"""Referring-expression head (12-in-1 §3.2): re-rank region proposals by ``W_r h_{v_i}``.

One score per proposal ``[B, R]``; padded proposals get the most negative finite value of the
dtype, so they never win an argmax and their sigmoid is 0. ``W_r`` is shared by every refexp task
(RefCOCO/+/g, Visual7W pointing, GuessWhat) through the head key.

Loss — what ViLBERT / 12-in-1's code does (``task_utils.py``, type ``V-logit``): ``BCEWithLogits``
of every region's score against its soft target (the proposal's IoU with the referred box where
IoU ≥ 0.5, else 0), averaged over batch × regions and multiplied by the number of regions, i.e.
summed over regions and averaged over the batch; padding gets logit −10000 and target 0 there, so
it adds ~0. Here the sum runs over the real proposals only (padding adds exactly 0, so the value
is the same). One difference: ViLBERT also scores its IMG token (whole-image box, target its IoU,
almost always 0); the contract's ``label`` is ``[N, R]`` over proposals, so IMG is not scored here.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from cotrain.config import HeadConfig
from cotrain.heads.common import Head, float_targets, single_view
from cotrain.trunks.layers import init_vit_weights
from cotrain.trunks.output import TrunkOutput


class RefExpHead(Head):
    """``forward(out) -> logits [B, R]`` from the ``regions`` stream's states without IMG.

    ``losses(logits, batch)``: ``{"bce": Σ_real-regions BCE(logit, batch["label"] [B, R]) / B}``;
    the real proposals are ``batch["region_mask"]`` when present, else the non-padded logits.
    ``predict(logits)``: per-region sigmoid ``[B, R]`` (padding 0); argmax = the chosen proposal.
    """

    kind, metric, uses_classes, needs = "refexp", "refexp", False, "regions"
    default_loss_weights = {"bce": 1.0}

    def __init__(self, cfg: HeadConfig, dim: int, num_classes: int = 0) -> None:
        super().__init__(cfg)
        self.drop = nn.Dropout(cfg.dropout) if cfg.dropout > 0 else nn.Identity()
        self.score = nn.Linear(dim, 1)
        self.apply(init_vit_weights)

    def forward(self, out: TrunkOutput) -> torch.Tensor:
        single_view(out, "refexp")
        regions, mask = out.tokens("regions")
        logits = self.score(self.drop(regions)).squeeze(-1)  # [B, R]
        return logits.masked_fill(~mask, torch.finfo(logits.dtype).min)

    def losses(self, logits: torch.Tensor, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        target = float_targets(batch, logits, "refexp", "IoU targets (one per proposal)")
        mask = batch.get("region_mask")
        if mask is None or mask.shape != logits.shape:
            mask = logits > torch.finfo(logits.dtype).min
        per_region = F.binary_cross_entropy_with_logits(logits, target.to(logits.dtype), reduction="none")
        bce = torch.where(mask.bool(), per_region, torch.zeros_like(per_region)).sum() / logits.shape[0]
        return {"bce": bce}

    def predict(self, logits: torch.Tensor) -> torch.Tensor:
        return logits.sigmoid()

    def results(self, probs: torch.Tensor, batch: dict, class_names: list[str], top_k: int) -> list[dict]:
        """``region`` (index), ``box`` (normalised x0, y0, x1, y1), ``score``, ``scores`` (per region)."""
        out = []
        for i, p in enumerate(probs.float().cpu()):
            mask = batch.get("region_mask")
            if mask is not None:
                p = p.masked_fill(~mask[i].bool().cpu(), -1.0)
            best = int(p.argmax())
            box = batch["boxes"][i, best].cpu().tolist() if "boxes" in batch else None
            out.append({"region": best, "box": [round(b, 5) for b in box] if box else None, "score": float(p[best]),
                        "scores": [round(float(x), 6) for x in p]})
        return out
