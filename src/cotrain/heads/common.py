"""What every head shares: the head contract, ViLBERT's two-layer classifier, batch checks and the
formatting of class predictions.

The contract (:class:`Head`): ``forward(out: TrunkOutput) -> predictions`` (logits / scores);
``losses(predictions, batch) -> {term: tensor}``, each term weighted by ``loss_weights`` (explicit,
overridable per head by ``model.heads.<key>.loss_weights``; terms named ``stat_*`` are statistics,
returned detached and never added to the loss); ``predict(predictions)`` →
probabilities or scores; ``results(probs, batch, class_names, top_k)`` → one dict per example for
the inference API. Class attributes say what the task table needs: ``kind``, the default
``metric``, whether the output size is the task's number of classes (``uses_classes``), and which
input kind the head reads tokens of (``needs``).

Per-task options: a head whose loss depends on settings of the task (not of the shared head) names
the task-config section (``options_from``, e.g. ``"retrieval"`` for ``tasks[].retrieval``) and its
keys (``option_keys``); the task table copies them into ``TaskSpec.head_options`` and
:meth:`cotrain.model.Model.losses` passes them to ``losses`` as keyword arguments. Single-stream
states: a head whose loss also reads inputs run *alone* through the trunk (a dual-encoder loss) says
which in ``single_inputs(inputs, **options)``; ``Model.losses`` then adds ``batch[single_key(kind)]``
= ``batch["single_<kind>"]`` ``[B, D]`` (:meth:`cotrain.model.Model.pooled_single` on view 0 of a
view batch). A head whose loss does not read the joint predictions under some options says so in
``uses_joint(**options)``; it then gets ``None`` instead and the joint trunk pass is skipped.
"""

from __future__ import annotations

import torch
from torch import nn

from cotrain.config import ConfigError, HeadConfig
from cotrain.trunks.layers import init_vit_weights

STAT_PREFIX = "stat_"  # a term named so is a statistic reported with the losses, never trained on


class Head(nn.Module):
    """Base class of every head (see the module docstring)."""

    kind: str = ""
    metric: str = "top1"
    uses_classes: bool = True
    needs: str | None = None  # an input kind the task must read (refexp: regions)
    views: int = 0  # images per example the head needs (NLVR2: 2); 0: one, no view axis
    ranks: bool = False  # inference ranks candidate images for a caption (retrieval)
    # forward reads only each stream's first state (out.pooled / out.joint): pool scoring may let the
    # trunk's last layer compute just those (CoAttentionTrunk.finish(first_only=True))
    first_states_only: bool = False
    default_loss_weights: dict[str, float] = {}
    options_from: str | None = None  # a task-config section holding this head's per-task options
    option_keys: tuple[str, ...] = ()  # its keys, passed to losses() as keyword arguments

    def __init__(self, cfg: HeadConfig) -> None:
        super().__init__()
        unknown = sorted(set(cfg.loss_weights) - set(self.default_loss_weights))
        if unknown:
            raise ConfigError(f"a {self.kind} head has loss terms {sorted(self.default_loss_weights)}; "
                              f"loss_weights names {unknown}")
        self.loss_weights = {**self.default_loss_weights, **cfg.loss_weights}

    def single_inputs(self, inputs: tuple[str, ...], **options) -> tuple[str, ...]:
        """The input kinds (of the task's ``inputs``) whose single-stream state ``losses`` reads under
        ``options`` (``batch["single_<kind>"]`` ``[B, D]``); none by default."""
        return ()

    def uses_joint(self, **options) -> bool:
        """Whether ``losses`` reads the joint predictions under ``options`` (else it gets None)."""
        return True

    def weighted_total(self, terms: dict[str, torch.Tensor]) -> torch.Tensor:
        """``Σ loss_weights[k] · terms[k]`` over the terms; statistics (names starting ``stat_``) are
        left out."""
        total = None
        for k, v in terms.items():
            if k.startswith(STAT_PREFIX):
                continue
            w = self.loss_weights.get(k, 1.0)
            part = v * w if w != 1.0 else v
            total = part if total is None else total + part
        if total is None:
            raise ValueError(f"the {self.kind} head gave no loss term to weigh (only {sorted(terms)})")
        return total

    def results(self, probs: torch.Tensor, batch: dict, class_names: list[str], top_k: int) -> list[dict]:
        """``label`` (best class), ``score`` (its probability), ``scores`` (the ``top_k`` best)."""
        return class_results(probs, class_names, top_k)


def class_results(probs: torch.Tensor, names: list[str], top_k: int) -> list[dict]:
    """Rows of ``probs [B, C]`` → ``{"label", "score", "scores": {name: p} of the top_k}``."""
    k = min(top_k, probs.shape[1])
    out = []
    for row in probs.float().cpu():
        vals, idx = row.topk(k)
        out.append({"label": names[int(idx[0])], "score": float(vals[0]),
                    "scores": {names[int(i)]: round(float(v), 6) for v, i in zip(vals, idx)}})
    return out


class SimpleClassifier(nn.Module):
    """12-in-1's ``SimpleClassifier``: ``[..., in_dim] -> [..., out_dim]`` by
    (dropout) → Linear(in_dim, hidden) → GELU → LayerNorm → Linear(hidden, out_dim)."""

    def __init__(self, in_dim: int, hidden: int, out_dim: int, dropout: float = 0.0) -> None:
        super().__init__()
        if out_dim < 1:
            raise ValueError(f"a classifier needs at least one output, got {out_dim}")
        self.drop = nn.Dropout(dropout) if dropout > 0 else nn.Identity()
        self.mlp = nn.Sequential(nn.Linear(in_dim, hidden), nn.GELU(), nn.LayerNorm(hidden), nn.Linear(hidden, out_dim))
        self.apply(init_vit_weights)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.mlp(self.drop(x))


def single_key(kind: str) -> str:
    """The batch key of input ``kind``'s single-stream state: ``"single_<kind>"``."""
    return f"single_{kind}"


def get_label(batch: dict[str, torch.Tensor], head: str) -> torch.Tensor:
    """``batch["label"]``, or a KeyError naming the head and the keys the batch has."""
    if "label" not in batch:
        raise KeyError(f"the {head} head needs batch['label']; the batch has {sorted(batch)}")
    return batch["label"]


def class_ids(label: torch.Tensor, logits: torch.Tensor, head: str) -> torch.Tensor:
    """Check int class ids ``[B]`` for logits ``[B, C]`` and return them as int64."""
    if label.is_floating_point() or label.dtype == torch.bool:
        raise TypeError(f"the {head} head needs int64 class ids as label, got {label.dtype}")
    if label.shape != logits.shape[:1]:
        raise ValueError(f"the {head} head needs label [B] = [{logits.shape[0]}], got {tuple(label.shape)}")
    return label.long()


def single_view(out, head: str) -> None:
    """Refuse a batch with a view axis (K images per example) for a one-image head."""
    if out.views:
        raise ValueError(f"the {head} head takes one image per example, got K = {out.views} views")


def float_targets(batch: dict[str, torch.Tensor], logits: torch.Tensor, head: str, what: str) -> torch.Tensor:
    """``batch["label"]`` as float targets of ``logits``' shape (``what`` names them in the error)."""
    target = get_label(batch, head)
    if target.shape != logits.shape or not target.is_floating_point():
        raise ValueError(
            f"the {head} head needs float {what} label {tuple(logits.shape)}, got {target.dtype} {tuple(target.shape)}"
        )
    return target
