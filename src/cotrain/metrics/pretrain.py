"""The ``pretrain`` metric's tally: masked-word accuracy over the batches of a split, with the
image-text matching accuracy and the masked-region loss beside it.

``value``: top-1 accuracy of the predicted word at every scored masked position (``labels != -100``:
the masked tokens of matched rows); ``chance``: the share of the most frequent target word among
them (always predicting it). ``details``: ``masked_tokens`` (how many were scored), ``itm_acc``
(argmax of the matching logits against ``itm_label``) and ``mrm_loss`` (the masked-region term
averaged over every masked region of the split), those that were measured. Without a masked
word the value falls back to the matching accuracy (chance: its majority label's share), and
without either it is 0.
"""

from __future__ import annotations

import torch

from cotrain.data.transforms import IGNORE


class PretrainTally:
    """``add_words``, ``add_itm``, ``add_mrm`` per batch; ``result()`` at the end (module docstring)."""

    def __init__(self) -> None:
        self.word_hits, self.targets = 0, []
        self.itm_hits, self.itm_labels = 0, []
        self.mrm_sum, self.mrm_regions = 0.0, 0

    def add_words(self, logits: torch.Tensor, labels: torch.Tensor) -> None:
        """``logits [B, L, V]``, ``labels [B, L]`` int64 (-100: not scored)."""
        if logits.shape[:-1] != labels.shape:
            raise ValueError(f"word logits {tuple(logits.shape)} do not fit labels {tuple(labels.shape)}")
        scored = labels != IGNORE
        target = labels[scored]
        self.word_hits += int((logits[scored].argmax(-1) == target).sum())
        self.targets.append(target.cpu())

    def add_itm(self, logits: torch.Tensor, labels: torch.Tensor) -> None:
        """``logits [B, 2]``, ``labels [B]`` (1 matched, 0 mismatched)."""
        self.itm_hits += int((logits.argmax(-1) == labels.to(logits.device)).sum())
        self.itm_labels.append(labels.cpu().long())

    def add_mrm(self, loss: float, regions: int) -> None:
        """A batch's mean masked-region loss over its ``regions`` masked regions."""
        self.mrm_sum += float(loss) * int(regions)
        self.mrm_regions += int(regions)

    def result(self) -> dict:
        """``{"value", "chance", "details"}``."""
        targets = torch.cat(self.targets) if self.targets else torch.zeros(0, dtype=torch.long)
        itm = torch.cat(self.itm_labels) if self.itm_labels else torch.zeros(0, dtype=torch.long)
        details: dict[str, float | int] = {}
        if self.targets:
            details["masked_tokens"] = int(targets.numel())
        if self.itm_labels:
            details["itm_acc"] = round(self.itm_hits / max(itm.numel(), 1), 5)
        if self.mrm_regions:
            details["mrm_loss"] = round(self.mrm_sum / self.mrm_regions, 5)
        if targets.numel():
            value = self.word_hits / targets.numel()
            chance = float(torch.bincount(targets).max()) / targets.numel()
        elif itm.numel():
            value = self.itm_hits / itm.numel()
            chance = float(torch.bincount(itm).max()) / itm.numel()
        else:
            value = chance = 0.0
        return {"value": float(value), "chance": float(chance), "details": details}


__all__ = ["PretrainTally"]
