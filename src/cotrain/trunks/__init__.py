"""Trunks: the transformer(s) between modality encoders and heads."""

from cotrain.trunks.layers import Attention, Block, DropPath, Mlp
from cotrain.trunks.shared import SharedTrunk

__all__ = ["Attention", "Block", "DropPath", "Mlp", "SharedTrunk"]
