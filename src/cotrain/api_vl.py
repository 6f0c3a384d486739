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

from .data.errors import DataError
from .data.media import IMAGE_EXTENSIONS, read_media
from .errors import InputError


def load_image_input(image: Any, visual: str, max_regions: int, image_size: int) -> dict[str, np.ndarray]:
    """One image → arrays of one example (``regions``/``boxes``/``region_mask`` or ``image``).
    A picture is decoded by :func:`cotrain.data.media.read_media`, exactly as training decodes it."""
    if isinstance(image, dict):
        if visual == "regions":
            if "regions" not in image or "boxes" not in image:
                raise InputError(f"a region input needs 'regions' [R, F] and 'boxes' [R, 4]; got keys {sorted(image)}")
            feats = np.asarray(image["regions"], dtype=np.float32)
            boxes = np.asarray(image["boxes"], dtype=np.float32)
            mask = np.asarray(image.get("region_mask", np.ones(len(feats), dtype=bool)), dtype=bool)
            return _pad(feats, boxes, mask, max_regions)
        if "image" not in image:
            raise InputError(f"a pixel input needs 'image' uint8 [3, H, W]; got keys {sorted(image)}")
        return {"image": np.asarray(image["image"], dtype=np.uint8)}
    if not isinstance(image, (str, Path)):
        raise InputError(f"an image is a file path or a dict of arrays; got a {type(image).__name__}")
    path = Path(image).expanduser()
    if not path.is_file():
        raise InputError(f"{path}: image input not found")
    if path.suffix.lower() == ".npz":
        if visual != "regions":
            raise InputError(f"{path}: a region file needs a region model; this model reads pixels")
        from .data.formats.vl.regions import read_npz_regions

        try:
            r = read_npz_regions(path)
        except DataError:
            raise
        except Exception as err:  # not an npz / missing arrays: name the file
            raise InputError(f"{path}: cannot read region features ({type(err).__name__}: {err}); expected a .npz "
                             "with features [R, F], boxes [R, 4], image_w, image_h") from err
        return _pad(r.features, r.boxes, np.ones(len(r.features), dtype=bool), max_regions)
    if visual == "regions":
        raise InputError(f"{path}: a region model needs region features (.npz), not {path.suffix or 'this file'}")
    if path.suffix.lower() not in IMAGE_EXTENSIONS:
        raise InputError(f"{path}: unsupported image input; give a picture ({', '.join(IMAGE_EXTENSIONS)})")
    return {"image": read_media("image", path, image_size=image_size)}


def _pad(feats: np.ndarray, boxes: np.ndarray, mask: np.ndarray, r: int) -> dict[str, np.ndarray]:
    if feats.ndim != 2 or boxes.shape != (len(feats), 4):
        raise InputError(f"regions must be [R, F] with boxes [R, 4]; got {feats.shape} and {boxes.shape}")
    n = min(len(feats), r)
    out_f = np.zeros((r, feats.shape[1]), np.float32)
    out_b = np.zeros((r, 4), np.float32)
    out_m = np.zeros(r, bool)
    out_f[:n], out_b[:n], out_m[:n] = feats[:n], boxes[:n], mask[:n]
    return {"regions": out_f, "boxes": out_b, "region_mask": out_m}


def _stack(rows: list[dict[str, np.ndarray]], device) -> dict[str, torch.Tensor]:
    """Examples' arrays → a batch (``[n, ...]``; a list of views per example → ``[n, K, ...]``)."""
    return {k: torch.from_numpy(np.stack([r[k] for r in rows])).to(device) for k in rows[0]}


def predict_vl(predictor, task: str, examples: list[dict], top_k: int = 5, batch_size: int = 64) -> list[dict]:
    """One result dict per example (see the module docstring for the inputs), ``batch_size``
    examples per forward pass:

    - vqa: ``label`` (answer), ``score``, ``scores`` (top-k answers);
    - nlvr / snli-ve: ``label``, ``score``, ``scores`` (every class);
    - refexp: ``region`` (index), ``box`` (normalised x0, y0, x1, y1), ``score``, ``scores`` (per region);
    - retrieval: ``ranking`` (image indices, best first) and ``scores`` (per image, input order).
    """
    spec = predictor.spec(task)
    cfg = predictor.cfg.model
    visual, r_max, size = cfg.vl.visual, cfg.encoders.regions.max_regions, cfg.encoders.image.image_size
    if predictor.tokenizer is None:
        raise InputError("this checkpoint has no vocabulary (vocab.txt); it cannot read text")
    views_wanted = {"nlvr": 2}.get(spec.head_type, 1)
    parsed = []
    for ex in examples:
        if not isinstance(ex, dict) or "text" not in ex:
            raise InputError(f"a vision-and-language example is a dict with 'text' and 'image' / 'images'; got {ex!r}")
        images = list(ex["images"]) if "images" in ex else [ex.get("image")]
        if any(im is None for im in images) or not images:
            raise InputError(f"task {task!r} needs an image for every example ('image' or 'images')")
        if spec.head_type == "nlvr" and len(images) != 2:
            raise InputError(f"task {task!r} verifies a statement about exactly two images; got {len(images)}")
        if spec.head_type not in ("nlvr", "retrieval") and len(images) != 1:
            raise InputError(f"task {task!r} reads one image per example; got {len(images)}")
        parsed.append((str(ex["text"]), images))
    out: list[dict] = []
    for start in range(0, len(parsed), batch_size):
        chunk = parsed[start : start + batch_size]
        ids = torch.from_numpy(predictor.tokenizer.encode([t for t, _ in chunk], cfg.encoders.text.max_len))
        views = [[load_image_input(im, visual, r_max, size) for im in images] for _, images in chunk]
        with torch.inference_mode():
            if spec.head_type == "retrieval":  # each caption ranks its own candidate images
                for i, v in enumerate(views):
                    out.append(_rank(predictor.model, task, ids[i : i + 1].to(predictor.device), v, predictor.device))
                continue
            rows = [_stack(v, "cpu") for v in views] if views_wanted > 1 else [v[0] for v in views]
            batch = {k: (torch.stack([r[k] for r in rows]) if views_wanted > 1 else
                         torch.from_numpy(np.stack([r[k] for r in rows]))).to(predictor.device) for k in rows[0]}
            batch["text"] = ids.to(predictor.device)
            probs = predictor.model.predict(batch, task).float().cpu()
            out.extend(_results(predictor.class_names[task], spec.head_type, probs, batch, top_k))
    return out


def _rank(model, task: str, ids: torch.Tensor, views: list[dict], device) -> dict:
    scores = model.score_pairs(ids, _stack(views, device), task)[0].float().cpu()
    return {"ranking": scores.argsort(descending=True).tolist(), "scores": [round(float(s), 6) for s in scores]}


def _results(names: list[str], head_type: str, probs: torch.Tensor, batch: dict, top_k: int) -> list[dict]:
    out = []
    for i, p in enumerate(probs):
        if head_type == "refexp":
            mask = batch.get("region_mask")
            if mask is not None:
                p = p.masked_fill(~mask[i].cpu(), -1.0)
            best = int(p.argmax())
            box = batch["boxes"][i, best].cpu().tolist() if "boxes" in batch else None
            out.append({"region": best, "box": [round(b, 5) for b in box] if box else None, "score": float(p[best]),
                        "scores": [round(float(x), 6) for x in p]})
            continue
        k = min(top_k, len(names))
        vals, idx = p.topk(k)
        out.append({"label": names[int(idx[0])], "score": float(vals[0]),
                    "scores": {names[int(j)]: round(float(v), 6) for v, j in zip(vals, idx)}})
    return out
