"""Text encoder: token embeddings (0 = padding) with a learned positional embedding and a class token."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from cotrain.config import TextEncoderConfig
from cotrain.encoders.common import TokenEncoder, trunc_normal_


class TextEncoder(TokenEncoder):
    """``ids`` int64 ``[B, L]`` (0 = pad) → ``(tokens [B, 1+L, D], mask [B, 1+L])``.

    ``mask`` is ``ids != 0`` with True prepended for the class token. Positions are learned up to
    ``cfg.max_len``; a shorter sequence uses the first ``1 + L`` positions (no resampling). Trailing
    columns that are padding in every row are dropped first (``L`` = the batch's longest text): the
    sources pad every text to ``max_len``, and padding is masked, so this changes no real token's
    state, only the work.
    """

    def __init__(self, cfg: TextEncoderConfig, dim: int, vocab_size: int, dropout: float = 0.0) -> None:
        super().__init__(dim, (cfg.max_len,), dropout)
        self.max_len = cfg.max_len
        self.vocab_size = vocab_size
        self.embed = nn.Embedding(vocab_size, dim, padding_idx=0)
        trunc_normal_(self.embed.weight)
        with torch.no_grad():
            self.embed.weight[0].zero_()

    first_word_column = 0  # ids column of the first word state: the class token is the encoder's own

    def input_embeddings(self) -> nn.Embedding:
        """The word-embedding table ``[V, D]`` (a pretraining head's MLM decoder is tied to it)."""
        return self.embed

    def pos_embed_for(self, grid: tuple[int, ...]) -> torch.Tensor:
        return self.pos_embed[:, : 1 + grid[0]]

    def forward(self, ids: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        if ids.dim() != 2:
            raise ValueError(f"text input must be token ids [B, L], got {tuple(ids.shape)}")
        if ids.dtype not in (torch.int64, torch.int32):
            raise TypeError(f"text input must be integer token ids, got {ids.dtype}")
        length = ids.shape[1]
        if length > self.max_len:
            raise ValueError(
                f"text of length {length} exceeds max_len {self.max_len} (model.encoders.text.max_len)"
            )
        used = (ids != 0).any(dim=0).nonzero()
        length = int(used.max()) + 1 if len(used) else 1
        ids = ids[:, :length]
        tokens = self.add_cls_and_pos(self.embed(ids), (length,))
        mask = F.pad(ids != 0, (1, 0), value=True)
        return tokens, mask
