"""Vision-and-language inference: answer a question, rank images for a caption, point at the
referred region, verify a statement (used by :meth:`cotrain.api.Predictor.predict`).

An **image** is given as one of:

- a region file ``.npz`` (``features`` [R, F], ``boxes`` [R, 4] in pixels, ``image_w``, ``image_h``:
  the layout of :class:`cotrain.data.formats.vl.regions.NpzRegionStore`) for region models;
- a picture file (png / jpg) for pixel models (``model.vl.visual: pixels``);
- a dict of arrays: ``regions`` [R, F] + ``boxes`` [R, 4] normalised (+ ``region_mask``), or
  ``image`` uint8 [3, H, W].

An **example** is a dict: ``{"image": IMAGE, "text": str}`` (vqa, refexp, snli-ve),
``{"images": [IMAGE, IMAGE], "text": str}`` (nlvr: left, right), ``{"images": [IMAGE, ...],
"text": caption}`` (retrieval: the images to rank).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch

PICTURE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp")


def load_image_input(image: Any, visual: str, max_regions: int, image_size: int) -> dict[str, np.ndarray]:
    """One image → arrays of one example (``regions``/``boxes``/``region_mask`` or ``image``)."""
    if isinstance(image, dict):
        if visual == "regions":
            feats = np.asarray(image["regions"], dtype=np.float32)
            boxes = np.asarray(image["boxes"], dtype=np.float32)
            mask = np.asarray(image.get("region_mask", np.ones(len(feats), dtype=bool)), dtype=bool)
            return _pad(feats, boxes, mask, max_regions)
        return {"image": np.asarray(image["image"], dtype=np.uint8)}
    path = Path(image).expanduser()
    if not path.is_file():
        raise FileNotFoundError(f"image input not found: {path}")
    if path.suffix.lower() == ".npz":
        if visual != "regions":
            raise ValueError(f"{path}: a region file needs a region model; this model reads pixels")
        from .data.formats.vl.regions import read_npz_regions

        r = read_npz_regions(path)
        return _pad(r.features, r.boxes, np.ones(len(r.features), dtype=bool), max_regions)
    if path.suffix.lower() in PICTURE_SUFFIXES:
        if visual != "pixels":
            raise ValueError(f"{path}: a region model needs region features (.npz), not a picture")
        from PIL import Image

        with Image.open(path) as im:
            arr = np.asarray(im.convert("RGB").resize((image_size, image_size), Image.BILINEAR))
        return {"image": arr.transpose(2, 0, 1).copy()}
    raise ValueError(f"{path}: unsupported image input; give a .npz region file or a picture")


def _pad(feats: np.ndarray, boxes: np.ndarray, mask: np.ndarray, r: int) -> dict[str, np.ndarray]:
    if feats.ndim != 2 or boxes.shape != (len(feats), 4):
        raise ValueError(f"regions must be [R, F] with boxes [R, 4]; got {feats.shape} and {boxes.shape}")
    n = min(len(feats), r)
    out_f = np.zeros((r, feats.shape[1]), np.float32)
    out_b = np.zeros((r, 4), np.float32)
    out_m = np.zeros(r, bool)
    out_f[:n], out_b[:n], out_m[:n] = feats[:n], boxes[:n], mask[:n]
    return {"regions": out_f, "boxes": out_b, "region_mask": out_m}


def _batch(rows: list[dict[str, np.ndarray]], device) -> dict[str, torch.Tensor]:
    return {k: torch.from_numpy(np.stack([r[k] for r in rows])).to(device) for k in rows[0]}


def predict_vl(predictor, task: str, examples: list[dict], top_k: int = 5) -> list[dict]:
    """One result dict per example (see the module docstring for the inputs):

    - vqa: ``label`` (answer), ``score``, ``scores`` (top-k answers);
    - nlvr / snli-ve: ``label``, ``score``, ``scores`` (every class);
    - refexp: ``region`` (index), ``box`` (normalised x0, y0, x1, y1), ``score``, ``scores`` (per region);
    - retrieval: ``ranking`` (image indices, best first) and ``scores`` (per image, input order).
    """
    spec = predictor.spec(task)
    cfg = predictor.cfg.model
    visual, r_max, size = cfg.vl.visual, cfg.encoders.regions.max_regions, cfg.encoders.image.image_size
    if predictor.tokenizer is None:
        raise ValueError("this checkpoint has no vocabulary (vocab.txt); it cannot read text")
    model, dev = predictor.model, predictor.device
    out = []
    for ex in examples:
        if not isinstance(ex, dict) or "text" not in ex:
            raise ValueError(f"a vision-and-language example is a dict with 'text' and 'image' / 'images'; got {ex!r}")
        ids = torch.from_numpy(predictor.tokenizer.encode([ex["text"]], cfg.encoders.text.max_len)).to(dev)
        images = ex.get("images") if "images" in ex else [ex.get("image")]
        if any(im is None for im in images):
            raise ValueError(f"task {task!r} needs an image for every example ('image' or 'images')")
        views = [load_image_input(im, visual, r_max, size) for im in images]
        with torch.inference_mode():
            out.append(_one(predictor, model, task, spec.head_type, ids, views, dev, top_k))
    return out


def _one(predictor, model, task, head_type, ids, views, dev, top_k) -> dict:
    names = predictor.class_names[task]
    if head_type == "retrieval":
        scores = model.score_pairs(ids, _batch(views, dev), task)[0].float().cpu()
        return {"ranking": scores.argsort(descending=True).tolist(), "scores": [round(float(s), 6) for s in scores]}
    if head_type == "nlvr":
        if len(views) != 2:
            raise ValueError(f"task {task!r} verifies a statement about exactly two images; got {len(views)}")
        batch = {k: v.unsqueeze(0) for k, v in _batch(views, dev).items()}
    else:
        if len(views) != 1:
            raise ValueError(f"task {task!r} reads one image per example; got {len(views)}")
        batch = _batch(views, dev)
    batch["text"] = ids
    probs = model.predict(batch, task)[0].float().cpu()
    if head_type == "refexp":
        mask = batch.get("region_mask")
        if mask is not None:
            probs = probs.masked_fill(~mask[0].cpu(), -1.0)
        best = int(probs.argmax())
        box = batch["boxes"][0, best].cpu().tolist() if "boxes" in batch else None
        return {"region": best, "box": [round(b, 5) for b in box] if box else None, "score": float(probs[best]),
                "scores": [round(float(p), 6) for p in probs]}
    k = min(top_k, len(names))
    vals, idx = probs.topk(k)
    return {"label": names[int(idx[0])], "score": float(vals[0]),
            "scores": {names[int(i)]: round(float(v), 6) for v, i in zip(vals, idx)}}
