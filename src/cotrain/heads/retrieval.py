"""Caption-based image retrieval head (12-in-1 §3.2): alignment score ``W_i(h_IMG ⊙ h_CLS)``.

Training is ViLBERT's 4-way multiple choice: each caption comes with K = 4 images (view 0 its own,
views 1–3 fixed hard negatives), the K scores ``[B, K]`` go through a softmax cross-entropy with
the true image at index ``label`` (0 in the contract's data). At evaluation every (caption, image)
pair of a pool is scored on its own (:meth:`cotrain.model.Model.score_pairs`).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from cotrain.config import HeadConfig
from cotrain.heads.common import Head, class_ids, get_label
from cotrain.trunks.layers import init_vit_weights
from cotrain.trunks.output import TrunkOutput


class RetrievalHead(Head):
    """``forward(out) -> scores``: ``[B, K]`` with views, ``[B]`` for single pairs.

    ``losses(logits [B, K], batch)``: ``{"ce": CE(logits, batch["label"] [B])}``.
    ``predict(logits)``: the scores themselves (only their order matters for recall@K).
    ``results(scores [n, Ni])``: ``ranking`` (image indices, best first) and ``scores`` per image.
    """

    kind, metric, uses_classes, ranks = "retrieval", "recall", False, True
    default_loss_weights = {"ce": 1.0}
    first_states_only = True  # forward reads out.joint() = h_IMG ⊙ h_CLS only

    def __init__(self, cfg: HeadConfig, dim: int, num_classes: int = 0) -> None:
        super().__init__(cfg)
        self.drop = nn.Dropout(cfg.dropout) if cfg.dropout > 0 else nn.Identity()
        self.score = nn.Linear(dim, 1)
        self.apply(init_vit_weights)

    def forward(self, out: TrunkOutput) -> torch.Tensor:
        return self.score(self.drop(out.joint())).squeeze(-1)

    def losses(self, logits: torch.Tensor, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        if logits.dim() != 2:
            raise ValueError(
                "the retrieval loss is a multiple choice over K images per caption: the batch's visual "
                f"arrays need a view axis (regions [B, K, R, F]); got scores {tuple(logits.shape)}"
            )
        target = class_ids(get_label(batch, "retrieval"), logits, "retrieval")
        return {"ce": F.cross_entropy(logits, target)}

    def predict(self, logits: torch.Tensor) -> torch.Tensor:
        return logits

    def results(self, probs: torch.Tensor, batch: dict, class_names: list[str], top_k: int) -> list[dict]:
        return [{"ranking": row.argsort(descending=True).tolist(), "scores": [round(float(s), 6) for s in row]}
                for row in probs.float().cpu()]
