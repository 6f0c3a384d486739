"""Layer drop of the co-attention trunk: CVLP's "randomly layer-dropping key network".

The trunk's layers form four stacks (:data:`STACKS`): the text-only prefix Blocks, each round's
visual Block, text Block and co-attention layer. A trunk with ``layer_drop = p > 0`` draws one
:func:`layer_plan` per forward pass (the whole batch follows it) from ``trunk.drop_generator`` (a
CPU ``torch.Generator``; None: torch's global generator) and runs, per layer, the layer itself
(``run``), nothing (``skip``: identity) or its pair's successor (``successor``). Two modes
(``trunk.layer_drop_mode``):

- ``drop`` (the paper): every layer of every stack is skipped independently with probability p.
- ``replace_pairs`` (CVLP's released code, BERT-of-Theseus style): the layers of each stack are
  taken in consecutive pairs ``(2i, 2i+1)``; with probability p a pair is replaced by ONE successor
  layer, which runs at position ``2i`` while position ``2i+1`` is skipped. An odd last layer is
  never replaced. Successor ``i`` of a stack starts as a copy of layer ``2i``
  (:func:`attach_successors`); the CVLP hook keeps it an EMA of the query network's layer ``2i``.

Successors exist only on the key network's trunk (``trunk.successors``: a ``ModuleDict``
``{stack: ModuleList}``, so they are in its ``state_dict``). With ``p = 0`` (the default, and
always for the query network) no plan is drawn and the forward is the plain one.
"""

from __future__ import annotations

import copy
from typing import Iterator

import torch
from torch import nn

STACKS = ("text_only", "v_blocks", "t_blocks", "co_layers")
MODES = ("drop", "replace_pairs")
RUN, SKIP, SUCCESSOR = "run", "skip", "successor"


def check_layer_drop(p: float, mode: str) -> None:
    """A ValueError naming the bad rate (must lie in [0, 1)) or mode (one of :data:`MODES`)."""
    if not 0.0 <= p < 1.0:
        raise ValueError(f"layer drop rate must lie in [0, 1), got {p}")
    if mode not in MODES:
        raise ValueError(f"unknown layer drop mode {mode!r}; known: {list(MODES)}")


def layer_plan(sizes: dict[str, int], p: float, mode: str,
               generator: torch.Generator | None = None) -> dict[str, list[str]]:
    """Per stack (``{stack: number of layers}``), per layer: ``run``, ``skip`` or ``successor``.

    ``drop``: one uniform draw per layer, skipped when below ``p``. ``replace_pairs``: one draw per
    pair ``(2i, 2i+1)``; a replaced pair is ``[successor, skip]``, an odd last layer ``run``.
    Stacks are drawn in the order of ``sizes``."""
    check_layer_drop(p, mode)
    plan: dict[str, list[str]] = {}
    for stack, n in sizes.items():
        if mode == "drop":
            hits = (torch.rand(n, generator=generator) < p).tolist()
            plan[stack] = [SKIP if h else RUN for h in hits]
        else:
            hits = (torch.rand(n // 2, generator=generator) < p).tolist()
            choice = [RUN] * n
            for i, h in enumerate(hits):
                if h:
                    choice[2 * i], choice[2 * i + 1] = SUCCESSOR, SKIP
            plan[stack] = choice
    return plan


def trunk_plan(trunk: nn.Module) -> dict[str, list[str]] | None:
    """The plan of one forward of ``trunk`` (None when ``trunk.layer_drop`` is 0: nothing dropped)."""
    p = float(getattr(trunk, "layer_drop", 0.0))
    if p == 0.0:
        return None
    mode = trunk.layer_drop_mode
    if mode == "replace_pairs" and getattr(trunk, "successors", None) is None:
        raise ValueError("layer_drop_mode replace_pairs needs the trunk's successor layers "
                         "(cotrain.trunks.layer_drop.attach_successors)")
    return layer_plan({s: len(getattr(trunk, s)) for s in STACKS}, p, mode, trunk.drop_generator)


def planned(trunk: nn.Module, plan: dict[str, list[str]] | None, stack: str) -> list[nn.Module | None]:
    """The modules ``stack`` runs in this forward, one per position: the layer, its pair's
    successor, or None (identity)."""
    layers = list(getattr(trunk, stack))
    if plan is None:
        return layers
    out: list[nn.Module | None] = []
    for i, (layer, choice) in enumerate(zip(layers, plan[stack])):
        out.append(layer if choice == RUN else None if choice == SKIP else trunk.successors[stack][i // 2])
    return out


def attach_successors(trunk: nn.Module) -> nn.ModuleDict:
    """Give ``trunk`` (the key network's) its successor layers: per stack, a copy of layer ``2i`` for
    each full pair ``(2i, 2i+1)``; kept as ``trunk.successors`` and returned."""
    missing = [s for s in STACKS if not hasattr(trunk, s)]
    if missing:
        raise ValueError(f"{type(trunk).__name__} has no layer stacks {missing}; layer drop needs the co-attention trunk")
    trunk.successors = nn.ModuleDict({
        s: nn.ModuleList([copy.deepcopy(getattr(trunk, s)[2 * i]) for i in range(len(getattr(trunk, s)) // 2)])
        for s in STACKS
    })
    return trunk.successors


def successor_pairs(key_trunk: nn.Module, query_trunk: nn.Module) -> Iterator[tuple[nn.Module, nn.Module]]:
    """``(successor i of a stack in key_trunk, layer 2i of that stack in query_trunk)`` for every
    successor: what each successor's EMA follows."""
    succ = getattr(key_trunk, "successors", None)
    if succ is None:
        return
    for stack, layers in succ.items():
        for i, layer in enumerate(layers):
            yield layer, getattr(query_trunk, stack)[2 * i]


def set_layer_drop(trunk: nn.Module, p: float, mode: str = "drop", generator: torch.Generator | None = None) -> None:
    """Switch on layer drop at rate ``p`` in ``mode`` (``replace_pairs`` attaches successors when
    the trunk has none yet); a ValueError when the trunk cannot drop layers."""
    check_layer_drop(p, mode)
    if not hasattr(trunk, "layer_drop"):
        raise ValueError(f"{type(trunk).__name__} has no layer drop; only the co-attention trunk has one")
    if mode == "replace_pairs" and getattr(trunk, "successors", None) is None:
        attach_successors(trunk)
    trunk.layer_drop, trunk.layer_drop_mode, trunk.drop_generator = float(p), mode, generator


__all__ = ["MODES", "RUN", "SKIP", "STACKS", "SUCCESSOR", "attach_successors", "check_layer_drop", "layer_plan",
           "planned", "set_layer_drop", "successor_pairs", "trunk_plan"]
