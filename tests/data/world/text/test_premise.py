"""What a premise settles: relations along their axis (also through a third object), properties
within their group; and the premise text of a scene."""

from __future__ import annotations

import numpy as np

from cotrain.data.world.scene import Background, Scene, SceneObject
from cotrain.data.world.text.premise import Premise, describe_scene
from cotrain.data.world.vl.facts import facts_for
from cotrain.data.world.vl.language import COLOUR_WORDS, SHAPE_WORDS


def obj(shape, colour, x, y, size="small"):
    return SceneObject(shape, colour, size, (x, y, x + 8, y + 8), (0, 0, 0))


def three_in_a_row() -> Scene:
    """A red circle, a blue square and a green star left to right, all at the same height."""
    bg = Background((60.0, 60.0, 60.0), 0, 0, 1, 0, 0, 0, 0, 0)
    return Scene(48, bg, [obj("circle", "red", 2, 20), obj("square", "blue", 20, 20), obj("star", "green", 38, 20)])


def test_relations_settle_their_pair_and_axis_and_link_through_a_third_object():
    f = facts_for(three_in_a_row())
    premise = Premise("", relations=((0, "left_of", 1), (1, "left_of", 2)), properties=())
    settled = premise.settled_relations()
    assert (1, "right_of", 0) in settled and (0, "right_of", 1) in settled  # true and false forms
    assert (0, "above", 1) not in settled and (0, "left_of", 2) not in settled
    assert premise.linked(0, 2, axis=0) and not premise.linked(0, 2, axis=1)
    open_ = premise.open_relations(f)
    assert (0, "left_of", 2) not in open_  # follows through the square: not open
    assert (0, "above", 2) in open_ and (2, "below", 1) in open_
    assert all(r in ("above", "below") for _, r, _ in open_)


def test_properties_settle_only_their_group():
    f = facts_for(three_in_a_row())
    premise = Premise("", relations=(), properties=((0, "made of wood"),))
    assert premise.property_status(f, {"shape": "circle"}, "made of wood") is True
    assert premise.property_status(f, {"colour": "red"}, "made of metal") is False  # same group, conflicts
    assert premise.property_status(f, {"shape": "circle"}, "very old") is None  # other group: open
    assert premise.property_status(f, {"shape": "square"}, "made of wood") is None  # not stated for it
    assert premise.property_status(f, {"shape": "diamond"}, "brand new") is False  # nothing matches
    assert premise.property_status(f, {"size": "small"}, "made of wood") is True  # one small object is


def test_a_premise_names_every_object_and_states_true_relations():
    scene = three_in_a_row()
    for seed in range(20):
        p = describe_scene(scene, np.random.default_rng(seed))
        assert p.text.count(" [SEP] ") == 0 and p.text.endswith(".")
        text = p.text.lower()
        assert any(n in text for n in ("three", "3 "))
        assert all(any(w in text for w in SHAPE_WORDS[o.shape]) and any(w in text for w in COLOUR_WORDS[o.colour])
                   for o in scene.objects)
        f = facts_for(scene)
        assert all(f.rel(i, r, j) is True for i, r, j in p.relations)
        assert len(p.relations) <= 1 and len(p.properties) <= 1
