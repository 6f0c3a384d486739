"""The one typed experiment schema: YAML in, clear errors out.

Every section is a pydantic model with ``extra="forbid"``, so an unknown key or a value of the
wrong type raises :class:`ConfigError` naming the file and the dotted key (``tasks[shapes].batch_size``).
Command-line overrides (``key.sub=value``) are applied to the raw mapping before validation, so they
are checked by the same schema.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from .errors import CotrainError

MODALITIES = ("image", "video", "audio", "text")


class ConfigError(CotrainError, ValueError):
    """A configuration problem, with the file and key it concerns in the message."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True)


# --------------------------------------------------------------------------------------- data
class SourceConfig(_Strict):
    """Where a task's examples come from.

    ``world``: a procedural task (``name`` = shapes, count, digits, motion, moving-digits, sounds,
    spoken-digits), generated once per ``seed`` and cached. Folder kinds read real data: one
    sub-folder per class, optionally under ``train/``, ``val/``, ``test/`` split folders; without
    split folders the examples are split by ``val_fraction`` / ``test_fraction`` (seeded).
    """

    kind: Literal[
        "world", "image_folder", "audio_folder", "video_folder", "text_tsv",
        "vqa_v2", "gqa", "vg_qa", "coco_captions", "flickr30k", "refcoco", "visual7w", "guesswhat", "nlvr2", "snli_ve",
    ] = "world"
    name: str | None = None
    path: str | None = None
    # real vision-and-language formats (see docs/vision-language.md): annotation files per split
    # and role, e.g. {train: {questions: q.json, annotations: a.json}}; `all` holds files shared by
    # every split (RefCOCO's refs + instances, Karpathy JSON)
    files: dict[str, dict[str, str]] = {}
    regions: str | None = None  # a folder of <image_id>.npz or a bottom-up-attention .tsv
    images: str | None = None  # a folder of images (the pixel alternative)
    missing: Literal["fail", "skip"] = "fail"  # a record whose image / region file is missing
    answer_min_count: int = Field(1, ge=1)  # VQA answer vocabulary: answers seen at least this often
    answer_top_k: int | None = Field(None, ge=1)  # ... and at most this many
    n_train: int = Field(2000, ge=1)
    n_val: int = Field(300, ge=1)
    n_test: int = Field(300, ge=1)
    val_fraction: float = Field(0.1, ge=0.0, lt=1.0, description="share carved from train into val when there is no val folder / file (folder kinds: per class; real V&L kinds: of the train images, all rows of an image together); a V&L source with a val file rejects a value other than 0.1")
    test_fraction: float = Field(0.1, ge=0.0, lt=1.0, description="as val_fraction, for the test split")
    seed: int | None = None  # None: the experiment's data.seed

    @model_validator(mode="after")
    def _check(self) -> "SourceConfig":
        if self.kind == "world" and not self.name:
            raise ValueError("a world source needs `name` (e.g. shapes, count, sounds)")
        if self.kind in FOLDER_KINDS and not self.path:
            raise ValueError(f"a {self.kind} source needs `path`")
        if self.kind in VL_FORMAT_KINDS:
            if not self.files:
                raise ValueError(f"a {self.kind} source needs `files` (annotation files per split)")
            if not (self.regions or self.images):
                raise ValueError(f"a {self.kind} source needs `regions` (features) or `images` (pixels)")
        return self


FOLDER_KINDS = ("image_folder", "audio_folder", "video_folder", "text_tsv")
VL_FORMAT_KINDS = ("vqa_v2", "gqa", "vg_qa", "coco_captions", "flickr30k", "refcoco", "visual7w", "guesswhat", "nlvr2", "snli_ve")


class DataConfig(_Strict):
    root: str | None = None  # cache folder for generated data; None: $COTRAIN_DATA or ~/.cache/cotrain
    seed: int = 0
    # 12-in-1's clean multi-task split: drop from every task's train / val each row whose image is
    # in any task's test split (tasks with image ids only; see `cotrain data clean`)
    clean: bool = False


# --------------------------------------------------------------------------------------- tasks
class TaskConfig(_Strict):
    """One row of the task table."""

    name: str
    source: SourceConfig
    modality: Literal["image", "video", "audio", "text", "vl"] | None = None  # None: the source's; else must match it
    head: str | None = None  # a key of model.heads (tasks naming the same key share one head); None: own head
    group: str | None = None
    batch_size: int = Field(32, ge=1)
    eval_batch_size: int | None = Field(None, ge=1)
    lr_mult: float = Field(1.0, gt=0.0)
    loss_weight: float = Field(1.0, ge=0.0)
    weight: float | None = Field(None, gt=0.0)  # explicit sampling weight (weighted schedule)
    steps: int | None = Field(None, ge=1)  # step budget (task-by-task schedule)
    eval_every: int | None = Field(None, ge=1)  # validation interval for this task (None: run.eval_every)
    # None: the head's own metric (top1; vqa for VQA heads, recall for retrieval, refexp for refexp)
    metric: Literal["top1", "mAP", "vqa", "recall", "refexp"] | None = None

    @property
    def head_key(self) -> str:
        return self.head or self.name


# --------------------------------------------------------------------------------------- model
class ImageEncoderConfig(_Strict):
    """``stem``: ``patch`` embeds each patch with one linear map (ViT); ``conv`` runs stride-2 3x3
    convolutions of ``stem_widths`` channels first ("early convolutions"), which learn far faster
    on small data. ``pixel_norm``: ``fixed`` maps [0, 255] to [-1, 1]; ``per_example`` standardises
    each image by its own mean and std."""

    image_size: int = Field(32, ge=4)
    patch_size: int = Field(8, ge=1)
    channels: int = 3
    stem: Literal["patch", "conv"] = "patch"
    stem_widths: tuple[int, ...] = (32, 64)
    pixel_norm: Literal["fixed", "per_example"] = "fixed"


class VideoEncoderConfig(_Strict):
    """``stem`` / ``stem_widths`` / ``pixel_norm`` as for images; the conv stem works per frame and
    the last layer embeds ``tubelet[0]`` frames together."""

    frames: int = Field(4, ge=1)
    image_size: int = Field(32, ge=4)
    tubelet: tuple[int, int, int] = (2, 8, 8)  # (time, height, width)
    channels: int = 3
    stem: Literal["patch", "conv"] = "patch"
    stem_widths: tuple[int, ...] = (32, 64)
    pixel_norm: Literal["fixed", "per_example"] = "fixed"


class AudioEncoderConfig(_Strict):
    sample_rate: int = Field(8000, ge=1000)
    seconds: float = Field(1.0, gt=0.0)
    n_fft: int = 256
    hop_length: int = 128
    n_mels: int = 64
    patch: tuple[int, int] = (16, 16)  # (mel, time)


class TextEncoderConfig(_Strict):
    max_len: int = Field(32, ge=2)
    vocab: str | None = None  # a vocab.txt or a local Hugging Face checkpoint folder; None: built from data
    vocab_size: int = Field(2000, ge=8)  # when the vocabulary is built from data
    lowercase: bool = True


class RegionEncoderConfig(_Strict):
    """Region proposals (bottom-up-style features + boxes) → tokens, with an ``IMG`` token first."""

    feature_dim: int | None = Field(None, ge=1)  # None: taken from the data (TaskData.meta["region_dim"])
    max_regions: int = Field(36, ge=1)


class EncodersConfig(_Strict):
    image: ImageEncoderConfig = ImageEncoderConfig()
    video: VideoEncoderConfig = VideoEncoderConfig()
    audio: AudioEncoderConfig = AudioEncoderConfig()
    text: TextEncoderConfig = TextEncoderConfig()
    regions: RegionEncoderConfig = RegionEncoderConfig()


class VLConfig(_Strict):
    """Vision-and-language trunk settings (``model.trunk: coattention`` or ``single_stream``).

    ``coattention`` (ViLBERT): the text stream runs ``t_layers - v_layers`` text-only layers, then
    ``v_layers`` rounds of (visual layer, text layer, co-attention layer); the paper uses 6 / 12.
    ``single_stream``: ``t_layers`` shared layers over the concatenated streams.
    ``task_tokens``: one learned token per task (``dataset``), per head key (``head``) or none.
    ``visual``: region proposals or pixel patches (the image encoder) as the visual stream.
    """

    v_layers: int = Field(2, ge=1)
    t_layers: int = Field(4, ge=1)
    task_tokens: Literal["dataset", "head", "none"] = "dataset"
    visual: Literal["regions", "pixels"] = "regions"

    @model_validator(mode="after")
    def _check(self) -> "VLConfig":
        if self.t_layers < self.v_layers:
            raise ValueError(f"t_layers ({self.t_layers}) must be at least v_layers ({self.v_layers})")
        return self


class HeadConfig(_Strict):
    """A head. ``classify``: softmax over classes; ``multilabel``: sigmoid per class (BCE)."""

    type: Literal["classify", "multilabel", "vqa", "retrieval", "refexp", "nlvr", "snli-ve"] = "classify"
    mlp: bool = False  # False: linear; True: Linear-GELU-Linear
    hidden: int | None = None  # MLP width (default: model dim)
    pool: Literal["cls", "mean"] = "cls"
    num_classes: int | None = None  # None: taken from the data of the tasks that use it
    dropout: float = Field(0.0, ge=0.0, lt=1.0)


class ModelConfig(_Strict):
    trunk: Literal["shared", "coattention", "single_stream"] = "shared"
    dim: int = Field(128, ge=8)
    depth: int = Field(2, ge=1)
    num_heads: int = Field(4, ge=1)
    mlp_ratio: float = Field(4.0, gt=0.0)
    dropout: float = Field(0.0, ge=0.0, lt=1.0)
    drop_path: float = Field(0.0, ge=0.0, lt=1.0)
    l_adapt: int = Field(0, ge=0)  # modality-specific first layers replacing shared ones (PolyViT)
    encoders: EncodersConfig = EncodersConfig()
    heads: dict[str, HeadConfig] = {}
    vl: VLConfig = VLConfig()

    @model_validator(mode="after")
    def _check(self) -> "ModelConfig":
        if self.dim % self.num_heads:
            raise ValueError(f"dim ({self.dim}) must be divisible by num_heads ({self.num_heads})")
        if self.l_adapt > self.depth:
            raise ValueError(f"l_adapt ({self.l_adapt}) cannot exceed depth ({self.depth})")
        return self


# --------------------------------------------------------------------------------------- training
class DSGConfig(_Strict):
    """12-in-1's Dynamic Stop-and-Go (see :mod:`cotrain.train.dsg`): a task whose validation metric
    improves < ``converge_tol`` over ``converge_epochs`` task epochs is stopped and then trains
    only every ``delta``-th iteration offered to it, until it drops ``diverge_tol`` below its best."""

    enabled: bool = False
    delta: int = Field(4, ge=1)
    converge_tol: float = Field(0.001, ge=0.0)
    converge_epochs: int = Field(2, ge=1)
    diverge_tol: float = Field(0.005, ge=0.0)
    relative: bool = True
    lr_drop: Literal["reset", "keep"] = "reset"


class CurriculumConfig(_Strict):
    """A pre-phase before the main schedule: ``curriculum`` trains the fastest-converging group
    first, ``anti_curriculum`` the slowest (12-in-1 Table 6), for ``steps`` round-robin steps."""

    kind: Literal["none", "curriculum", "anti_curriculum"] = "none"
    first_group: str | None = None  # the task group trained first (tasks' `group`)
    steps: int = Field(0, ge=0)

    @model_validator(mode="after")
    def _check(self) -> "CurriculumConfig":
        if self.kind != "none" and (not self.first_group or self.steps < 1):
            raise ValueError(f"schedule.curriculum.kind {self.kind!r} needs first_group and steps >= 1")
        return self


class ScheduleConfig(_Strict):
    """Which task's batch comes at each step (PolyViT's five schedules; ``alternating`` is
    12-in-1's round-robin), plus the Dynamic Stop-and-Go and curriculum controllers."""

    kind: Literal["task_by_task", "alternating", "uniform", "weighted", "accumulate"] = "uniform"
    weighting: Literal["explicit", "size", "temperature"] = "size"  # for `weighted`
    temperature: float = Field(2.0, gt=0.0)  # p_i ∝ n_i^(1/T) for weighting=temperature
    dsg: DSGConfig = DSGConfig()
    curriculum: CurriculumConfig = CurriculumConfig()


class OptimConfig(_Strict):
    lr: float = Field(1e-3, gt=0.0)
    weight_decay: float = Field(0.05, ge=0.0)
    betas: tuple[float, float] = (0.9, 0.999)
    grad_clip: float | None = Field(1.0, gt=0.0)
    warmup_steps: int = Field(100, ge=0)
    # 12-in-1: warm up over eta * N steps, N = the largest single-task run (max task `steps`, or
    # run.steps / number of tasks where a task sets none); overrides warmup_steps when set
    warmup_eta: float | None = Field(None, ge=0.0)
    decay: Literal["cosine", "linear", "constant", "step"] = "cosine"
    lr_drops: list[int] = []  # decay "step": global steps at which the LR is multiplied by lr_drop_factor
    lr_drop_factor: float = Field(0.1, gt=0.0, le=1.0)
    min_lr_ratio: float = Field(0.0, ge=0.0, le=1.0)
    task_lr_mode: Literal["lr", "loss_scale"] = "lr"  # per-task lr_mult as LR, or 12-in-1 loss scaling


class RunConfig(_Strict):
    steps: int = Field(1000, ge=1)
    seed: int = 0
    out_dir: str = "runs/default"
    eval_every: int = Field(500, ge=1)
    eval_max_batches: int | None = Field(None, ge=1)
    log_every: int = Field(50, ge=1)
    checkpoint_every: int = Field(500, ge=1)
    keep_checkpoints: int = Field(2, ge=1)
    device: str = "cpu"
    progress: bool = True
    tensorboard: bool = True
    threads: int | None = Field(None, ge=1)
    vqa_version: Literal["official", "legacy", "always_normalise"] = "official"  # when answers are normalised
    refexp_iou: Literal["standard", "12in1", "giou"] = "standard"  # IoU >= .5 / +1 px, > .5 / GIoU


class ExperimentConfig(_Strict):
    name: str = "experiment"
    data: DataConfig = DataConfig()
    tasks: list[TaskConfig]
    model: ModelConfig = ModelConfig()
    schedule: ScheduleConfig = ScheduleConfig()
    optim: OptimConfig = OptimConfig()
    run: RunConfig = RunConfig()

    @model_validator(mode="after")
    def _check(self) -> "ExperimentConfig":
        if not self.tasks:
            raise ValueError("at least one task is needed")
        names = [t.name for t in self.tasks]
        dup = sorted({n for n in names if names.count(n) > 1})
        if dup:
            raise ValueError(f"task names must be unique; repeated: {dup}")
        declared = set(self.model.heads)
        for t in self.tasks:
            if t.head is not None and t.head not in declared:
                raise ValueError(
                    f"task {t.name!r} uses head {t.head!r}, which model.heads does not declare "
                    f"(declared: {sorted(declared)}); declare it, or drop `head` to give the task its own"
                )
        cur = self.schedule.curriculum
        groups = sorted({t.group for t in self.tasks if t.group})
        if cur.kind != "none" and groups and cur.first_group not in groups:  # (world V&L tasks carry their own)
            raise ValueError(f"schedule.curriculum.first_group {cur.first_group!r} is no task's group (groups: {groups})")
        used = {t.head_key for t in self.tasks}
        unused = sorted(declared - used)
        if unused:
            raise ValueError(f"model.heads declares {unused}, which no task uses (a task's head key is `head` or its name)")
        return self

    def task(self, name: str) -> TaskConfig:
        for t in self.tasks:
            if t.name == name:
                return t
        raise KeyError(f"no task named {name!r}; tasks: {[t.name for t in self.tasks]}")


# --------------------------------------------------------------------------------------- loading
def _loc_to_key(loc: tuple[Any, ...], raw: dict) -> str:
    """('tasks', 0, 'batch_size') -> 'tasks[shapes].batch_size' (task name when known)."""
    parts: list[str] = []
    node: Any = raw
    for item in loc:
        if isinstance(item, int):
            label = str(item)
            if isinstance(node, list) and item < len(node) and isinstance(node[item], dict):
                label = str(node[item].get("name", item))
            parts.append(f"[{label}]")
            node = node[item] if isinstance(node, list) and item < len(node) else None
        else:
            parts.append(("." if parts else "") + str(item))
            node = node.get(item) if isinstance(node, dict) else None
    return "".join(parts)


def _format_errors(err: ValidationError, raw: dict, origin: str) -> str:
    lines = [f"invalid config {origin}:"]
    for e in err.errors():
        loc = tuple(x for x in e["loc"] if not (isinstance(x, str) and x.startswith("function-")))
        key = _loc_to_key(loc, raw) or "(top level)"
        msg = "unknown key" if e["type"] == "extra_forbidden" else e["msg"]
        lines.append(f"  {key}: {msg} (got {e.get('input')!r})" if e["type"] != "missing" else f"  {key}: required key missing")
    return "\n".join(lines)


def apply_override(raw: dict, assignment: str) -> None:
    """Apply ``a.b.c=value`` to a raw mapping in place (value parsed as YAML).

    A segment after ``tasks`` may be a task name or a list index: ``tasks.shapes.batch_size=16``.
    """
    if "=" not in assignment:
        raise ConfigError(f"override {assignment!r} is not of the form key.sub=value")
    key, value = assignment.split("=", 1)
    parts = key.strip().split(".")
    node: Any = raw
    for i, part in enumerate(parts[:-1]):
        if isinstance(node, list):
            node = node[_list_index(node, part, key)]
        else:
            if part not in node or node[part] is None:
                node[part] = {}
            node = node[part]
    last = parts[-1]
    parsed = yaml.safe_load(value) if value != "" else None
    if isinstance(node, list):
        node[_list_index(node, last, key)] = parsed
    else:
        node[last] = parsed


def _list_index(node: list, part: str, key: str) -> int:
    if part.isdigit() and int(part) < len(node):
        return int(part)
    for i, item in enumerate(node):
        if isinstance(item, dict) and item.get("name") == part:
            return i
    raise ConfigError(f"override {key!r}: no list entry named or numbered {part!r}")


def config_from_dict(raw: dict, origin: str = "<dict>") -> ExperimentConfig:
    if not isinstance(raw, dict):
        raise ConfigError(f"config {origin} must be a mapping at the top level")
    try:
        return ExperimentConfig.model_validate(raw)
    except ValidationError as err:
        raise ConfigError(_format_errors(err, raw, origin)) from None


def load_raw(path: str | Path) -> dict:
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"config file not found: {path}")
    try:
        raw = yaml.safe_load(path.read_text())
    except yaml.YAMLError as err:
        raise ConfigError(f"config {path} is not valid YAML: {err}") from None
    return raw or {}


def load_config(path: str | Path, overrides: list[str] | tuple[str, ...] = ()) -> ExperimentConfig:
    """Read a YAML experiment file, apply ``key=value`` overrides, validate."""
    raw = load_raw(path)
    for o in overrides:
        apply_override(raw, o)
    return config_from_dict(raw, origin=str(path))


def default_config_path(name: str = "demo") -> Path:
    """An embedded config shipped inside the package (``cotrain/configs/NAME.yaml``)."""
    path = Path(__file__).parent / "configs" / f"{name}.yaml"
    if not path.is_file():
        avail = sorted(p.stem for p in path.parent.glob("*.yaml"))
        raise ConfigError(f"no embedded config {name!r}; available: {avail}")
    return path


def dump_config(cfg: ExperimentConfig) -> str:
    return yaml.safe_dump(cfg.model_dump(mode="json"), sort_keys=False)
