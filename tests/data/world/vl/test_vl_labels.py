"""Labels of the V&L tasks: refexp IoU targets, retrieval hard negatives, noisy VQA answers, the
snli-ve classes."""

from __future__ import annotations

import re

import numpy as np
import pytest
from vl_helpers import SPLITS, build
from vl_resolver import parse_np

from cotrain.data.world.common import SPLIT_OFFSETS, example_rng, task_seed
from cotrain.data.world.vl import GQA_ANSWERS, VQA_ANSWERS, task_stream, vl_scene
from cotrain.data.world.vl import build as vl_build
from cotrain.data.world.vl import retrieval
from cotrain.data.world.vl.facts import facts_for
from cotrain.data.world.vl.answers import normalize_answer
from cotrain.data.world.vl.regions import iou
from cotrain.data.world.vl.verify import PROPERTIES

REFEXP = ["refcoco", "refcoco+", "refcocog", "pointing", "guesswhat"]


@pytest.mark.parametrize("name", REFEXP)
def test_refexp_label_is_iou_and_target_is_a_proposal(small, name):
    for split in SPLITS:
        a = small[name].split(split).columns()
        overlap = iou(a["boxes"].astype(np.float64), a["target_box"][:, None].astype(np.float64))
        expected = np.where(a["region_mask"] & (overlap >= 0.5), overlap, 0.0)
        np.testing.assert_allclose(a["label"], expected, atol=1e-6)
        assert (a["label"].max(axis=1) > 0.999).all()  # the target's own box is a proposal
        best = a["label"].argmax(axis=1)
        np.testing.assert_allclose(a["boxes"][np.arange(len(best)), best], a["target_box"], atol=1e-6)
        assert len(set(best.tolist())) >= 3  # the target's slot is not a giveaway
        for row, (image_id, target) in enumerate(zip(a["image_id"], a["target_object"])):
            scene = vl_scene(0, image_id)
            np.testing.assert_allclose(a["target_box"][row] * 48, scene.objects[target].box, atol=1e-4)
            n_real = int(a["region_mask"][row].sum())
            if name == "pointing":
                assert n_real == 4  # the candidates
            elif name == "guesswhat":
                assert n_real == len(scene.objects)  # the object list
            else:
                assert len(scene.objects) < n_real <= 12  # objects + jittered + distractor boxes


def test_standard_proposals_hold_jittered_and_distractor_boxes(small):
    a = small["vqa"].train.columns()
    for row, image_id in enumerate(a["image_id"]):
        objects = vl_scene(0, image_id).boxes() / 48
        boxes = a["boxes"][row][a["region_mask"][row]]
        best = iou(boxes[:, None], objects[None]).max(axis=1)
        assert (best > 0.999).sum() == len(objects)  # every object's box, exactly once
        assert ((best > 0.05) & (best < 0.999)).any()  # jittered copies
        assert (best < 0.1).sum() >= 1  # background distractors


@pytest.mark.parametrize("name", ["coco-ir", "flickr-ir"])
def test_retrieval_hard_candidates(small, name):
    a = small[name].train.arrays
    ids, cands = a["image_id"], a["candidate_id"]
    stream = task_stream(name, 0, 48)
    ts = task_seed(0, name)
    assert (ids == stream.ids("train", len(ids))).all()
    held_out = np.concatenate([small[name].val.arrays["image_id"], small[name].test.arrays["image_id"]])
    assert not np.isin(cands, held_out).any()  # candidates come from the task's own train stream
    for row in range(len(ids)):
        assert len(set(cands[row].tolist())) == 12 and ids[row] not in cands[row]
        true = vl_scene(0, ids[row])
        text, facts = retrieval.CAPTIONS[name](true, example_rng(ts, SPLIT_OFFSETS["train"] + row))
        assert text == a["text_raw"][row]
        assert retrieval.caption_possible(true, facts)
        for neg in cands[row]:
            assert not retrieval.caption_possible(vl_scene(0, neg), facts)
        # the rule: best first by shared (shape, colour) pairs, then shared shapes + colours, among the
        # block's valid scenes; the next block only once the block has none left
        block = row // retrieval.BLOCK
        cands_block = stream.ids("train", (block + 1) * retrieval.BLOCK)[block * retrieval.BLOCK:]
        valid = [c for c in cands_block if c != ids[row] and not retrieval.caption_possible(vl_scene(0, c), facts)]
        scores = [retrieval.shared_score(true, vl_scene(0, c)) for c in cands[row]]
        in_block = [c in valid for c in cands[row]]
        assert in_block == sorted(in_block, reverse=True)  # the block's first
        n = sum(in_block)
        assert scores[:n] == sorted(scores[:n], reverse=True)
        assert n == min(12, len(valid))
        if n < 12:
            assert set(cands[row, :n]) == set(valid)
        else:
            worst_chosen = min(scores)
            assert all(retrieval.shared_score(true, vl_scene(0, c)) <= worst_chosen for c in valid
                       if c not in cands[row])


def test_fewer_candidates_are_a_prefix_and_the_first_three_are_12in1s_negatives(small):
    few = build("coco-ir", candidates=3)
    np.testing.assert_array_equal(few.train.arrays["candidate_id"], small["coco-ir"].train.arrays["candidate_id"][:, :3])
    assert few.meta["params"]["candidates"] == 3 and "candidates" not in small["vqa"].meta["params"]
    view2 = [vl_build.scene_for_vl_example("coco-ir", 0, "train", row, view=2).index for row in range(5)]
    assert view2 == few.train.arrays["candidate_id"][:5, 1].tolist()


def test_retrieval_eval_splits_are_single_view(small):
    for name in ("coco-ir", "flickr-ir"):
        for split in ("val", "test"):
            a = small[name].split(split).arrays
            assert a["image_id"].ndim == 1 and len(set(a["image_id"].tolist())) == len(a["image_id"])


def test_vqa_answers_are_noisy_but_the_majority_is_right(small):
    a = small["vqa"].train.arrays
    kinds = small["vqa"].meta["extra"]["train"]["kind"]
    raw = small["vqa"].meta["extra"]["train"]["answers_raw"]
    answers, label = a["answers"], a["label"]
    assert (answers == -1).any()  # answers outside the vocabulary ("turquoise", "a few")
    assert (answers != answers[:, :1]).any(axis=1).mean() > 0.3  # annotators disagree
    assert any(r != VQA_ANSWERS[i] for row, ids in zip(raw, answers) for r, i in zip(row, ids) if i >= 0)  # "Two", "Yes"
    counts = np.zeros_like(label)
    for row, ids in enumerate(answers):
        for i in ids[ids >= 0]:
            counts[row, i] += 1
    np.testing.assert_allclose(label, np.minimum(1.0, 0.3 * counts))
    majority = counts.argmax(axis=1)
    assert (counts.max(axis=1) >= 6).all() and (label[np.arange(len(label)), majority] == 1).all()
    assert ((label > 0) & (label < 1)).any()  # soft scores for the wrong answers
    for row, (image_id, about, kind) in enumerate(zip(a["image_id"], a["about_object"], kinds)):
        scene = vl_scene(0, image_id)
        if kind in ("colour", "shape"):
            assert VQA_ANSWERS[majority[row]] == getattr(scene.objects[about], kind)
        elif kind == "count":
            assert about == -1 and VQA_ANSWERS[majority[row]].isdigit()
        else:
            assert VQA_ANSWERS[majority[row]] == kind
    for r, i in zip(raw.reshape(-1), answers.reshape(-1)):
        assert (VQA_ANSWERS.index(normalize_answer(r)) if normalize_answer(r) in VQA_ANSWERS else -1) == i


@pytest.mark.parametrize("name", ["vgqa", "gqa"])
def test_single_answer_tasks(small, name):
    vocab = GQA_ANSWERS if name == "gqa" else VQA_ANSWERS
    for split in SPLITS:
        a = small[name].split(split).arrays
        assert (a["answers"] == a["answers"][:, :1]).all() and (a["answers"] >= 0).all()
        np.testing.assert_array_equal(a["label"], np.eye(len(vocab), dtype=np.float32)[a["answers"][:, 0]])
        about = a["about_object"]
        n_obj = np.asarray([len(vl_scene(0, i)) for i in a["image_id"]])
        assert ((about >= -1) & (about < n_obj)).all() and (about >= 0).mean() > 0.5


# VQA's answer type of each question kind (the canonical answer: yes / no, a count, anything else)
KIND_TYPES = {
    "vqa": {"colour": "other", "shape": "other", "count": "number", "yes": "yes/no", "no": "yes/no"},
    "vgqa": {"colour": "other", "shape": "other", "size": "other", "where": "other", "count": "number"},
    "gqa": {"choose": "other", "colour": "other", "shape": "other", **{f"{k}-{a}": "yes/no" for k in
            ("verify", "compare", "exist") for a in ("yes", "no")}},
}


@pytest.mark.parametrize("name", ["vqa", "vgqa", "gqa"])
def test_answer_type_follows_the_question_kind(small, name):
    seen = set()
    for split in SPLITS:
        a = small[name].split(split).arrays
        kinds = small[name].meta["extra"][split]["kind"]
        assert a["answer_type"].shape == (len(kinds),) and a["answer_type"].dtype.kind == "U"
        assert a["answer_type"].tolist() == [KIND_TYPES[name][k] for k in kinds]
        seen |= set(a["answer_type"].tolist())
    assert seen == set(KIND_TYPES[name].values())  # every type of the task occurs


def test_vqa_and_vgqa_share_the_vocabulary(small):
    assert small["vqa"].class_names == small["vgqa"].class_names == VQA_ANSWERS
    assert small["gqa"].class_names == GQA_ANSWERS != VQA_ANSWERS


def test_answer_normalisation():
    assert normalize_answer("Two") == "2" and normalize_answer("Yes!") == "yes" and normalize_answer("a Circle.") == "circle"
    assert normalize_answer("turquoise") == "turquoise"


PROPERTY = "|".join(re.escape(p) for p in PROPERTIES)
UNHEDGED = [re.compile(rf"there is an? (.+) that is ({PROPERTY})"), re.compile(rf"the (.+) is ({PROPERTY})")]


def test_snli_ve_neutral_means_unverifiable():
    td = build("snli-ve", n_train=90, n_val=0, n_test=0)
    a = td.train.arrays
    seen = {0: 0, 1: 0, 2: 0}
    for text, label, image_id in zip(a["text_raw"], a["label"], a["image_id"]):
        f = facts_for(vl_scene(0, image_id))
        clauses = text.lower().rstrip(".").split(" and ")
        referents = []
        for clause in clauses:
            clause = re.sub(rf", which might be ({PROPERTY}),?", "", clause)  # hedges assert nothing
            for pattern in UNHEDGED:
                m = pattern.fullmatch(clause)
                if m:
                    desc = parse_np(m[1])
                    assert desc is not None, clause
                    referents.append(int(f.match(desc).sum()))
                    break
        if label == 0:
            assert not referents, text  # entailment: only visible, true clauses
        elif label == 1:
            assert referents and min(referents) > 0, text  # neutral: an unverifiable property of a present object
        if referents:
            seen[int(label)] += 1
    assert seen[1] == 30 and seen[2] > 0  # property words occur in contradictions too
    assert sum("might be" in t for t in a["text_raw"][a["label"] == 0]) > 0  # hedges occur in entailments


def test_nlvr_pairs_two_scenes(small):
    for split in SPLITS:
        ids = small["nlvr"].split(split).arrays["image_id"]
        assert ids.shape[1] == 2 and (ids[:, 0] != ids[:, 1]).all()
