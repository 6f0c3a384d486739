"""Caption-based image retrieval head (12-in-1 §3.2): alignment score ``W_i(h_IMG ⊙ h_CLS)``.

Training has two losses, chosen per task by ``tasks[].retrieval.loss`` (passed to :meth:`losses`
as the head's per-task options, see :mod:`cotrain.heads.common`):

- ``mc`` (``multiple_choice``): ViLBERT's K-way multiple choice. Each caption comes with K images
  (view 0 its own, then hard and random negatives: :mod:`cotrain.data.negatives`); the K joint
  scores ``[B, K]`` go through a softmax cross-entropy with the true image at index ``label`` (0).
- ``contrastive``: image-to-text and text-to-image InfoNCE over the batch (:func:`info_nce`) on the
  single-stream states - the caption alone through the trunk (``h_CLS``) and its image (view 0)
  alone (``h_IMG`` / the class token): ``batch["single_text"]`` and ``batch["single_<visual kind>"]``
  ``[B, D]``, which :meth:`cotrain.model.Model.losses` adds because :meth:`RetrievalHead.single_inputs`
  asks for them. It trains the dual-encoder representation that first-stage ranking uses.

``both`` (``tasks[].retrieval.loss``'s default) computes the two; a task without options (a
``TaskSpec`` made by hand, a checkpoint from before the option) trains ``multiple_choice``. Each
term is weighted by ``loss_weights`` (``{"mc": 1, "contrastive": 1}``
by default, ``model.heads.<key>.loss_weights`` overrides). At evaluation every (caption, image) pair
of a pool is scored (:meth:`cotrain.model.Model.score_pairs`).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from cotrain.config import ConfigError, HeadConfig
from cotrain.heads.common import Head, class_ids, get_label, single_key
from cotrain.trunks.layers import init_vit_weights
from cotrain.trunks.output import TrunkOutput

LOSSES = {"multiple_choice": ("mc",), "contrastive": ("contrastive",), "both": ("mc", "contrastive")}


def info_nce(text: torch.Tensor, visual: torch.Tensor, temperature: float,
             image_id: torch.Tensor | None = None) -> torch.Tensor:
    """Symmetric InfoNCE of a batch of pairs: ``text [B, D]`` and ``visual [B, D]`` (row b's caption
    and its image), similarity ``S = cos(text_i, visual_j) / temperature`` ``[B, B]``; the mean of
    ``CE(S, arange(B))`` (text → image) and ``CE(Sᵀ, arange(B))`` (image → text). With ``image_id``
    ``[B]``, two rows showing the same image are left out of each other's softmax (neither positive
    nor negative). A scalar."""
    if text.shape != visual.shape or text.dim() != 2:
        raise ValueError(f"info_nce needs text and visual states [B, D] of one shape, got {tuple(text.shape)} "
                         f"and {tuple(visual.shape)}")
    t, v = F.normalize(text.float(), dim=-1), F.normalize(visual.float(), dim=-1)
    sim = t @ v.T / temperature
    if image_id is not None:
        same = image_id[:, None] == image_id[None, :]
        same.fill_diagonal_(False)
        sim = sim.masked_fill(same, float("-inf"))
    target = torch.arange(len(sim), device=sim.device)
    return (F.cross_entropy(sim, target) + F.cross_entropy(sim.T, target)) / 2


class RetrievalHead(Head):
    """``forward(out) -> scores``: ``[B, K]`` with views, ``[B]`` for single pairs.

    ``losses(logits [B, K] or None, batch, loss=, temperature=)``: ``{"mc": CE(logits, batch["label"]
    [B])}`` and / or ``{"contrastive": info_nce(batch["single_text"], batch["single_<visual>"])}``.
    ``predict(logits)``: the scores themselves (only their order matters for recall@K).
    ``results(scores [n, Ni])``: ``ranking`` (image indices, best first) and ``scores`` per image.
    """

    kind, metric, uses_classes, ranks = "retrieval", "recall", False, True
    default_loss_weights = {"mc": 1.0, "contrastive": 1.0}
    options_from, option_keys = "retrieval", ("loss", "temperature")
    first_states_only = True  # forward reads out.joint() = h_IMG ⊙ h_CLS only

    def __init__(self, cfg: HeadConfig, dim: int, num_classes: int = 0) -> None:
        super().__init__(cfg)
        self.drop = nn.Dropout(cfg.dropout) if cfg.dropout > 0 else nn.Identity()
        self.score = nn.Linear(dim, 1)
        self.apply(init_vit_weights)

    @staticmethod
    def _terms(loss: str) -> tuple[str, ...]:
        if loss not in LOSSES:
            raise ConfigError(f"unknown retrieval loss {loss!r}; use {', '.join(LOSSES)}")
        return LOSSES[loss]

    def single_inputs(self, inputs: tuple[str, ...], loss: str = "multiple_choice", **options) -> tuple[str, ...]:
        return tuple(inputs) if "contrastive" in self._terms(loss) else ()

    def uses_joint(self, loss: str = "multiple_choice", **options) -> bool:
        return "mc" in self._terms(loss)

    def forward(self, out: TrunkOutput) -> torch.Tensor:
        return self.score(self.drop(out.joint())).squeeze(-1)

    def losses(self, logits: torch.Tensor | None, batch: dict[str, torch.Tensor], loss: str = "multiple_choice",
               temperature: float = 0.07) -> dict[str, torch.Tensor]:
        terms = {}
        wanted = self._terms(loss)
        if "mc" in wanted:
            if logits is None or logits.dim() != 2:
                raise ValueError(
                    "the retrieval loss is a multiple choice over K images per caption: the batch's visual "
                    f"arrays need a view axis (regions [B, K, R, F]); got scores "
                    f"{None if logits is None else tuple(logits.shape)}"
                )
            terms["mc"] = F.cross_entropy(logits, class_ids(get_label(batch, "retrieval"), logits, "retrieval"))
        if "contrastive" in wanted:
            text, visual = _single_states(batch)
            ids = batch.get("image_id")
            if ids is not None and ids.dim() == 2:
                ids = ids[:, 0]  # the caption's own image (view 0)
            terms["contrastive"] = info_nce(text, visual, temperature, ids if ids is not None and ids.dim() == 1 else None)
        return terms

    def predict(self, logits: torch.Tensor) -> torch.Tensor:
        return logits

    def results(self, probs: torch.Tensor, batch: dict, class_names: list[str], top_k: int) -> list[dict]:
        return [{"ranking": row.argsort(descending=True).tolist(), "scores": [round(float(s), 6) for s in row]}
                for row in probs.float().cpu()]


def _single_states(batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
    """``(batch["single_text"], the one other single-stream state)``, each ``[B, D]``."""
    prefix = single_key("")
    others = [k for k in batch if k.startswith(prefix) and k != single_key("text")]
    if single_key("text") not in batch or len(others) != 1:
        raise KeyError(f"the contrastive retrieval loss needs batch[{single_key('text')!r}] and one visual "
                       f"single-stream state ({single_key('regions')!r} or {single_key('image')!r}), added by "
                       f"Model.losses; the batch has {sorted(batch)}")
    return batch[single_key("text")], batch[others[0]]
