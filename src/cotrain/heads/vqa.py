"""Vocab-based VQA head (12-in-1 §3.2): ``σ(MLP(h_IMG ⊙ h_CLS))`` over the answer vocabulary.

Trained as multi-label classification on the soft VQA scores (``min(1, 0.3·count)``). The loss
follows ViLBERT's code: ``BCEWithLogits`` averaged over batch × answers, *then multiplied by the
number of answers A* — i.e. summed over answers, averaged over the batch. Without that factor a
3k-answer loss is ~3000× smaller than a softmax loss on the same scale, and the gradient reaching
the trunk shrinks with the vocabulary size; with it, VQA's loss is comparable to the other heads'.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from cotrain.config import HeadConfig
from cotrain.heads.common import Head, SimpleClassifier, float_targets, single_view
from cotrain.trunks.output import TrunkOutput


class VQAHead(Head):
    """``forward(out) -> logits [B, A]`` from ``out.joint() [B, D]``; MLP width ``hidden`` (default 2D).

    ``losses(logits, batch)``: ``{"bce": BCE(logits, batch["label"] [B, A]) · A}``.
    ``predict(logits)``: per-answer sigmoid ``[B, A]``.
    """

    kind, metric = "vqa", "vqa"
    default_loss_weights = {"bce": 1.0}

    def __init__(self, cfg: HeadConfig, dim: int, num_classes: int) -> None:
        super().__init__(cfg)
        if num_classes < 1:
            raise ValueError(f"the VQA head needs an answer vocabulary of at least 1, got {num_classes}")
        self.num_classes = num_classes
        self.classifier = SimpleClassifier(dim, cfg.hidden or 2 * dim, num_classes, cfg.dropout)

    def forward(self, out: TrunkOutput) -> torch.Tensor:
        single_view(out, "VQA")
        return self.classifier(out.joint())

    def losses(self, logits: torch.Tensor, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        target = float_targets(batch, logits, "VQA", "soft scores")
        bce = F.binary_cross_entropy_with_logits(logits, target.to(logits.dtype))
        return {"bce": bce * logits.shape[-1]}

    def predict(self, logits: torch.Tensor) -> torch.Tensor:
        return logits.sigmoid()

    def extra_repr(self) -> str:
        return f"num_answers={self.num_classes}"
