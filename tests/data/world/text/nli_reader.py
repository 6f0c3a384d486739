"""An independent reader of ``text-nli`` rows (test helper).

It reads the premise and the hypothesis from the text alone (templates by regular expressions,
synonyms mapped back to attributes), resolves the objects they name on the scene re-created from the
row's ``image_id``, and works out the label by its own rules:

- facts (existence, counts, colours, the number of objects) are true or false on the scene, which the
  premise lists in full;
- a relation is true or false when the premise relates the same pair along the same axis (positions
  by centres with a margin of max(2, 0.06 S) pixels), open when no stated relation of that axis links
  the pair, and not expected otherwise;
- a property holds when the premise gives it to a matching object, fails when nothing matches or
  every matching object has another property of its group (materials; ages), and is open otherwise.

Any false clause: contradiction; else any open clause: neutral; else entailment.
"""

from __future__ import annotations

import re

MEANINGS = {
    "shape": {"circle": "circle disc ball", "square": "square block box", "triangle": "triangle wedge",
              "diamond": "diamond rhombus lozenge", "cross": "cross plus_sign", "star": "star starburst"},
    "colour": {"red": "red crimson scarlet", "green": "green emerald", "blue": "blue azure",
               "yellow": "yellow golden lemon", "purple": "purple violet", "cyan": "cyan turquoise aqua"},
    "size": {"small": "small little tiny", "large": "large big"},
}
WORD = {w: (key, value) for key, table in MEANINGS.items() for value, ws in table.items() for w in ws.split()}
IRREGULAR = {"boxes": "box", "crosses": "cross", "rhombuses": "rhombus", "plus_signs": "plus_sign"}
GENERIC = {"object", "thing", "shape", "item"}
NUMBERS = {w: n for n, w in enumerate("zero one two three four five six".split())}
RELATION = {
    "left of": ("x", -1), "to the left of": ("x", -1), "on the left of": ("x", -1),
    "right of": ("x", 1), "to the right of": ("x", 1), "on the right of": ("x", 1),
    "above": ("y", -1), "over": ("y", -1), "higher than": ("y", -1),
    "below": ("y", 1), "under": ("y", 1), "beneath": ("y", 1), "lower than": ("y", 1),
}
GROUPS = [("made of wood", "made of metal", "made of glass", "made of paper"), ("brand new", "very old")]
PROPS = [p for g in GROUPS for p in g]
HEDGES = ("made of wood|made of metal|made of glass|made of paper|heavy|hollow|warm to the touch|brand new|"
          "very old|about to fall|about to roll away|painted by a child|placed there last")
FILLERS = ("in this picture, ", "looking at the image, ", "in the scene, ", "if you look closely, ")
DISTRACTORS = {"the background is plain", "nothing else is in the picture", "the shapes do not touch",
               "no two objects overlap", "everything lies flat"}


def _alt(options) -> str:
    return "|".join(re.escape(o) for o in sorted(options, key=len, reverse=True))


REL_RE, PROP_RE = _alt(RELATION), _alt(PROPS)
COLOUR_RE = _alt([w for w, (k, _) in WORD.items() if k == "colour"])
NUM_RE = r"(\d|zero|one|two|three|four|five|six)"
COLLECTIVE = r"(objects?|shapes?|things?|items?)"
LISTINGS = [
    re.compile(rf"there (?:is|are) {NUM_RE} {COLLECTIVE}: (.+)"),
    re.compile(rf"the picture shows {NUM_RE} {COLLECTIVE}: (.+)"),
    re.compile(rf"you can see {NUM_RE} {COLLECTIVE}, namely (.+)"),
]
LISTING_LAST = re.compile(rf"(.+) (?:is|are) in the picture, {NUM_RE} {COLLECTIVE} in all")


def number(word: str) -> int:
    return int(word) if word.isdigit() else NUMBERS[word]


def parse_np(text: str, plural: bool = False) -> dict:
    """Attributes named by a noun phrase without article ("big crimson disc", "red shapes")."""
    desc: dict = {}
    words = text.replace("plus sign", "plus_sign").split()
    for k, w in enumerate(words):
        if plural and k == len(words) - 1:
            w = IRREGULAR.get(w, w[:-1] if w.endswith("s") else w)
        if w in WORD:
            key, value = WORD[w]
            assert key not in desc, text
            desc[key] = value
        else:
            assert w in GENERIC, f"unknown word {w!r} in {text!r}"
    return desc


def strip_article(phrase: str) -> str:
    m = re.fullmatch(r"(?:a|an|the) (.+)", phrase)
    assert m, phrase
    return m[1]


def matching(objects: list[dict], desc: dict) -> list[int]:
    return [k for k, o in enumerate(objects) if all(o[a] == v for a, v in desc.items())]


def the(objects: list[dict], desc: dict) -> int:
    hits = matching(objects, desc)
    assert len(hits) == 1, (desc, hits)
    return hits[0]


class Scene:
    """The scene as the reader sees it: attributes and centres of its objects, its canvas side."""

    def __init__(self, scene) -> None:
        self.objects = [{"shape": o.shape, "colour": o.colour, "size": o.size,
                         "x": (o.box[0] + o.box[2]) / 2, "y": (o.box[1] + o.box[3]) / 2} for o in scene.objects]
        self.margin = max(2.0, 0.06 * scene.image_size)

    def position(self, i: int, rel: str, j: int) -> bool | None:
        """Whether object i is ``rel`` object j (None: within the margin)."""
        axis, sign = RELATION[rel]
        d = sign * (self.objects[i][axis] - self.objects[j][axis])
        return True if d > self.margin else (False if d < -self.margin else None)


def read_listing(sentence: str) -> tuple[int, list[dict]]:
    """(the number of objects stated, the listed objects' attributes)."""
    for pattern in LISTINGS:
        m = pattern.fullmatch(sentence)
        if m:
            n, items = number(m[1]), m[3]
            break
    else:
        m = LISTING_LAST.fullmatch(sentence)
        assert m, f"not a listing: {sentence!r}"
        n, items = number(m[2]), m[1]
    listed = []
    for item in re.split(r", | and ", items):
        first, rest = item.split(" ", 1)
        if first in ("a", "an"):
            listed.append(parse_np(rest))
        else:
            listed += [parse_np(rest, plural=True)] * number(first)
    return n, listed


class Premise:
    """What a premise says: the objects it lists, the relations and properties it states."""

    def __init__(self, text: str, scene: Scene) -> None:
        self.scene = scene
        self.relations: list[tuple[int, str, int]] = []
        self.properties: dict[int, list[str]] = {}
        self.count, self.listed = None, None
        for sentence in re.split(r"(?<=\.) ", text.strip()):
            s = sentence.rstrip(".")
            s = s[:1].lower() + s[1:]
            for filler in FILLERS:
                s = s[len(filler):] if s.startswith(filler) else s
            if s in DISTRACTORS:
                continue
            m = re.fullmatch(rf"the (.+) is ({REL_RE}) the (.+)", s)
            if m:
                i, j = the(scene.objects, parse_np(m[1])), the(scene.objects, parse_np(m[3]))
                assert scene.position(i, m[2], j) is True, f"stated relation is not clearly true: {s!r}"
                self.relations.append((i, m[2], j))
                continue
            m = re.fullmatch(rf"the (.+) is ({PROP_RE})", s)
            if m:
                self.properties.setdefault(the(scene.objects, parse_np(m[1])), []).append(m[2])
                continue
            assert self.listed is None, f"two listings in {text!r}"
            self.count, self.listed = read_listing(s)
        assert self.listed is not None, f"no listing in {text!r}"

    def linked(self, i: int, j: int, axis: str) -> bool:
        edges = [(a, b) for a, rel, b in self.relations if RELATION[rel][0] == axis]
        seen, todo = {i}, [i]
        while todo:
            k = todo.pop()
            for a, b in edges:
                for x, y in ((a, b), (b, a)):
                    if x == k and y not in seen:
                        seen.add(y)
                        todo.append(y)
        return j in seen

    def relation(self, i: int, rel: str, j: int) -> bool | None:
        axis = RELATION[rel][0]
        if any({a, b} == {i, j} and RELATION[r][0] == axis for a, r, b in self.relations):
            value = self.scene.position(i, rel, j)
            assert value is not None
            return value
        assert not self.linked(i, j, axis), "a relation that only follows through a third object"
        return None

    def has_property(self, desc: dict, prop: str) -> bool | None:
        members = matching(self.scene.objects, desc)
        if not members:
            return False
        if any(prop in self.properties.get(k, []) for k in members):
            return True
        group = next(g for g in GROUPS if prop in g)
        if all(any(p in group for p in self.properties.get(k, [])) for k in members):
            return False
        return None


def clause_value(clause: str, premise: Premise) -> bool | None:
    """True / False when the premise settles the clause, None when it leaves it open."""
    objects = premise.scene.objects
    clause = re.sub(rf", which might be ({HEDGES}),?$", "", clause)  # a hedge asserts nothing
    m = re.fullmatch(rf"there is (an? .+) that is ({PROP_RE})", clause)
    if m:
        return premise.has_property(parse_np(strip_article(m[1])), m[2])
    m = re.fullmatch(rf"the (.+) is ({PROP_RE})", clause)
    if m:
        desc = parse_np(m[1])
        assert len(matching(objects, desc)) == 1, clause
        return premise.has_property(desc, m[2])
    m = re.fullmatch(rf"the (.+) is ({REL_RE}) the (.+)", clause)
    if m:
        return premise.relation(the(objects, parse_np(m[1])), m[2], the(objects, parse_np(m[3])))
    m = re.fullmatch(rf"the (.+) is ({COLOUR_RE})", clause)
    if m:
        return objects[the(objects, parse_np(m[1]))]["colour"] == WORD[m[2]][1]
    m = re.fullmatch(rf"the picture shows {NUM_RE} {COLLECTIVE}", clause)
    if m:
        return number(m[1]) == len(objects)
    m = re.fullmatch(r"there (?:is|are) no (.+)", clause)
    if m:
        return not matching(objects, parse_np(m[1], plural=True))
    m = re.fullmatch(rf"there (?:is|are) exactly {NUM_RE} (.+)", clause)
    if m:
        n = number(m[1])
        return len(matching(objects, parse_np(m[2], plural=n > 1))) == n
    m = re.fullmatch(r"there is (an? .+)", clause)
    assert m, f"unread clause {clause!r}"
    return bool(matching(objects, parse_np(strip_article(m[1]))))


def read_label(text: str, scene) -> int:
    """The label (0 entailment, 1 neutral, 2 contradiction) of a row's text about ``scene``; also
    checks that the premise lists exactly the scene's objects."""
    premise_text, hypothesis = text.split(" [SEP] ")
    seen = Scene(scene)
    premise = Premise(premise_text, seen)
    key = lambda o: (o["shape"], o["colour"], o["size"])  # noqa: E731
    assert sorted(map(key, premise.listed)) == sorted(map(key, seen.objects)), "the listing is not the scene"
    assert premise.count == len(seen.objects)
    h = hypothesis.rstrip(".")
    values = [clause_value(c, premise) for c in (h[:1].lower() + h[1:]).split(" and ")]
    return 2 if False in values else (1 if None in values else 0)
