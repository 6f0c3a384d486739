"""Rendering parameters shared by the world task generators."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class WorldConfig:
    image_size: int = 32
    frames: int = 4
    sample_rate: int = 8000
    seconds: float = 1.0
    progress: bool = False

    @property
    def num_samples(self) -> int:
        return int(round(self.seconds * self.sample_rate))
