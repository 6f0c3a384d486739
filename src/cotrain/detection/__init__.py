"""DETR-style set prediction: box arithmetic (:mod:`~cotrain.detection.boxes`), the Hungarian
matcher (:mod:`~cotrain.detection.matcher`) and the set criterion (:mod:`~cotrain.detection.criterion`)
that the ``detect`` head (:mod:`cotrain.heads.detect`) trains with."""

from cotrain.detection.boxes import (
    box_area,
    box_iou,
    cxcywh_to_xyxy,
    generalized_box_iou,
    paired_generalized_box_iou,
    scale_boxes,
    xyxy_to_cxcywh,
)
from cotrain.detection.criterion import SetCriterion, box_normaliser
from cotrain.detection.matcher import HungarianMatcher

__all__ = [
    "HungarianMatcher", "SetCriterion", "box_area", "box_iou", "box_normaliser", "cxcywh_to_xyxy",
    "generalized_box_iou", "paired_generalized_box_iou", "scale_boxes", "xyxy_to_cxcywh",
]
