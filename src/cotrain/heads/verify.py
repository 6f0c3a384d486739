"""Multi-modal verification heads (12-in-1 §3.2).

``NLVRHead`` (NLVR2): two image–statement passes ``(I_0, Q)``, ``(I_1, Q)`` → concatenate
``[h_IMG^0 ⊙ h_CLS^0, h_IMG^1 ⊙ h_CLS^1]`` ``[B, 2D]`` → 2-layer MLP (ViLBERT's SimpleClassifier,
width 2D) → 2-way softmax, cross-entropy. ``SNLIVEHead`` (SNLI-VE): one pass, a classifier of the
VQA MLP's form (``D → 2D → 3``), 3-way softmax cross-entropy (entailment, neutral, contradiction).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from cotrain.config import HeadConfig
from cotrain.heads.common import Head, SimpleClassifier, class_ids, get_label, single_view
from cotrain.trunks.output import TrunkOutput


class _SoftmaxHead(Head):
    default_loss_weights = {"ce": 1.0}

    def losses(self, logits: torch.Tensor, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        target = class_ids(get_label(batch, self.kind), logits, self.kind)
        return {"ce": F.cross_entropy(logits, target)}

    def predict(self, logits: torch.Tensor) -> torch.Tensor:
        return logits.softmax(dim=-1)

    def extra_repr(self) -> str:
        return f"num_classes={self.num_classes}"


class NLVRHead(_SoftmaxHead):
    """``forward(out with K = views) -> logits [B, C]`` (C = 2: false / true) from ``[B, K·D]``.

    ``losses``: ``{"ce": CE(logits, batch["label"] [B])}``; ``predict``: softmax ``[B, C]``.
    """

    kind = "nlvr"
    views = 2

    def __init__(self, cfg: HeadConfig, dim: int, num_classes: int = 2) -> None:
        super().__init__(cfg)
        if num_classes < 2:
            raise ValueError(f"the NLVR head needs at least 2 classes, got {num_classes}")
        self.num_classes = num_classes
        self.classifier = SimpleClassifier(self.views * dim, cfg.hidden or self.views * dim, num_classes, cfg.dropout)

    def forward(self, out: TrunkOutput) -> torch.Tensor:
        if out.views != self.views:
            raise ValueError(
                f"the NLVR head needs K = {self.views} images per statement (regions [B, {self.views}, R, F]), "
                f"got K = {out.views}"
            )
        joint = out.joint()  # [B, K, D]
        return self.classifier(joint.reshape(joint.shape[0], -1))


class SNLIVEHead(_SoftmaxHead):
    """``forward(out) -> logits [B, C]`` (C = 3) from ``out.joint() [B, D]``.

    ``losses``: ``{"ce": CE(logits, batch["label"] [B])}``; ``predict``: softmax ``[B, C]``.
    """

    kind = "snli-ve"

    def __init__(self, cfg: HeadConfig, dim: int, num_classes: int = 3) -> None:
        super().__init__(cfg)
        if num_classes < 2:
            raise ValueError(f"the SNLI-VE head needs at least 2 classes, got {num_classes}")
        self.num_classes = num_classes
        self.classifier = SimpleClassifier(dim, cfg.hidden or 2 * dim, num_classes, cfg.dropout)

    def forward(self, out: TrunkOutput) -> torch.Tensor:
        single_view(out, "SNLI-VE")
        return self.classifier(out.joint())
