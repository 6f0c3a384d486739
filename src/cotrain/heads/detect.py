"""UniT's detection head (Hu & Singh 2021, §3.3) — DETR's class and box heads, plus BUTD's
attribute head, on every decoder layer.

Reads ``TrunkOutput.decoder`` ``[L, B, Q, D]`` (the ``encoder_decoder`` trunk's per-layer decoder
states) and applies, with weights shared across layers:

- class head: ``Linear(D, C+1)`` → ``logits [L, B, Q, C+1]`` (the last class is no-object);
- box head: ``Linear(D, D)``-ReLU-``Linear(D, D)``-ReLU-``Linear(D, 4)`` → sigmoid → ``boxes
  [L, B, Q, 4]`` normalised (cx, cy, w, h);
- attribute head (``num_attributes`` A > 0): ``[h ; E(c)]`` → ``Linear(D + D, H)``-ReLU-``Linear(H, A)``
  → ``attributes [L, B, Q, A]``, with ``E`` an embedding of the object class (BUTD) and ``H`` =
  ``hidden`` or D. The class ``c`` is the query's own predicted class — the argmax of its logits over
  the C real classes, not differentiated — at training and at inference alike (not the matched
  target's class: the forward pass does not know the matching, and this keeps training and inference
  the same computation).

Training: :class:`~cotrain.detection.criterion.SetCriterion` on every layer (terms ``ce``, ``l1``,
``giou``, ``attr`` and their ``_aux{i}`` copies, the latter weighted like their base term). At test
time only the last layer is read (``predict``, ``postprocess``, ``results``).
"""

from __future__ import annotations

import re

import torch
from torch import nn

from cotrain.config import ConfigError, HeadConfig
from cotrain.detection.boxes import scale_boxes
from cotrain.detection.criterion import SetCriterion
from cotrain.detection.matcher import HungarianMatcher
from cotrain.heads.common import Head, single_view
from cotrain.trunks.layers import init_vit_weights
from cotrain.trunks.output import TrunkOutput

_AUX = re.compile(r"^(.+)_aux\d+$")
SCORE_THRESHOLD = 0.5  # results(): objects scoring above this are kept (at least top_k are)


class DetectHead(Head):
    """``forward(out) -> {"logits", "boxes"(, "attributes")}`` (see the module docstring).

    ``losses(preds, batch)`` reads ``batch["target_boxes"]`` / ``["target_classes"]`` (lists of B
    tensors ``[n_i, 4]`` / ``[n_i]``) and the optional ``target_attributes`` / ``target_iscrowd``.
    ``predict(preds)`` → the last layer's ``probs [B, Q, C]``, ``boxes [B, Q, 4]`` (, ``attributes
    [B, Q, A]``); ``postprocess(preds, orig_size)`` → per image absolute xyxy boxes, scores, labels.
    """

    kind, metric, uses_classes, needs = "detect", "detection", True, "image"
    default_loss_weights = {"ce": 1.0, "l1": 5.0, "giou": 2.0, "attr": 1.0}

    def __init__(self, cfg: HeadConfig, dim: int, num_classes: int) -> None:
        super().__init__(cfg)
        if num_classes < 1:
            raise ValueError(f"a detect head needs at least one class, got {num_classes}")
        costs = (cfg.match_cost_class, cfg.match_cost_bbox, cfg.match_cost_giou)
        if not any(costs):
            raise ConfigError("a detect head needs a non-zero matching cost: match_cost_class, match_cost_bbox "
                              "and match_cost_giou are all 0")
        self.num_classes, self.num_attributes = num_classes, cfg.num_attributes
        self.attribute_names: list[str] | None = None  # set by whoever knows them (TaskData.meta)
        self.drop = nn.Dropout(cfg.dropout) if cfg.dropout > 0 else nn.Identity()
        self.class_embed = nn.Linear(dim, num_classes + 1)
        self.box_embed = nn.Sequential(nn.Linear(dim, dim), nn.ReLU(), nn.Linear(dim, dim), nn.ReLU(), nn.Linear(dim, 4))
        if cfg.num_attributes:
            hidden = cfg.hidden or dim
            self.attr_class = nn.Embedding(num_classes, dim)
            self.attr_embed = nn.Sequential(nn.Linear(2 * dim, hidden), nn.ReLU(), nn.Linear(hidden, cfg.num_attributes))
        self.apply(init_vit_weights)
        self.criterion = SetCriterion(num_classes, HungarianMatcher(*costs), cfg.eos_coef, cfg.num_attributes)

    def forward(self, out: TrunkOutput) -> dict[str, torch.Tensor]:
        single_view(out, "detect")
        h = out.decoder
        if h is None:
            raise ConfigError("a detect head reads the decoder states of an encoder-decoder trunk; set "
                              "model.trunk: encoder_decoder (this trunk returned no decoder states)")
        if h.dim() != 4:
            raise ValueError(f"the detect head needs decoder states [L, B, Q, D], got {tuple(h.shape)}")
        h = self.drop(h)
        preds = {"logits": self.class_embed(h), "boxes": self.box_embed(h).sigmoid()}
        if self.num_attributes:
            cls = preds["logits"][..., : self.num_classes].argmax(-1)  # [L, B, Q]: predicted real class
            preds["attributes"] = self.attr_embed(torch.cat([h, self.attr_class(cls).to(h.dtype)], dim=-1))
        return preds

    # ------------------------------------------------------------------ training
    def targets(self, batch: dict) -> list[dict[str, torch.Tensor]]:
        """The criterion's per-image targets from the batch's ``target_*`` lists."""
        missing = [k for k in ("target_boxes", "target_classes") if k not in batch]
        if missing:
            raise KeyError(f"the detect head needs batch {missing}; the batch has {sorted(batch)}")
        boxes, classes = batch["target_boxes"], batch["target_classes"]
        if len(boxes) != len(classes):
            raise ValueError(f"the detect head got {len(boxes)} rows of target_boxes but {len(classes)} of target_classes")
        out = []
        for i, (b, c) in enumerate(zip(boxes, classes)):
            t = {"boxes": torch.as_tensor(b), "classes": torch.as_tensor(c)}
            for key, name in (("target_attributes", "attributes"), ("target_iscrowd", "iscrowd")):
                if batch.get(key) is not None:
                    t[name] = torch.as_tensor(batch[key][i])
            out.append(t)
        return out

    def losses(self, preds: dict[str, torch.Tensor], batch: dict) -> dict[str, torch.Tensor]:
        return self.criterion(preds, self.targets(batch))

    def weighted_total(self, terms: dict[str, torch.Tensor]) -> torch.Tensor:
        """``Σ w[k] · terms[k]`` where a term ``x_aux{i}`` takes the weight of ``x``."""
        total = None
        for k, v in terms.items():
            m = _AUX.match(k)
            w = self.loss_weights.get(m.group(1) if m else k, 1.0)
            part = v * w if w != 1.0 else v
            total = part if total is None else total + part
        return total

    # ------------------------------------------------------------------ inference
    def predict(self, preds: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """The last layer: ``probs [B, Q, C]`` (the softmax over C+1 classes without no-object),
        ``boxes [B, Q, 4]`` normalised cxcywh (, ``attributes [B, Q, A]``: softmax over attributes)."""
        out = {"probs": preds["logits"][-1].float().softmax(-1)[..., :-1], "boxes": preds["boxes"][-1].float()}
        if "attributes" in preds:
            out["attributes"] = preds["attributes"][-1].float().softmax(-1)
        return out

    def postprocess(self, preds: dict[str, torch.Tensor], orig_size: torch.Tensor) -> list[dict[str, torch.Tensor]]:
        """Per image ``{"boxes": [Q, 4] absolute xyxy in orig_size [B, 2] = (height, width),
        "scores": [Q], "labels": [Q] (, "attributes": [Q] argmax attribute)}`` — score and label the
        best of the C real classes (DETR's PostProcess), every query kept. ``preds`` is the forward
        output or :meth:`predict`'s."""
        p = preds if "probs" in preds else self.predict(preds)
        scores, labels = p["probs"].max(-1)
        boxes = scale_boxes(p["boxes"], torch.as_tensor(orig_size, device=p["boxes"].device))
        out = []
        for i in range(scores.shape[0]):
            r = {"boxes": boxes[i], "scores": scores[i], "labels": labels[i]}
            if "attributes" in p:
                r["attributes"] = p["attributes"][i].argmax(-1)
            out.append(r)
        return out

    def results(self, probs: dict[str, torch.Tensor], batch: dict, class_names: list[str], top_k: int) -> list[dict]:
        """Per image ``{"objects": [{"label", "score", "box": [x0, y0, x1, y1] in pixels of the original
        image (``batch["orig_size"]``, else the image tensor's size)(, "attribute")}, ...]}``, sorted by
        score: every query scoring above 0.5, and at least the ``top_k`` best."""
        if "orig_size" in batch:
            size = torch.as_tensor(batch["orig_size"])
        else:
            if "image" not in batch:
                raise KeyError(f"the detect head needs batch['orig_size'] or batch['image']; the batch has {sorted(batch)}")
            size = torch.tensor(batch["image"].shape[-2:]).expand(batch["image"].shape[0], 2)
        attr_names = self.attribute_names
        out = []
        for r in self.postprocess({k: v.detach().float().cpu() for k, v in probs.items()}, size.cpu()):
            order = r["scores"].argsort(descending=True)
            keep = max(int((r["scores"] > SCORE_THRESHOLD).sum()), min(top_k, len(order)))
            objects = []
            for q in order[:keep].tolist():
                label = int(r["labels"][q])
                obj = {"label": class_names[label] if label < len(class_names) else label,
                       "score": round(float(r["scores"][q]), 6),
                       "box": [round(float(x), 2) for x in r["boxes"][q]]}
                if "attributes" in r:
                    a = int(r["attributes"][q])
                    obj["attribute"] = attr_names[a] if attr_names and a < len(attr_names) else a
                objects.append(obj)
            out.append({"objects": objects})
        return out

    def extra_repr(self) -> str:
        return f"num_classes={self.num_classes}, num_attributes={self.num_attributes}"
