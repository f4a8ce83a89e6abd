"""Whole-word, case-preserving swaps of names, pronouns and gendered terms; lexicon files."""

from __future__ import annotations

import json

import pytest

from probes.base import ProbeError
from probes.swap import (
    NameLexicon,
    PronounSwapper,
    TermSwapper,
    builtin_lexicon,
    load_lexicon,
    match_case,
    replace_names,
)


@pytest.fixture(scope="module")
def pronouns() -> PronounSwapper:
    return PronounSwapper(load_lexicon("pronouns"), ["female", "male"])


@pytest.fixture(scope="module")
def terms() -> TermSwapper:
    lex = load_lexicon("terms")["attributes"]["gender"]
    return TermSwapper(lex["pairs"], ["female", "male"])


def test_match_case() -> None:
    assert match_case("He", "she") == "She"
    assert match_case("JOHN", "Emily") == "EMILY"
    assert match_case("john", "Emily") == "emily"
    assert match_case("McX", "Lakisha") == "Lakisha"


def test_names_whole_word_and_case() -> None:
    out = replace_names("EMILY met Emily's friend Emilya and emily.", {"Emily": "Lakisha"})
    assert out == "LAKISHA met Lakisha's friend Emilya and emily."
    assert replace_names("Anne-Marie and Anne", {"Anne": "Keisha"}) == "Anne-Marie and Keisha"


def test_pronoun_forms_to_female(pronouns: PronounSwapper) -> None:
    text = "He said his resume is his. We hired him; he did it himself."
    assert pronouns.swap(text, "female") == (
        "She said her resume is hers. We hired her; she did it herself."
    )
    assert pronouns.swap(text, "male") == text


def test_her_is_object_or_determiner(pronouns: PronounSwapper) -> None:
    text = "I gave her the book, praised her work and thanked her."
    assert pronouns.swap(text, "male") == "I gave him the book, praised his work and thanked him."
    assert pronouns.swap("Her idea was hers.", "male") == "His idea was his."
    assert pronouns.swap("SHE knows HER job", "male") == "HE knows HIS job"


def test_pronoun_detect_ignores_inner_words(pronouns: PronounSwapper) -> None:
    assert not pronouns.detect("The shell theme helped the therapist.")
    assert pronouns.detect("'He said so.'")


def test_singular_they_agreement() -> None:
    swapper = PronounSwapper(load_lexicon("pronouns"), ["female", "male", "neutral"])
    assert swapper.swap("He is sure; he's done it himself.", "neutral") == (
        "They are sure; they're done it themself."
    )
    assert swapper.swap("They were late but their work is theirs.", "female") == (
        "She was late but her work is hers."
    )


def test_terms_swap_and_capitalized_only(terms: TermSwapper) -> None:
    text = "Mr Smith, a MAN and father, will not miss the chairman."
    assert terms.swap(text, "female") == (
        "Ms Smith, a WOMAN and mother, will not miss the chairwoman."
    )
    assert terms.swap("Mrs Jones and Miss Wu, women", "male") == "Mr Jones and Mr Wu, men"
    assert not terms.detect("we might miss the manager")  # 'manager' is not 'man'


def test_builtin_name_lexicon_groups_and_sources() -> None:
    doc = builtin_lexicon("names")
    assert set(doc["sources"]) >= {"bertrand-mullainathan-2004", "caliskan-2017-weat3"}
    lex = NameLexicon.from_json(doc)
    assert lex.groups("gender") == ["female", "male"]
    assert lex.groups("race") == ["black", "white", "hispanic", "asian"]
    assert lex.level("Lakisha", "race") == "black" and lex.level("Greg", "gender") == "male"
    for rec in doc["names"]:
        assert rec["sources"] and set(rec["sources"]) <= set(doc["sources"])
    cells = lex.cells("gender")
    assert {"female", "male"} <= set(cells[("hispanic",)])


def test_ambiguous_names_are_not_detected() -> None:
    lex = NameLexicon.from_json(builtin_lexicon("names"))
    pattern = lex.detector("gender")
    found = lex.find("Kenya hired EMILY, frank and Greg. Greg left.", "gender", pattern=pattern)
    assert found == ["Emily", "Greg"]


def test_user_lexicon_extend_replace_and_errors(tmp_path) -> None:
    ext = load_lexicon("names", lexicon={"groups": {"gender": {"female": ["Ada"]}}})
    names = {r["name"] for r in ext["names"]}
    assert "Ada" in names and "Emily" in names
    path = tmp_path / "lex.json"
    path.write_text(json.dumps({"mode": "replace", "names": [{"name": "Bo", "gender": "male"}]}))
    rep = load_lexicon("names", path=path)
    assert [r["name"] for r in rep["names"]] == ["Bo"]
    with pytest.raises(ProbeError, match="lexicon.mode"):
        load_lexicon("names", lexicon={"mode": "merge"})
    with pytest.raises(ProbeError, match="lexicon_path: file not found"):
        load_lexicon("names", path=tmp_path / "missing.json")
    terms = load_lexicon(
        "terms",
        lexicon={
            "attributes": {"gender": {"pairs": [{"female": "queen bee", "male": "king bee"}]}}
        },
    )
    assert terms["attributes"]["gender"]["pairs"][0]["female"] == "queen bee"
