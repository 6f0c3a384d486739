"""Pretraining head (kind ``pretrain``) on a caption task: ViLBERT / 12-in-1's masked multimodal
modelling and CVLP's visual contrastive objective, as loss terms of one head.

Reads the co-attention trunk's output: ``out.tokens("text")`` word states ``[B, L', D]``,
``out.tokens("regions")`` region states ``[B, R, D]``, ``out.joint()`` ``h_IMG ⊙ h_CLS`` ``[B, D]``.
The terms, one per entry of ``objectives`` (each needs its batch transform):

- ``mlm`` (``mask_text``: ``mlm_labels`` int64 ``[B, L]``, -100 = not predicted): BERT's prediction
  head ``Linear(D, E)`` → GELU → ``LayerNorm(E)`` → decoder ``[V, E]`` + its own bias ``[V]``, the
  decoder weight being the text encoder's word-embedding matrix itself; cross-entropy averaged over
  the predicted tokens. The text encoder drops trailing all-padding columns, so ``L' <= L``: the
  labels of word state ``j`` are column ``first_column + j`` (0 for the encoder learnt from
  scratch, whose class token is its own; 1 for a pretrained BERT, whose ``[CLS]`` is in the ids).
- ``itm`` (``match_pairs``: ``itm_label`` int64 ``[B]``, 1 matched): ``Linear(D, 2)`` on the joint
  state, 2-way cross-entropy over the rows.
- ``mrm`` (``mask_regions``: ``region_target`` ``[B, R, F]``, ``region_masked`` bool ``[B, R]``):
  ``mrm_target: l2`` a ``Linear(D, F)`` regressing the features before masking (squared error,
  mean over F, averaged over the masked regions; LXMERT); ``kl`` a ``Linear(D, C)`` and
  ``KL(region_classes || softmax)`` (``region_classes`` ``[B, R, C]``; ViLBERT), averaged alike.
- ``contrastive`` (the CVLP hook: ``cvlp_keys`` ``[B, R, P]``, ``cvlp_queue`` ``[Q, P]``,
  ``cvlp_queue_valid`` bool ``[Q]``): per real region ``i``, InfoNCE with logits
  ``[q_i·k_i, q_i·queue_j for valid j] / τ`` (``logit_clip: tanh10``: ``10·tanh(logit / 10)``),
  target index 0, averaged over the real regions; ``q = region_keys(out)``.

Rows with ``itm_label == 0`` (a caption of another image) contribute no ``mlm`` / ``mrm`` loss
(12-in-1's fix: masked words of a wrong caption cannot be read off the image). A batch without a
predicted token / region gives a term of 0 that keeps the graph. Statistics come back with the
terms under names starting ``stat_`` (detached; :meth:`Head.weighted_total` leaves them out):
``stat_masked_tokens`` / ``stat_masked_regions`` (counts the terms average over),
``stat_pos_sim``, ``stat_neg_sim``, ``stat_contrastive_acc``, ``stat_queue_fill``.

The word embeddings are tied by :meth:`PretrainHead.tie_word_embeddings`, which
:class:`cotrain.model.Model` calls with the text encoder's ``input_embeddings()``: the head keeps a
reference to that ``nn.Embedding`` without registering it, so the matrix is one Parameter of the
model, listed once by ``parameters()`` (the optimizer), saved once (under the encoder's key, as
safetensors requires), and ``copy.deepcopy`` / ``load_state_dict`` keep the tie.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from cotrain.config import ConfigError, HeadConfig
from cotrain.data.transforms import IGNORE
from cotrain.errors import InputError
from cotrain.heads.common import Head, single_view
from cotrain.trunks.layers import init_vit_weights
from cotrain.trunks.output import TrunkOutput

OBJECTIVES = ("mlm", "itm", "mrm", "contrastive")
NEEDS_TRANSFORM = {"mlm_labels": "mask_text", "itm_label": "match_pairs", "region_target": "mask_regions",
                   "region_masked": "mask_regions", "region_classes": "the data (its region classes)",
                   **{k: "the CVLP hook" for k in ("cvlp_keys", "cvlp_queue", "cvlp_queue_valid")}}


def clip_logits(logits: torch.Tensor, mode: str) -> torch.Tensor:
    """``none``: as they are; ``tanh10``: ``10·tanh(logits / 10)`` (CVLP's released code)."""
    if mode == "none":
        return logits
    if mode == "tanh10":
        return 10.0 * torch.tanh(logits / 10.0)
    raise ValueError(f"unknown logit_clip {mode!r}; use none or tanh10")


class PretrainHead(Head):
    """``forward(out) -> preds``: ``"mlm"`` ``[B, L', V]``, ``"itm"`` ``[B, 2]``, ``"mrm"`` ``[B, R, F or C]``,
    ``"queries"`` ``[B, R, P]`` (contrastive) and ``"region_mask"`` ``[B, R]``, each for its objective.

    ``losses(preds, batch)``: a term per objective plus ``stat_*`` statistics (module docstring).
    ``predict(preds)``: ``{"match": P(matched) [B]}`` and/or ``{"words": argmax ids [B, L']}``.
    """

    kind, metric, uses_classes, needs = "pretrain", "pretrain", True, "text"

    def __init__(self, cfg: HeadConfig, dim: int, num_classes: int = 1) -> None:
        self.objectives = tuple(o for o in OBJECTIVES if o in cfg.objectives)
        self.default_loss_weights = {o: 1.0 for o in self.objectives}
        super().__init__(cfg)
        self.dim, self.num_classes, self.mrm_target = dim, num_classes, cfg.mrm_target
        self.contrastive = cfg.contrastive
        if "mrm" in self.objectives and cfg.mrm_target == "kl" and num_classes < 2:
            raise ConfigError("a pretrain head with mrm_target: kl matches each masked region's class distribution, "
                              f"which needs region_classes in the data (its region class names); the data of its "
                              f"tasks has {num_classes} class: use mrm_target: l2, or data with region classes")
        self.drop = nn.Dropout(cfg.dropout) if cfg.dropout > 0 else nn.Identity()
        self.itm = nn.Linear(dim, 2) if "itm" in self.objectives else None
        self.mrm: nn.Linear | None = None  # l2: Linear(D, F), made by bind_task (F is the task's region size)
        if "mrm" in self.objectives and cfg.mrm_target == "kl":
            self.mrm = nn.Linear(dim, num_classes)
        self.projection = None
        if "contrastive" in self.objectives:
            self.projection = nn.Sequential(nn.Linear(dim, dim), nn.GELU(), nn.LayerNorm(dim),
                                            nn.Linear(dim, cfg.contrastive.proj_dim))
        self.transform: nn.Sequential | None = None  # MLM: Linear(D, E)-GELU-LayerNorm(E), made by the tie
        self.mlm_bias: nn.Parameter | None = None
        self._word_embedding: tuple[nn.Embedding, ...] = ()  # a reference, not a submodule (module docstring)
        self.first_column = 0
        self.apply(init_vit_weights)

    # ------------------------------------------------------------------ building
    def bind_task(self, spec) -> None:
        """Fit the head to a task of it (a :class:`~cotrain.tasks.TaskSpec`): ``mrm`` and ``contrastive``
        read region states, so the task must read ``regions``; ``mrm_target: l2`` regresses
        ``spec.region_dim`` features (its ``Linear(D, F)`` is made on the first task)."""
        regional = [o for o in ("mrm", "contrastive") if o in self.objectives]
        if regional and "regions" not in spec.inputs:
            raise ConfigError(f"task {spec.name!r}: the pretrain objectives {regional} read region states, but the "
                              f"task reads {list(spec.inputs)}; add regions to its inputs or drop them from objectives")
        if "mrm" in self.objectives and self.mrm_target == "l2":
            if not spec.region_dim:
                raise ConfigError(f"task {spec.name!r}: mrm_target l2 regresses region features, whose size is unknown")
            if self.mrm is None:
                self.mrm = nn.Linear(self.dim, spec.region_dim)
                init_vit_weights(self.mrm)
            elif self.mrm.out_features != spec.region_dim:
                raise ConfigError(f"task {spec.name!r} has {spec.region_dim} region features; the pretrain head "
                                  f"regresses {self.mrm.out_features}")

    def tie_word_embeddings(self, embedding: nn.Embedding, first_column: int | None = 0) -> None:
        """Predict words with ``embedding``'s matrix ``[V, E]`` as the decoder weight (kept by reference)
        and make the prediction transform ``Linear(D, E)``-GELU-``LayerNorm(E)`` and bias ``[V]``.
        ``first_column``: the id column of the first word state (None: the encoder keeps no word states)."""
        if "mlm" not in self.objectives:
            return
        if first_column is None:
            raise ConfigError("the pretrain objective mlm predicts every masked word from its state, but the text "
                              "encoder keeps only [CLS] (model.encoders.text.cls_only); turn cls_only off")
        vocab, width = embedding.weight.shape
        if self.transform is None:
            self.transform = nn.Sequential(nn.Linear(self.dim, width), nn.GELU(), nn.LayerNorm(width))
            self.transform.apply(init_vit_weights)
            self.mlm_bias = nn.Parameter(torch.zeros(vocab))
        elif self.transform[0].out_features != width or self.mlm_bias.shape[0] != vocab:
            raise ConfigError(f"the pretrain head predicts {self.mlm_bias.shape[0]} words of width "
                              f"{self.transform[0].out_features}; the embedding is [{vocab}, {width}]")
        self._word_embedding = (embedding,)
        self.first_column = int(first_column)

    @property
    def decoder_weight(self) -> torch.Tensor:
        """The MLM decoder's weight ``[V, E]``: the tied word-embedding Parameter itself."""
        if not self._word_embedding:
            raise ConfigError("the pretrain head's mlm decoder is not tied to word embeddings: build it inside "
                              "cotrain.model.Model (which calls tie_word_embeddings)")
        return self._word_embedding[0].weight

    # ------------------------------------------------------------------ forward
    def region_keys(self, out: TrunkOutput) -> torch.Tensor:
        """Region states → Linear(D, D) → GELU → LayerNorm → Linear(D, P) → L2-normalised ``[B, R, P]``
        (CVLP's projection: the queries here, the keys in the EMA key network's copy of this head)."""
        if self.projection is None:
            raise ConfigError("region_keys needs the contrastive objective (its projection) in the pretrain head")
        regions, _ = out.tokens("regions")
        return F.normalize(self.projection(regions), dim=-1)

    def forward(self, out: TrunkOutput) -> dict[str, torch.Tensor]:
        single_view(out, "pretrain")
        preds: dict[str, torch.Tensor] = {}
        if "mlm" in self.objectives:
            weight = self.decoder_weight  # a ConfigError when not tied
            words, _ = out.tokens("text")
            preds["mlm"] = F.linear(self.transform(self.drop(words)), weight, self.mlm_bias)
        if self.itm is not None:
            preds["itm"] = self.itm(self.drop(out.joint()))
        if self.mrm is not None or self.projection is not None:
            regions, mask = out.tokens("regions")
            preds["region_mask"] = mask
            if self.mrm is not None:
                preds["mrm"] = self.mrm(self.drop(regions))
            elif "mrm" in self.objectives:
                raise ConfigError("the pretrain head's mrm regression has no region size: build it inside "
                                  "cotrain.model.Model (which calls bind_task)")
            if self.projection is not None:
                preds["queries"] = self.region_keys(out)
        return preds

    # ------------------------------------------------------------------ losses
    def losses(self, preds: dict[str, torch.Tensor], batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        terms: dict[str, torch.Tensor] = {}
        if "mlm" in preds:
            labels = self.word_targets(preds, batch)
            n = (labels != IGNORE).sum()
            ce = F.cross_entropy(preds["mlm"].flatten(0, 1).float(), labels.flatten(), ignore_index=IGNORE,
                                 reduction="sum")
            terms["mlm"] = ce / n.clamp_min(1)
            terms["stat_masked_tokens"] = n.float()
        if "itm" in preds:
            label = _get(batch, "itm_label", "itm")
            if label.shape != preds["itm"].shape[:1] or label.is_floating_point():
                raise InputError(f"itm_label must be int64 [B] = [{preds['itm'].shape[0]}], got {label.dtype} "
                                 f"{tuple(label.shape)}")
            terms["itm"] = F.cross_entropy(preds["itm"].float(), label.long())
        if "mrm" in preds:
            terms.update(self._mrm(preds, batch))
        if "queries" in preds:
            if "cvlp_keys" in batch:
                terms.update(self._contrastive(preds, batch))
            elif self.training:
                raise InputError("the contrastive objective needs the CVLP hook (cotrain.train.cvlp), which puts "
                                 "cvlp_keys, cvlp_queue and cvlp_queue_valid into each batch of the task; the batch "
                                 f"has {sorted(batch)}")
        return terms

    def matched(self, batch: dict[str, torch.Tensor], rows: int, device: torch.device) -> torch.Tensor:
        """``[B]`` bool: rows whose caption is their image's (``itm_label == 1``; all without ``itm_label``)."""
        label = batch.get("itm_label")
        if label is None:
            return torch.ones(rows, dtype=torch.bool, device=device)
        if label.shape != (rows,):
            raise InputError(f"itm_label must be [B] = [{rows}], got {tuple(label.shape)}")
        return label.to(device) == 1

    def word_targets(self, preds: dict[str, torch.Tensor], batch: dict[str, torch.Tensor]) -> torch.Tensor:
        """The MLM targets of ``preds["mlm"]`` ``[B, L', V]``: ``mlm_labels`` columns ``first_column ..
        first_column + L' - 1`` ``[B, L']``, with every token of a mismatched row set to -100."""
        logits = preds["mlm"]
        b, length = logits.shape[:2]
        labels = _get(batch, "mlm_labels", "mlm")
        lo, hi = self.first_column, self.first_column + length
        if labels.dim() != 2 or labels.shape[0] != b or labels.shape[1] < hi:
            raise InputError(f"mlm_labels must be [B, L] with B = {b} and L >= {hi} (the text's columns), "
                             f"got {tuple(labels.shape)}")
        outside = torch.cat([labels[:, :lo], labels[:, hi:]], dim=1)
        if (outside != IGNORE).any():
            raise InputError(f"mlm_labels mark tokens outside the encoded words (columns {lo}..{hi - 1}): a [CLS] "
                             "or padding position is masked")
        aligned = labels[:, lo:hi].long()
        keep = self.matched(batch, b, labels.device)
        return aligned.masked_fill(~keep[:, None], IGNORE)

    def _mrm(self, preds: dict[str, torch.Tensor], batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        pred, real = preds["mrm"], preds["region_mask"]
        b, r = real.shape
        masked = _get(batch, "region_masked", "mrm")
        if masked.shape != (b, r):
            raise InputError(f"region_masked must be bool [B, R] = [{b}, {r}], got {tuple(masked.shape)}")
        chosen = masked.bool() & real & self.matched(batch, b, real.device)[:, None]
        if self.mrm_target == "l2":
            target = _get(batch, "region_target", "mrm")
            if target.shape != pred.shape:
                raise InputError(f"region_target must be [B, R, F] = {tuple(pred.shape)}, got {tuple(target.shape)}")
            per = (pred[chosen].float() - target[chosen].float()).pow(2).mean(-1)
        else:
            target = _get(batch, "region_classes", "mrm")
            if target.shape != pred.shape:
                raise InputError(f"region_classes must be [B, R, C] = {tuple(pred.shape)}, got {tuple(target.shape)}")
            logq = F.log_softmax(pred[chosen].float(), dim=-1)
            per = F.kl_div(logq, target[chosen].float(), reduction="none").sum(-1)
        n = chosen.sum()
        return {"mrm": per.sum() / n.clamp_min(1), "stat_masked_regions": n.float()}

    def _contrastive(self, preds: dict[str, torch.Tensor], batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        q, real = preds["queries"], preds["region_mask"]
        keys, queue, valid = (_get(batch, k, "contrastive") for k in ("cvlp_keys", "cvlp_queue", "cvlp_queue_valid"))
        if keys.shape != q.shape or queue.dim() != 2 or queue.shape[1] != q.shape[-1] or valid.shape != queue.shape[:1]:
            raise InputError(f"the CVLP batch must hold cvlp_keys [B, R, P] = {tuple(q.shape)}, cvlp_queue [Q, P] and "
                             f"cvlp_queue_valid [Q]; got {tuple(keys.shape)}, {tuple(queue.shape)}, {tuple(valid.shape)}")
        qs = q[real].float()  # [N, P] real regions
        ks = keys[real].detach().float()
        valid = valid.bool()
        pos = (qs * ks).sum(-1)  # [N]
        neg = qs @ queue.detach().float().t()  # [N, Q]
        logits = clip_logits(torch.cat([pos[:, None], neg], 1) / self.contrastive.temperature, self.contrastive.logit_clip)
        logits = logits.masked_fill(torch.cat([valid.new_zeros(1), ~valid])[None, :], float("-inf"))
        target = torch.zeros(len(qs), dtype=torch.long, device=qs.device)
        loss = F.cross_entropy(logits, target, reduction="sum") / max(len(qs), 1)
        with torch.no_grad():
            negs = neg[:, valid]
            best = negs.max(1).values if negs.shape[1] else torch.full_like(pos, float("-inf"))
            stats = {
                "stat_pos_sim": pos.mean() if len(pos) else pos.new_zeros(()),
                "stat_neg_sim": negs.mean() if negs.numel() else pos.new_zeros(()),
                "stat_contrastive_acc": (pos > best).float().mean() if len(pos) else pos.new_zeros(()),
                "stat_queue_fill": valid.float().mean(),
            }
        return {"contrastive": loss, **{k: v.detach() for k, v in stats.items()}}

    # ------------------------------------------------------------------ inference
    def predict(self, preds: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        out = {}
        if "itm" in preds:
            out["match"] = preds["itm"].softmax(-1)[:, 1]
        if "mlm" in preds:
            out["words"] = preds["mlm"].argmax(-1)
        return out

    def results(self, probs: dict[str, torch.Tensor], batch: dict, class_names: list[str], top_k: int) -> list[dict]:
        """Per row ``match`` (the probability that the caption is the image's) and ``words`` (the most
        likely word id at each word position), those the head's objectives give."""
        rows = len(next(iter(probs.values()))) if probs else 0
        return [{**({"match": round(float(probs["match"][i]), 6)} if "match" in probs else {}),
                 **({"words": probs["words"][i].long().tolist()} if "words" in probs else {})} for i in range(rows)]

    def extra_repr(self) -> str:
        return f"objectives={list(self.objectives)}, mrm_target={self.mrm_target}, tied={bool(self._word_embedding)}"


def _get(batch: dict[str, torch.Tensor], key: str, objective: str) -> torch.Tensor:
    if key not in batch:
        raise InputError(f"the pretrain objective {objective} needs batch[{key!r}] (from {NEEDS_TRANSFORM[key]}); "
                         f"the batch has {sorted(batch)}")
    return batch[key]
