"""Task heads, chosen by kind from ONE table (:data:`HEADS`): the only place head kinds are listed.

Every head follows :class:`~cotrain.heads.common.Head`'s contract: ``forward(TrunkOutput) ->
predictions``, ``losses(predictions, batch) -> {term: tensor}`` weighted by ``loss_weights``,
``predict``, ``results``; its class attributes give the task table the default metric, whether the
task's class count sizes it, and the input kind it needs.

| kind | head | reads | loss | metric |
| --- | --- | --- | --- | --- |
| ``classify`` | linear / MLP | class token (or ``h_IMG ⊙ h_CLS``), or mean of tokens | softmax CE | top1 |
| ``multilabel`` | linear / MLP | same | sigmoid BCE | top1 (or mAP) |
| ``vqa`` | 2-layer MLP | ``h_IMG ⊙ h_CLS`` | soft-score BCE × A | vqa |
| ``retrieval`` | ``W(h_IMG ⊙ h_CLS)`` | per view (+ single-stream states) | K-way multiple choice CE and / or in-batch InfoNCE | recall |
| ``refexp`` | ``W h_{v_i}`` | region states | BCE on IoU targets | refexp |
| ``nlvr`` | 2-layer MLP | two views concatenated | softmax CE | top1 |
| ``snli-ve`` | 2-layer MLP | ``h_IMG ⊙ h_CLS`` | softmax CE | top1 |
| ``detect`` | class linear + 3-layer box MLP (+ attribute MLP) | every decoder layer's query states | Hungarian-matched CE + L1 + GIoU (+ attribute CE) per layer | detection |
| ``pretrain`` | BERT prediction head tied to the word embeddings; ``Linear(D, 2)``; ``Linear(D, F or C)``; CVLP projection | word states; ``h_IMG ⊙ h_CLS``; region states | per ``objectives``: masked-word CE, matching CE, masked-region L2 / KL, region InfoNCE | pretrain |
"""

from __future__ import annotations

from cotrain.config import ConfigError, HeadConfig
from cotrain.heads.classify import ClassifyHead, pool
from cotrain.heads.common import Head
from cotrain.heads.detect import DetectHead
from cotrain.heads.pretrain import PretrainHead
from cotrain.heads.refexp import RefExpHead
from cotrain.heads.retrieval import RetrievalHead
from cotrain.heads.verify import NLVRHead, SNLIVEHead
from cotrain.heads.vqa import VQAHead

HEADS: dict[str, type[Head]] = {
    "classify": ClassifyHead,
    "multilabel": ClassifyHead,
    "vqa": VQAHead,
    "retrieval": RetrievalHead,
    "refexp": RefExpHead,
    "nlvr": NLVRHead,
    "snli-ve": SNLIVEHead,
    "detect": DetectHead,
    "pretrain": PretrainHead,
}


def head_class(kind: str) -> type[Head]:
    """The head class of ``kind``; a ConfigError naming the known kinds otherwise."""
    if kind not in HEADS:
        raise ConfigError(f"unknown head type {kind!r}; known: {sorted(HEADS)}")
    return HEADS[kind]


def build_head(cfg: HeadConfig, dim: int, num_classes: int) -> Head:
    """The head ``cfg.type`` on trunk width ``dim`` with ``num_classes`` outputs (where they apply)."""
    return head_class(cfg.type)(cfg, dim, num_classes)


def default_metric(kind: str) -> str:
    return head_class(kind).metric


__all__ = ["HEADS", "ClassifyHead", "DetectHead", "Head", "PretrainHead", "build_head", "default_metric", "head_class", "pool"]
