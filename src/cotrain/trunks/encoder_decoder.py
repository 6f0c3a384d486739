"""The encoder–decoder trunk (UniT, Hu & Singh 2021): a transformer encoder per input kind, then a
DETR-style decoder whose per-task learned queries read the task's encoded streams.

    streams {kind: Tokens [B, L_k, D]}
      ─▶ per kind: [TASK_t prepended at position 0] ─▶ encoder_layers[kind] pre-LN Blocks ─▶ LayerNorm
         ─▶ TASK_t stripped                                   (states [B, L_k, D], aligned with the encoder's tokens)
      ─▶ memory = concatenation of the task's encoded streams (+ a type embedding per kind when several) [B, ΣL, D]
      ─▶ decoder of the task (one shared, or one per task) on the task's queries [Q_task, D]
      ─▶ TrunkOutput(states, masks, decoder = [L_dec, B, Q_task, D])

- **Task embedding** (``model.task_tokens: dataset | head``): one table per input kind whose encoder
  has layers; the task's embedding is prepended to the stream (before the stream's own first
  token), attended to by the encoder's layers and dropped from its output. An encoder of 0 layers
  passes its stream through unchanged (a text stream that is already a pretrained BERT's output),
  without task embedding and without LayerNorm.
- **Queries**: per task a learned embedding ``[Q_task, D]`` (``tasks[].queries``, else
  ``model.encoder_decoder.queries``), the queries' positional part as in DETR; their content starts
  at zero (:class:`~cotrain.trunks.decoder.Decoder`).
- ``forward(streams, task_ids, task=None)``: without a task (a probe of a held-out task) there are
  no queries to run: the output has the encoded streams only, ``decoder`` None, so ``joint()`` is
  the product of the streams' first states as on the other trunks.
- Views (NLVR2's image pairs, retrieval training's K candidates) are not supported: the model
  refuses such tasks (``supports_views = False``).
"""

from __future__ import annotations

import torch
from torch import nn

from cotrain.config import ConfigError
from cotrain.errors import InputError
from cotrain.trunks.decoder import Decoder
from cotrain.trunks.layers import Block, key_padding_to_attn_mask
from cotrain.trunks.output import TaskTokens, Tokens, TrunkOutput, TypeEmbeddings, concat_streams


SHARED = "shared"  # the key of the one decoder of every task (``decoders.shared``); per task: ``decoders.<task>``


class StreamEncoder(nn.Module):
    """``depth`` pre-LN :class:`Block` s and a final LayerNorm: ``(x [B, L, D], mask [B, L]) -> [B, L, D]``;
    ``depth`` 0: identity. Layer ``i`` has drop-path rate ``drop_path * i / (depth - 1)``."""

    def __init__(self, dim: int, depth: int, num_heads: int, mlp_ratio: float = 4.0, dropout: float = 0.0,
                 drop_path: float = 0.0) -> None:
        super().__init__()
        if depth < 0:
            raise ValueError(f"encoder depth must be 0 or more, got {depth}")
        self.depth = depth
        rates = [drop_path * i / (depth - 1) if depth > 1 else 0.0 for i in range(depth)]
        self.blocks = nn.ModuleList([Block(dim, num_heads, mlp_ratio, dropout, r) for r in rates])
        self.norm = nn.LayerNorm(dim) if depth else nn.Identity()

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        attn_mask = key_padding_to_attn_mask(mask)
        for blk in self.blocks:
            x = blk(x, attn_mask)
        return self.norm(x)


class EncoderDecoderTrunk(nn.Module):
    """``forward(streams {kind: Tokens}, task_ids [B] or None, task=None) -> TrunkOutput``.

    ``encoder_layers``: encoder depth per input kind the trunk serves; ``task_queries``: query count
    per task name (``queries.<task>``); ``shared_decoder``: one decoder for every task
    (``decoders.shared``) or one per task (``decoders.<task>``); ``type_kinds``: kinds that occur
    in multi-input tasks (a type embedding each, added to the memory); ``num_task_tokens``: task
    embeddings per kind (0: none)."""

    supports_views = False

    def __init__(
        self,
        dim: int,
        num_heads: int,
        encoder_layers: dict[str, int],
        decoder_layers: int,
        task_queries: dict[str, int],
        shared_decoder: bool = True,
        mlp_ratio: float = 4.0,
        dropout: float = 0.0,
        drop_path: float = 0.0,
        type_kinds: tuple[str, ...] | list[str] = (),
        num_task_tokens: int = 0,
    ) -> None:
        super().__init__()
        if not encoder_layers:
            raise ValueError("the encoder-decoder trunk needs at least one input kind")
        if not task_queries:
            raise ValueError("the encoder-decoder trunk needs the query count of every task")
        bad = {t: q for t, q in task_queries.items() if q < 1}
        if bad:
            raise ValueError(f"every task needs at least one query, got {bad}")
        self.dim = dim
        self.kinds = tuple(encoder_layers)
        self.encoders = nn.ModuleDict({
            k: StreamEncoder(dim, n, num_heads, mlp_ratio, dropout, drop_path) for k, n in encoder_layers.items()
        })
        with_layers = [k for k, n in encoder_layers.items() if n > 0]
        self.task_tokens = (nn.ModuleDict({k: TaskTokens(num_task_tokens, dim) for k in with_layers})
                            if num_task_tokens > 0 else None)
        self.types = TypeEmbeddings(type_kinds, dim) if type_kinds else None
        self.task_names = tuple(task_queries)
        self.shared_decoder = shared_decoder

        def decoder() -> Decoder:
            return Decoder(dim, decoder_layers, num_heads, mlp_ratio, dropout, drop_path)

        # keyed by task name, so a checkpoint's weights go to the same task in any task table (fine-tuning)
        self.queries = nn.ParameterDict()
        self.decoders = nn.ModuleDict({SHARED: decoder()} if shared_decoder else {})
        for task, q in task_queries.items():
            try:
                self.queries[task] = nn.Parameter(torch.randn(q, dim))
                if not shared_decoder:
                    self.decoders[task] = decoder()
            except KeyError as err:  # "", "a.b", or a name like "update"
                raise ConfigError(f"task name {task!r} cannot name the encoder-decoder trunk's queries: {err}") from None

    # ------------------------------------------------------------------ lookup
    def _check_task(self, task: str) -> None:
        if task not in self.task_names:
            raise InputError(f"the encoder-decoder trunk has no queries for task {task!r}; tasks: {list(self.task_names)}")

    def query_embedding(self, task: str) -> nn.Parameter:
        """The learned queries of ``task``: ``[Q_task, D]``."""
        self._check_task(task)
        return self.queries[task]

    def num_queries(self, task: str) -> int:
        return self.query_embedding(task).shape[0]

    def decoder_of(self, task: str) -> Decoder:
        """The decoder ``task`` runs: the shared one, or its own."""
        self._check_task(task)
        return self.decoders[SHARED if self.shared_decoder else task]

    # ------------------------------------------------------------------ running
    def encode(self, streams: dict[str, Tokens], task_ids: torch.Tensor | None = None) -> dict[str, Tokens]:
        """Each stream through its kind's encoder (with the task embedding prepended and stripped
        again when ``task_ids`` are given): ``{kind: Tokens [B, L_k, D]}``, in the input order."""
        if not streams:
            raise ValueError("the trunk needs at least one stream")
        if task_ids is not None and self.task_tokens is None:
            raise ValueError("task_ids were given but the trunk has no task embeddings (model.task_tokens: none)")
        out = {}
        for kind, s in streams.items():
            if kind not in self.encoders:
                raise ValueError(f"the trunk has no encoder for input {kind!r}; it serves {list(self.kinds)}")
            table = self.task_tokens[kind] if task_ids is not None and kind in self.task_tokens else None
            if table is not None:
                s = table.insert(s, task_ids, at=0)
            x = self.encoders[kind](s.x, s.mask)
            if table is not None:
                out[kind] = Tokens(x[:, 1:], s.mask[:, 1:])
            else:
                out[kind] = Tokens(x, s.mask)
        return out

    def forward(self, streams: dict[str, Tokens], task_ids: torch.Tensor | None = None,
                task: str | None = None) -> TrunkOutput:
        encoded = self.encode(streams, task_ids)
        states = {k: s.x for k, s in encoded.items()}
        masks = {k: s.mask for k, s in encoded.items()}
        if task is None:
            return TrunkOutput(states, masks)
        memory, memory_mask, _ = concat_streams(encoded, self.types)
        pos = self.query_embedding(task).to(memory.dtype)
        pos = pos.unsqueeze(0).expand(memory.shape[0], -1, -1)
        return TrunkOutput(states, masks, decoder=self.decoder_of(task)(pos, memory, memory_mask))


__all__ = ["EncoderDecoderTrunk", "StreamEncoder"]
