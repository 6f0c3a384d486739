"""The Python API: load a checkpoint, predict for any of its tasks.

>>> import cotrain
>>> model = cotrain.load("runs/demo")                      # a run folder or a checkpoint folder
>>> model.predict("shapes", ["cat.png", "dog.png"])        # files, or arrays in the batch layout
[{'label': 'circle', 'score': 0.93, 'scores': {...}}, ...]
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch

from .config import ExperimentConfig
from .errors import InputError
from .model import CotrainModel, TaskSpec, build_model
from .train.checkpoint import load_checkpoint
from .train.checkpoint_match import load_model_weights
from .train.trainer import config_from_state

# rank of one example of each modality in the batch layout (image [3,H,W], video [T,3,H,W], ...)
EXAMPLE_NDIM = {"image": 3, "video": 4, "audio": 1, "text": 1}


class Predictor:
    """A trained model with everything needed to turn raw inputs into predictions."""

    def __init__(
        self,
        model: CotrainModel,
        cfg: ExperimentConfig,
        specs: list[TaskSpec],
        class_names: dict[str, list[str]],
        tokenizer=None,
        checkpoint: Path | None = None,
        device: str = "cpu",
    ) -> None:
        self.model = model.eval()
        self.cfg = cfg
        self.specs = {s.name: s for s in specs}
        self.class_names = class_names
        self.tokenizer = tokenizer
        self.checkpoint = checkpoint
        self.device = torch.device(device)

    @property
    def tasks(self) -> list[str]:
        return list(self.specs)

    def spec(self, task: str) -> TaskSpec:
        if task not in self.specs:
            raise InputError(f"unknown task {task!r}; this model knows {self.tasks}")
        return self.specs[task]

    # ------------------------------------------------------------------ inputs
    def prepare(self, task: str, inputs: Any) -> dict[str, torch.Tensor]:
        """Turn inputs into a batch: arrays/tensors in the batch layout (one example or a batch),
        file paths (image, audio or video files), or strings (text tasks)."""
        modality = self.spec(task).modality
        x = self._to_tensor(modality, inputs, task)
        if x.ndim == EXAMPLE_NDIM[modality]:
            x = x.unsqueeze(0)
        if x.ndim != EXAMPLE_NDIM[modality] + 1:
            raise InputError(
                f"task {task!r} reads {modality} shaped like {self._layout(modality)}; got a tensor of shape {tuple(x.shape)}"
            )
        return {modality: x.to(self.device)}

    @staticmethod
    def _layout(modality: str) -> str:
        return {"image": "[B,3,H,W]", "video": "[B,T,3,H,W]", "audio": "[B,S]", "text": "[B,L] ids"}[modality]

    def _to_tensor(self, modality: str, inputs: Any, task: str | None = None) -> torch.Tensor:
        if isinstance(inputs, torch.Tensor):
            return inputs
        if isinstance(inputs, np.ndarray):
            return torch.from_numpy(inputs)
        items = [inputs] if isinstance(inputs, (str, Path)) else list(inputs)
        if modality == "text":
            if self.tokenizer is None:
                raise InputError("this model has no tokenizer")
            return torch.from_numpy(self.tokenizer.encode([str(s) for s in items], self.cfg.model.encoders.text.max_len))
        if any(not isinstance(p, (str, Path)) for p in items):
            raise InputError(f"{modality} inputs are file paths, or one array / tensor in the batch layout "
                             f"{self._layout(modality)}; got a {type(items[0]).__name__}")
        return torch.from_numpy(np.stack([self.load_file(modality, p, task) for p in items]))

    def load_file(self, modality: str, path: str | Path, task: str | None = None) -> np.ndarray:
        """One image / audio / video file as the data layer decodes it (:mod:`cotrain.data.media`)."""
        from .data.media import read_media

        enc = self.cfg.model.encoders
        params = {
            "image": {"image_size": enc.image.image_size},
            "audio": {"sample_rate": enc.audio.sample_rate, "num_samples": round(enc.audio.seconds * enc.audio.sample_rate)},
            "video": {"frames": enc.video.frames, "image_size": enc.video.image_size},
        }
        if modality not in params:
            raise InputError(f"cannot read {modality} from a file; file inputs: {sorted(params)}")
        return read_media(modality, path, task=task, **params[modality])

    # ------------------------------------------------------------------ outputs
    @torch.inference_mode()
    def logits(self, task: str, inputs: Any) -> torch.Tensor:
        """Raw head outputs ``[B, C]``."""
        return self.model(self.prepare(task, inputs), task).float().cpu()

    @torch.inference_mode()
    def features(self, task: str, inputs: Any) -> torch.Tensor:
        """Pooled trunk representation ``[B, D]``."""
        return self.model.features(self.prepare(task, inputs), task).float().cpu()

    def predict(self, task: str, inputs: Any, top_k: int = 5, batch_size: int = 64) -> list[dict]:
        """One dict per example: ``label`` (best class), ``score`` (its probability) and ``scores``
        (the ``top_k`` classes with probabilities; sigmoid per class for multi-label tasks).

        A list of inputs runs in batches of ``batch_size``. Vision-and-language tasks take example
        dicts (``{"image": ..., "text": ...}``) and answer, rank, point or verify: see
        :func:`cotrain.api_vl.predict_vl`."""
        spec = self.spec(task)
        if batch_size < 1:
            raise InputError(f"batch_size must be at least 1, got {batch_size}")
        if spec.modality == "vl":
            from .api_vl import predict_vl

            return predict_vl(self, task, [inputs] if isinstance(inputs, dict) else list(inputs), top_k, batch_size)
        if isinstance(inputs, (str, Path, np.ndarray, torch.Tensor)):
            return self._predict_batch(task, spec, inputs, top_k)
        items = list(inputs)
        out: list[dict] = []
        for i in range(0, len(items), batch_size):
            out.extend(self._predict_batch(task, spec, items[i : i + batch_size], top_k))
        return out

    def _predict_batch(self, task: str, spec: TaskSpec, inputs: Any, top_k: int) -> list[dict]:
        logits = self.logits(task, inputs)
        probs = torch.sigmoid(logits) if spec.multilabel else torch.softmax(logits, dim=-1)
        names = self.class_names[task]
        k = min(top_k, probs.shape[1])
        out = []
        for row in probs:
            vals, idx = row.topk(k)
            out.append(
                {
                    "label": names[int(idx[0])],
                    "score": float(vals[0]),
                    "scores": {names[int(i)]: round(float(v), 6) for v, i in zip(vals, idx)},
                }
            )
        return out


def load(path: str | Path, device: str = "cpu") -> Predictor:
    """Load a checkpoint (a checkpoint folder, its ``checkpoints`` folder, or the run folder)."""
    ck = load_checkpoint(path)
    state = ck["state"]
    cfg = config_from_state(state)
    specs = [TaskSpec(**s) for s in state["tasks"]]
    tokenizer = None
    vocab = ck["dir"] / "vocab.txt"
    if vocab.is_file():
        from .data.tokenizer import build_tokenizer

        tokenizer = build_tokenizer(cfg.model.encoders.text.model_copy(update={"vocab": str(vocab)}))
    model = build_model(cfg.model, specs, vocab_size=getattr(tokenizer, "vocab_size", None))
    load_model_weights(model, ck["model"], ck["dir"] / "model.safetensors")
    model.to(device)
    return Predictor(model, cfg, specs, state["class_names"], tokenizer, ck["dir"], device)


def predict_many(predictor: Predictor, task: str, inputs: Sequence[Any], batch_size: int = 64) -> list[dict]:
    """``predictor.predict(task, inputs, batch_size=batch_size)`` (kept for older callers)."""
    return predictor.predict(task, list(inputs), batch_size=batch_size)
