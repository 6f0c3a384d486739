"""VQA v2 / GQA / Visual Genome QA readers and the answer vocabulary, on files in the real formats."""

from __future__ import annotations

import json

import numpy as np
import pytest

from cotrain.data.errors import DataError
from cotrain.data.formats.vl.records import VQARecord
from cotrain.data.formats.vl.vqa import (
    build_answer_vocab, encode_answers, read_gqa, read_vg_qa, read_vqa_v2, soft_scores,
)

QUESTIONS = [
    (458752000, 458752, "What is this photo taken looking through?"),
    (458752001, 458752, "What position is this man playing?"),
    (262146000, 262146, "What is the dog doing?"),
]
ANSWERS = {
    458752000: ["net"] * 8 + ["netting", "mesh"],
    458752001: ["pitcher"] * 3 + ["catcher"] * 7,
    262146000: ["Running."] * 5 + ["playing"] * 4 + ["jumping"],
}


def _write(path, doc) -> str:
    path.write_text(json.dumps(doc), encoding="utf-8")
    return str(path)


def _vqa_questions(tmp_path, questions=QUESTIONS, subtype="train2014"):
    doc = {
        "info": {"description": "This is v2.0 of the VQA dataset."},
        "task_type": "Open-Ended",
        "data_type": "mscoco",
        "data_subtype": subtype,
        "license": {"name": "Creative Commons Attribution 4.0 International License"},
        "questions": [{"image_id": i, "question": q, "question_id": qid} for qid, i, q in questions],
    }
    return _write(tmp_path / f"v2_OpenEnded_mscoco_{subtype}_questions.json", doc)


def _vqa_annotations(tmp_path, questions=QUESTIONS, answers=ANSWERS, subtype="train2014"):
    anns = []
    for qid, image_id, _ in questions:
        anns.append({
            "question_type": "what is this",
            "multiple_choice_answer": answers[qid][0].lower(),
            "answers": [{"answer": a, "answer_confidence": "yes", "answer_id": k + 1}
                        for k, a in enumerate(answers[qid])],
            "image_id": image_id,
            "answer_type": "other",
            "question_id": qid,
        })
    doc = {"info": {}, "license": {}, "data_subtype": subtype, "annotations": anns}
    return _write(tmp_path / f"v2_mscoco_{subtype}_annotations.json", doc)


def test_vqa_v2_questions_and_annotations(tmp_path):
    recs = read_vqa_v2(_vqa_questions(tmp_path), _vqa_annotations(tmp_path))
    assert [r.question_id for r in recs] == [458752000, 458752001, 262146000]
    assert recs[1].image_id == 458752 and recs[1].question == "What position is this man playing?"
    assert recs[2].answers == ANSWERS[262146000] and len(recs[0].answers) == 10
    assert {r.split for r in recs} == {"train"} and recs[0].source.endswith("train2014_questions.json")
    assert [r.answer_type for r in recs] == ["other"] * 3  # the annotation's answer_type, kept


def test_vqa_v2_answer_type_optional_and_checked(tmp_path):
    q, a = _vqa_questions(tmp_path), _vqa_annotations(tmp_path)
    doc = json.loads(open(a).read())
    doc["annotations"][0]["answer_type"] = "yes/no"
    del doc["annotations"][1]["answer_type"]
    _write(tmp_path / "a.json", doc)
    assert [r.answer_type for r in read_vqa_v2(q, str(tmp_path / "a.json"))] == ["yes/no", None, "other"]
    doc["annotations"][2]["answer_type"] = 3
    _write(tmp_path / "a.json", doc)
    with pytest.raises(DataError, match=r"question_id 262146000\).*'answer_type' must be str"):
        read_vqa_v2(q, str(tmp_path / "a.json"))


def test_vqa_v2_test_split_without_annotations(tmp_path):
    recs = read_vqa_v2(_vqa_questions(tmp_path, subtype="test-dev2015"))
    assert all(r.answers == [] and r.split == "test" for r in recs)
    answers, report = encode_answers(recs, ["net"])
    assert (answers == -1).all() and report.skipped["questions without answers"] == 3


def test_vqa_v2_mismatched_question_ids_are_named(tmp_path):
    q = _vqa_questions(tmp_path)
    extra = QUESTIONS[:2] + [(999, 262146, "Is it?")]
    a = _vqa_annotations(tmp_path, extra, {**ANSWERS, 999: ["yes"] * 10})
    with pytest.raises(DataError) as err:
        read_vqa_v2(q, a)
    msg = str(err.value)
    assert "1 question_id(s)" in msg and "262146000" in msg and "999" in msg and "annotations.json" in msg


def test_vqa_v2_bad_json_and_missing_key(tmp_path):
    bad = tmp_path / "v2_OpenEnded_mscoco_val2014_questions.json"
    bad.write_text('{"questions": [{"image_id": 1,', encoding="utf-8")
    with pytest.raises(DataError, match=r"val2014_questions\.json.*not valid JSON"):
        read_vqa_v2(bad)
    doc = {"questions": [{"image_id": 1, "question": "a?", "question_id": 10}, {"image_id": 1, "question_id": 11}]}
    with pytest.raises(DataError, match=r"missing\.json.*question 1 \(question_id 11\).*'question'"):
        read_vqa_v2(_write(tmp_path / "missing.json", doc))
    a = json.loads(open(_vqa_annotations(tmp_path)).read())
    del a["annotations"][2]["answers"][4]["answer"]
    with pytest.raises(DataError, match=r"question_id 262146000\), answer 4.*'answer'"):
        read_vqa_v2(_vqa_questions(tmp_path), _write(tmp_path / "a.json", a))


def test_gqa_questions(tmp_path):
    doc = {
        "02930152": {"semantic": [], "entailed": [], "equivalent": ["02930152"], "question": "Is the sky dark?",
                     "imageId": "2354786", "isBalanced": True, "groups": {"global": None, "local": "06-sky_dark"},
                     "answer": "yes", "semanticStr": "select: sky (2486325)->verify color: dark",
                     "annotations": {"answer": {}, "question": {"2": "2486325"}, "fullAnswer": {}},
                     "types": {"detailed": "verifyAttr", "semantic": "attr", "structural": "verify"},
                     "fullAnswer": "Yes, the sky is dark."},
        "07333408": {"question": "What is on the white wall?", "imageId": "n161313", "answer": "pipe",
                     "fullAnswer": "The pipe is on the wall.", "isBalanced": True},
    }
    recs = read_gqa(_write(tmp_path / "val_balanced_questions.json", doc), split="val")
    assert [(r.question_id, r.image_id, r.answers) for r in recs] == [
        ("02930152", "2354786", ["yes"]), ("07333408", "n161313", ["pipe"])]
    del doc["07333408"]["imageId"]
    with pytest.raises(DataError, match=r"question '07333408'.*'imageId'"):
        read_gqa(_write(tmp_path / "q.json", doc))


def test_visual_genome_qa(tmp_path):
    doc = [
        {"id": 1, "qas": [
            {"a_id": 986768, "answer": "Three.", "image_id": 1, "q_id": 986768, "qa_id": 986768,
             "question": "How many people are there?", "synonyms": []},
            {"a_id": 986769, "answer": "Green.", "image_id": 1, "q_id": 986769, "qa_id": 986769,
             "question": "What color is the clock?", "synonyms": []}]},
        {"image_id": 2, "qas": []},
        {"id": 3, "qas": [{"answer": "White.", "image_id": 3, "qa_id": 5, "question": "What color is the bus?"}]},
    ]
    recs = read_vg_qa(_write(tmp_path / "question_answers.json", doc))
    assert [(r.question_id, r.image_id, r.answers[0]) for r in recs] == [
        (986768, 1, "Three."), (986769, 1, "Green."), (5, 3, "White.")]
    doc[2]["qas"][0].pop("question")
    with pytest.raises(DataError, match=r"question_answers\.json.*image 2 \(id 3\), qa 0 \(qa_id 5\).*'question'"):
        read_vg_qa(_write(tmp_path / "question_answers.json", doc))


def test_vocab_encode_and_soft_scores(tmp_path):
    recs = read_vqa_v2(_vqa_questions(tmp_path), _vqa_annotations(tmp_path))
    vg = [VQARecord("vg1", 7, "What color?", ["Green."])]
    vocab = build_answer_vocab(recs + vg)
    assert len(vocab) == 9 and vocab == sorted(vocab)  # every answer given to one question: alphabetical
    assert "Running." not in vocab and "running" in vocab  # normalised
    small = build_answer_vocab(recs + vg, top_k=3)
    assert len(small) == 3 and small == sorted(small)  # all counts 1: ties alphabetical
    answers, report = encode_answers(recs + vg, ["net", "pitcher", "catcher", "running", "green"])
    assert answers.shape == (4, 10) and answers.dtype == np.int64
    assert (answers[3] == 4).all()  # one answer repeated 10 times
    assert answers[0].tolist() == [0] * 8 + [-1, -1]
    assert report.skipped["answers outside the vocabulary"] == 2 + 5 and "458752000: 'netting'" in report.examples[
        "answers outside the vocabulary"]
    scores = soft_scores(answers, 5)
    assert scores.dtype == np.float32 and scores.shape == (4, 5)
    np.testing.assert_allclose(scores[1], [0, 0.9, 1, 0, 0], atol=1e-6)
    np.testing.assert_allclose(scores[2], [0, 0, 0, 1, 0], atol=1e-6)
    _, report = encode_answers(recs, ["zebra"])
    assert report.skipped["questions with no answer in the vocabulary"] == 3
    with pytest.raises(DataError, match="3 answers"):
        encode_answers([VQARecord(1, 1, "q", ["a", "b", "c"], source="x.json")], ["a"])


def test_min_count(tmp_path):
    recs = [VQARecord(i, i, "q", [a]) for i, a in enumerate(["yes", "Yes", "yes.", "no", "no", "two"])]
    assert build_answer_vocab(recs, min_count=2) == ["yes", "no"]
