"""The Python API: load a checkpoint, predict for any of its tasks — one inference path for every task
family, whose input loaders are the data layer's (:mod:`cotrain.data.inputs`).

>>> import cotrain
>>> model = cotrain.load("runs/demo")                      # a run folder or a checkpoint folder
>>> model.predict("shapes", ["cat.png", "dog.png"])        # files, or arrays in the batch layout
[{'label': 'circle', 'score': 0.93, 'scores': {...}}, ...]
>>> vl = cotrain.load("runs/vl12")
>>> vl.predict("vqa", {"image": "scene.npz", "text": "how many circles are there?"})
>>> vl.predict("nlvr", {"images": ["left.npz", "right.npz"], "text": "both images have a star"})
>>> vl.predict("coco-ir", {"images": ["a.npz", "b.npz", "c.npz"], "text": "a red square"})  # ranks them

An example is one input (a file path, a sentence, an array in the example layout) for a task that
reads one input, or a dict keyed by the task's input kinds (``image``, ``video``, ``audio``,
``text``, ``regions``); ``image`` also names a task's region input (a ``.npz`` region file), and
``images`` a list of them (NLVR2's two images; the candidates a retrieval task ranks). A list of
examples runs in batches.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch

from .config import ExperimentConfig
from .data.inputs import EXAMPLE_LAYOUT, load_input
from .encoders import entry
from .errors import InputError
from .heads import head_class
from .model import Model, build_model
from .tasks import TaskSpec, spec_from_dict
from .train.checkpoint import load_checkpoint
from .train.trainer import config_from_state


class Predictor:
    """A trained model with everything needed to turn raw inputs into predictions."""

    def __init__(self, model: Model, cfg: ExperimentConfig, class_names: dict[str, list[str]], tokenizer=None,
                 checkpoint: Path | None = None, device: str = "cpu") -> None:
        self.model = model.eval()
        self.cfg = cfg
        self.class_names = class_names
        self.tokenizer = tokenizer
        self.checkpoint = checkpoint
        self.device = torch.device(device)

    @property
    def tasks(self) -> list[str]:
        return list(self.model.tasks)

    @property
    def specs(self) -> dict[str, TaskSpec]:
        return dict(self.model.tasks)

    def spec(self, task: str) -> TaskSpec:
        if task not in self.model.tasks:
            raise InputError(f"unknown task {task!r}; this model knows {self.tasks}")
        return self.model.tasks[task]

    # ------------------------------------------------------------------ inputs
    def _example(self, spec: TaskSpec, ex: Any, views: int) -> dict[str, np.ndarray]:
        """One example → its arrays (a view axis first where ``views`` > 1)."""
        if not isinstance(ex, dict):
            if len(spec.inputs) != 1:
                raise InputError(f"task {spec.name!r} reads {list(spec.inputs)}: give a dict per example, e.g. "
                                 + "{" + ", ".join(f"'{k}': ..." for k in spec.inputs) + "}")
            ex = {spec.inputs[0]: ex}
        visual = [k for k in spec.inputs if k != "text"]
        ex = dict(ex)
        for alias in ("image", "images"):  # "image(s)" name a region input too (a .npz file)
            if alias in ex and alias.rstrip("s") not in spec.inputs and len(visual) == 1:
                ex[visual[0] + ("s" if alias == "images" else "")] = ex.pop(alias)
        out: dict[str, np.ndarray] = {}
        for kind in spec.inputs:
            many = ex.get(kind + "s")
            if many is not None and kind != "text":
                values = list(many)
            elif kind in ex:
                values = [ex[kind]]
            else:
                raise InputError(f"task {spec.name!r} reads {list(spec.inputs)}; the example has {sorted(ex)}")
            want = max(views, 1)
            if kind != "text" and len(values) != want:
                what = f"exactly {want} images per example" if want > 1 else "one image per example"
                raise InputError(f"task {spec.name!r} takes {what}; got {len(values)}")
            loaded = [load_input(kind, v, self.cfg.model, self.tokenizer, spec.name) for v in values]
            for key in loaded[0]:  # the images of a view axis stacked: [K, ...]
                out[key] = np.stack([x[key] for x in loaded]) if views > 1 and kind != "text" else loaded[0][key]
        return out

    def prepare(self, task: str, inputs: Any) -> dict[str, torch.Tensor]:
        """Inputs → a batch of tensors: a list of examples (or one example), or — for a task that
        reads one input — an array / tensor already in the batch layout."""
        spec = self.spec(task)
        views = head_class(spec.head_kind).views
        if isinstance(inputs, (np.ndarray, torch.Tensor)) and len(spec.inputs) == 1:
            kind = spec.inputs[0]
            x = torch.as_tensor(inputs)
            ndim = entry(kind).example_ndim
            if x.ndim == ndim:
                x = x.unsqueeze(0)
            if x.ndim != ndim + 1 or kind == "regions":
                raise InputError(f"task {task!r} reads {kind} shaped like {entry(kind).layout}; "
                                 f"got a tensor of shape {tuple(x.shape)}")
            return {kind: x.to(self.device)}
        examples = [inputs] if isinstance(inputs, (dict, str, Path)) else list(inputs)
        if not examples:
            raise InputError(f"task {task!r}: no inputs given")
        rows = [self._example(spec, ex, views) for ex in examples]
        return {k: torch.from_numpy(np.stack([r[k] for r in rows])).to(self.device) for k in rows[0]}

    # ------------------------------------------------------------------ outputs
    @torch.inference_mode()
    def logits(self, task: str, inputs: Any) -> torch.Tensor | dict[str, torch.Tensor]:
        """Raw head outputs (``[B, C]`` for class heads; a dict of tensors for detection)."""
        return to_cpu(self.model(self.prepare(task, inputs), task))

    @torch.inference_mode()
    def features(self, task: str, inputs: Any) -> torch.Tensor:
        """Pooled trunk representation ``[B, D]``."""
        return self.model.features(self.prepare(task, inputs), task).float().cpu()

    def predict(self, task: str, inputs: Any, top_k: int = 5, batch_size: int = 64) -> list[dict]:
        """One dict per example, as the task's head formats it: ``label`` / ``score`` / ``scores`` (the
        ``top_k`` classes) for class heads, ``region`` / ``box`` / ``score`` / ``scores`` for referring
        expressions, ``ranking`` / ``scores`` for retrieval. A list runs ``batch_size`` examples per pass."""
        spec = self.spec(task)
        if batch_size < 1:
            raise InputError(f"batch_size must be at least 1, got {batch_size}")
        head = self.model.heads[spec.head]
        if head.ranks:
            examples = [inputs] if isinstance(inputs, dict) else list(inputs)
            return [self._rank(spec, head, ex) for ex in examples]
        if isinstance(inputs, (np.ndarray, torch.Tensor, dict, str, Path)):
            chunks = [inputs]
        else:
            items = list(inputs)
            chunks = [items[i : i + batch_size] for i in range(0, len(items), batch_size)]
        out: list[dict] = []
        for chunk in chunks:
            batch = self.prepare(task, chunk)
            with torch.inference_mode():
                probs = to_cpu(head.predict(self.model(batch, task)))
            out.extend(head.results(probs, batch, self.class_names.get(task, []), top_k))
        return out

    @torch.inference_mode()
    def _rank(self, spec: TaskSpec, head, ex: Any) -> dict:
        """A caption against its candidate images (``{"images": [...], "text": caption}``)."""
        if not isinstance(ex, dict) or "text" not in ex:
            raise InputError(f"task {spec.name!r} ranks images for a caption: give {{'images': [...], 'text': ...}}")
        other = next(k for k in spec.inputs if k != "text")
        cands = ex.get("images", ex.get(other + "s", [ex.get("image", ex.get(other))]))
        if not cands or any(c is None for c in cands):
            raise InputError(f"task {spec.name!r} needs the candidate images ('images')")
        text = self.prepare_one(spec, "text", ex["text"])
        loaded = [load_input(other, c, self.cfg.model, self.tokenizer, spec.name) for c in cands]
        visual = {k: torch.from_numpy(np.stack([x[k] for x in loaded])).to(self.device) for k in loaded[0]}
        scores = self.model.score_pairs(text, visual, spec.name)
        return head.results(scores, visual, [], 0)[0]

    def prepare_one(self, spec: TaskSpec, kind: str, value: Any) -> dict[str, torch.Tensor]:
        arrays = load_input(kind, value, self.cfg.model, self.tokenizer, spec.name)
        return {k: torch.from_numpy(v[None]).to(self.device) for k, v in arrays.items()}


def to_cpu(x):
    """A head's output (a tensor, or a dict of tensors for detection) as float32 on the CPU."""
    if isinstance(x, dict):
        return {k: v.float().cpu() for k, v in x.items()}
    return x.float().cpu()


def load(path: str | Path, device: str = "cpu") -> Predictor:
    """Load a checkpoint (a checkpoint folder, its ``checkpoints`` folder, or the run folder)."""
    ck = load_checkpoint(path)
    state = ck["state"]
    cfg = config_from_state(state)
    specs = [spec_from_dict(s) for s in state["tasks"]]
    tokenizer = None
    vocab = ck["dir"] / "vocab.txt"
    if vocab.is_file():
        from .data.tokenizer import build_tokenizer

        tokenizer = build_tokenizer(cfg.model.encoders.text.model_copy(update={"vocab": str(vocab)}))
    model = build_model(cfg.model, specs, vocab_size=getattr(tokenizer, "vocab_size", None))
    from .train.checkpoint_match import load_model_weights

    load_model_weights(model, ck["model"], ck["dir"] / "model.safetensors")
    model.to(device)
    return Predictor(model, cfg, state["class_names"], tokenizer, ck["dir"], device)


def predict_many(predictor: Predictor, task: str, inputs: Sequence[Any], batch_size: int = 64) -> list[dict]:
    """``predictor.predict(task, inputs, batch_size=batch_size)`` (kept for older callers)."""
    return predictor.predict(task, list(inputs), batch_size=batch_size)


__all__ = ["EXAMPLE_LAYOUT", "Predictor", "load", "predict_many"]
