"""``text-nli``: natural language inference on scene descriptions (SNLI / MNLI-like, text only).

Each row is a premise (:mod:`.premise`: the scene in words) and a hypothesis, joined as
``"<premise> [SEP] <hypothesis>"``, labelled entailment / neutral / contradiction. Hypotheses are
built like ``snli-ve``'s (:func:`..vl.verify.nli_hypothesis`), with "settled" meaning *decided by the
premise* rather than *visible in the image* (:mod:`.clauses`):

- entailment: the clause follows from the premise (the object list settles existence, counts,
  colours and the number of objects; a stated relation settles its pair along its axis; a stated
  property settles its group for its object);
- neutral: the premise leaves the clause open (a relation between objects it does not link along
  that axis, a property no stated property decides);
- contradiction: the premise refutes the clause, or the clause gives a property to an object that is
  not there.

Language kept simple enough for a small model to learn within a short co-training budget (see
README.md): one clause per hypothesis (:data:`COMPANIONS` off: a second "and" clause is noise the
model must learn to ignore), and within one row premise and hypothesis name a meaning with the same
synonym (:func:`..vl.language.one_word_per_meaning`; the words still vary from row to row).

The same hypothesis words thus take any label depending on the premise: "there are two red circles"
is entailed or contradicted by the object list, "the square is above the star" is settled or open
depending on the stated relations, "the disc is made of glass" entailed, contradicted or open
depending on the stated properties.
"""

from __future__ import annotations

import numpy as np

from ..scene import Scene
from ..vl.facts import facts_for
from ..vl.language import one_word_per_meaning
from ..vl.verify import SNLI_VE_CLASSES, nli_hypothesis
from .clauses import PremiseClauses
from .premise import Premise, describe_scene

NLI_CLASSES: list[str] = list(SNLI_VE_CLASSES)  # entailment, neutral, contradiction
SEPARATOR = "[SEP]"
COMPANIONS = False  # a hypothesis may join a second clause with "and"


def nli_example(scene: Scene, rng: np.random.Generator, label: int,
                object_counts: tuple[int, int]) -> tuple[str, str, Premise]:
    """``(text, kind, premise)`` of one row with ``label`` (0 entailment, 1 neutral, 2 contradiction):
    ``text`` = premise + " [SEP] " + hypothesis; ``kind`` names the hypothesis' clause(s) (joined by
    "+"; see :data:`.clauses.KINDS`). ``object_counts``: the fewest and most objects a scene of the
    task has."""
    with one_word_per_meaning():
        premise = describe_scene(scene, rng)
        clauses = PremiseClauses(facts_for(scene), premise, rng, object_counts)
        hypothesis, _ = nli_hypothesis(rng, label, clauses.settled, clauses.unsettled, COMPANIONS)
    return f"{premise.text} {SEPARATOR} {hypothesis}", "+".join(clauses.kinds), premise


__all__ = ["NLI_CLASSES", "SEPARATOR", "nli_example"]
