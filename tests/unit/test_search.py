"""Full-text search, the pure part: terms, the tsquery text, matching and snippets."""

from __future__ import annotations

import html
import re

import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from chatcore.errors import ValidationError
from chatcore.search import (
    MAX_QUERY_LENGTH,
    MAX_TERMS,
    SNIPPET_LENGTH,
    matches,
    search_terms,
    snippet,
    tsquery,
)

_WORD = re.compile(r"[^\W_]+")
_MARKS = re.compile(r"<mark>(.*?)</mark>")


def _fold(text: str) -> str:
    return "".join(ch.lower() for ch in text)


def _words(text: str) -> list[str]:
    """The definition: maximal runs of letters or digits, lowercased letter by letter."""
    return [_fold(w) for w in _WORD.findall(text)]


def _plain(out: str) -> str:
    """A snippet without its marks, ellipses and escaping: the window's text."""
    return html.unescape(out.replace("<mark>", "").replace("</mark>", "")).strip("…")


def _marked(out: str) -> list[str]:
    return [html.unescape(m) for m in _MARKS.findall(out)]


def _filler(count: int, prefix: str = "isi") -> str:
    return " ".join(f"{prefix}{i}" for i in range(count))


# --- search_terms --------------------------------------------------------------------


def test_terms_are_the_lowercased_words_in_order() -> None:
    assert search_terms("Karier DATA Science") == ("karier", "data", "science")


def test_punctuation_and_whitespace_split_words() -> None:
    assert search_terms("  karier,data!? (science)\n\tUI/UX ") == (
        "karier",
        "data",
        "science",
        "ui",
        "ux",
    )


def test_underscore_splits_words() -> None:
    assert search_terms("data_science") == ("data", "science")


def test_indonesian_and_other_letters_are_word_characters() -> None:
    assert search_terms("Bagaimana jurusan Teknik Informatika?") == (
        "bagaimana",
        "jurusan",
        "teknik",
        "informatika",
    )
    assert search_terms("Kafé Ärzte ÇAĞ") == ("kafé", "ärzte", "çağ")


def test_digits_are_word_characters() -> None:
    assert search_terms("SMA 3 kelas12 2024") == ("sma", "3", "kelas12", "2024")


def test_duplicates_are_dropped_keeping_first_order() -> None:
    assert search_terms("data Karier DATA karier data") == ("data", "karier")


def test_at_most_max_terms_extra_words_ignored() -> None:
    words = [f"kata{i}" for i in range(MAX_TERMS + 3)]
    assert search_terms(" ".join(words)) == tuple(words[:MAX_TERMS])


def test_duplicates_do_not_count_towards_max_terms() -> None:
    words = [f"kata{i}" for i in range(MAX_TERMS)]
    query = " ".join(["kata0", "kata0", *words, "lebih"])
    assert search_terms(query) == tuple(words)


def test_a_query_of_exactly_max_length_is_accepted() -> None:
    query = "a" * MAX_QUERY_LENGTH
    assert len(query) == 200
    assert search_terms(query) == (query,)


@pytest.mark.parametrize("query", ["", "   ", "?!., -- ...", "___", "\n\t"])
def test_a_query_without_a_word_is_rejected(query: str) -> None:
    with pytest.raises(ValidationError) as caught:
        search_terms(query)
    assert caught.value.code == "VALIDATION_ERROR"
    assert caught.value.details is not None
    assert caught.value.details["field"] == "q"


def test_a_query_longer_than_max_length_is_rejected() -> None:
    with pytest.raises(ValidationError) as caught:
        search_terms("a" * (MAX_QUERY_LENGTH + 1))
    assert caught.value.details is not None
    assert caught.value.details["field"] == "q"


def test_a_long_query_is_rejected_even_with_words() -> None:
    with pytest.raises(ValidationError, match=str(MAX_QUERY_LENGTH)):
        search_terms("karier " + " " * MAX_QUERY_LENGTH)


@given(st.text(max_size=MAX_QUERY_LENGTH))
def test_terms_invariants(query: str) -> None:
    words = _words(query)
    assume(words)
    terms = search_terms(query)
    assert 1 <= len(terms) <= MAX_TERMS
    assert len(set(terms)) == len(terms)
    assert list(terms) == list(dict.fromkeys(words))[:MAX_TERMS]
    # A query always finds itself, in the in-memory store at least.
    assert matches(query, terms)


# --- tsquery -------------------------------------------------------------------------


def test_tsquery_ands_quoted_prefix_lexemes() -> None:
    assert tsquery(("kar", "data")) == "'kar':* & 'data':*"
    assert tsquery(["karier"]) == "'karier':*"


def test_tsquery_of_search_terms() -> None:
    assert tsquery(search_terms("Karier & data | !science")) == (
        "'karier':* & 'data':* & 'science':*"
    )


def test_tsquery_doubles_a_quote_inside_a_term() -> None:
    assert tsquery(["o'brien"]) == "'o''brien':*"
    assert tsquery(["'"]) == "'''':*"


def test_tsquery_doubles_a_backslash_inside_a_term() -> None:
    assert tsquery(["a\\"]) == "'a\\\\':*"


def test_tsquery_operators_in_a_term_stay_inside_its_literal() -> None:
    assert tsquery(["a' | 'b", "c"]) == "'a'' | ''b':* & 'c':*"


def test_tsquery_rejects_no_terms_and_empty_terms() -> None:
    with pytest.raises(ValueError, match="at least one term"):
        tsquery([])
    with pytest.raises(ValueError, match="empty"):
        tsquery(["kar", ""])


def _lexemes(query: str) -> list[str]:
    """Reads back a tsquery of ANDed quoted prefix lexemes, undoing the escapes."""
    out: list[str] = []
    i = 0
    while True:
        assert query[i] == "'"
        i += 1
        lexeme: list[str] = []
        while True:
            ch = query[i]
            if ch == "\\":
                lexeme.append(query[i + 1])
                i += 2
            elif ch == "'" and query[i + 1 : i + 2] == "'":
                lexeme.append("'")
                i += 2
            elif ch == "'":
                i += 1
                break
            else:
                lexeme.append(ch)
                i += 1
        out.append("".join(lexeme))
        assert query[i : i + 2] == ":*"
        i += 2
        if i == len(query):
            return out
        assert query[i : i + 3] == " & "
        i += 3


@given(st.lists(st.text(min_size=1), min_size=1, max_size=MAX_TERMS))
def test_tsquery_structure_cannot_be_changed_by_a_term(terms: list[str]) -> None:
    assert _lexemes(tsquery(terms)) == terms


# --- matches -------------------------------------------------------------------------


def test_a_term_matches_as_a_prefix_of_a_word() -> None:
    assert matches("Saya tertarik karier di bidang data.", ["kar"])
    assert matches("Saya tertarik karier di bidang data.", ["karier"])
    assert not matches("Saya tertarik karier di bidang data.", ["arier"])
    assert not matches("Saya tertarik karier di bidang data.", ["karierku"])


def test_all_terms_must_match() -> None:
    content = "Saya tertarik karier di bidang data."
    assert matches(content, ["kar", "dat"])
    assert not matches(content, ["kar", "desain"])


def test_matching_ignores_case() -> None:
    assert matches("KARIER Data", ["kar", "data"])
    assert matches("karier", ["KAR"])


def test_matching_uses_the_same_words_as_terms() -> None:
    assert matches("data_science", search_terms("science"))
    assert matches("jurusan-teknik", search_terms("tek"))
    assert matches("kelas12", search_terms("kelas1"))
    assert not matches("kelas12", search_terms("12"))


def test_no_terms_match_everything() -> None:
    assert matches("apa saja", [])


_word_text = st.text(st.characters(categories=["Ll", "Lu", "Nd"]), min_size=1, max_size=8)


@given(st.text(max_size=80), st.lists(_word_text, max_size=4))
def test_matches_iff_each_term_prefixes_some_word(content: str, terms: list[str]) -> None:
    words = _words(content)
    expected = all(any(w.startswith(_fold(t)) for w in words) for t in terms)
    assert matches(content, terms) is expected


@given(st.lists(_word_text, min_size=1, max_size=10), st.data())
def test_a_prefix_of_any_word_is_found(words: list[str], data: st.DataObject) -> None:
    content = " ".join(words)
    word = data.draw(st.sampled_from(_WORD.findall(content)))
    prefix = word[: data.draw(st.integers(1, len(word)))]
    assert matches(content, search_terms(prefix))


def test_a_capital_sigma_folds_the_same_at_a_word_end() -> None:
    assert search_terms("ΑΣ") == ("ασ",)
    assert matches("ΑΣΑ", search_terms("ΑΣ"))
    assert matches("ΑΣ", search_terms("ασα"[:2]))


# --- snippet -------------------------------------------------------------------------


def test_short_content_is_whole_on_one_line_with_marks() -> None:
    out = snippet("Saya  ingin\n\nkarier\tdi bidang Data.", search_terms("kar data"))
    assert out == "Saya ingin <mark>karier</mark> di bidang <mark>Data</mark>."


def test_the_whole_word_is_marked_not_the_punctuation() -> None:
    assert snippet("(Karier), data_science!", ["kar", "sci"]) == (
        "(<mark>Karier</mark>), data_<mark>science</mark>!"
    )


def test_a_late_hit_gets_a_window_with_a_leading_ellipsis() -> None:
    content = f"{_filler(60)} tentang karier saya {_filler(60, 'lagi')}"
    out = snippet(content, ["karier"])
    assert out.startswith("…")
    assert out.endswith("…")
    assert "<mark>karier</mark>" in out
    # A little context before the hit, not the content's start.
    plain = _plain(out)
    assert "isi0 " not in plain
    before = plain.index("karier")
    assert 0 < before <= SNIPPET_LENGTH // 2
    assert plain.split(" ")[-1].startswith("lagi")
    # Cut at word boundaries: the first and last words are whole words of the content.
    content_words = content.split(" ")
    assert plain.split(" ")[0] in content_words
    assert plain.split(" ")[-1] in content_words
    assert len(plain) <= SNIPPET_LENGTH
    assert len(plain) >= SNIPPET_LENGTH - 20
    assert plain in content


def test_a_hit_near_the_end_shows_the_end_without_a_trailing_ellipsis() -> None:
    content = f"{_filler(80)} akhirnya karier"
    out = snippet(content, ["kar"])
    assert out.startswith("…")
    assert out.endswith("<mark>karier</mark>")
    assert len(_plain(out)) >= SNIPPET_LENGTH - 20


def test_an_early_hit_starts_at_the_start_with_a_trailing_ellipsis() -> None:
    content = f"Karier {_filler(80)}"
    out = snippet(content, ["kar"])
    assert out.startswith("<mark>Karier</mark> isi0 isi1")
    assert out.endswith("…")
    plain = _plain(out)
    assert len(plain) <= SNIPPET_LENGTH
    assert plain.split(" ")[-1] in content.split(" ")


def test_content_is_escaped_and_marks_are_the_only_tags() -> None:
    content = "Tips <script>alert(\"karier\")</script> & <b>data</b> 'x'"
    out = snippet(content, ["kar", "data"])
    assert out == (
        "Tips &lt;script&gt;alert(&quot;<mark>karier</mark>&quot;)&lt;/script&gt;"
        " &amp; &lt;b&gt;<mark>data</mark>&lt;/b&gt; &#x27;x&#x27;"
    )
    assert "<script" not in out


def test_every_hit_word_in_the_window_is_marked() -> None:
    content = "Karier data, karierku dan Database; kartu? Data!"
    out = snippet(content, search_terms("kar data"))
    assert _marked(out) == ["Karier", "data", "karierku", "Database", "kartu", "Data"]


def test_no_hit_gives_the_start_of_the_content_without_marks() -> None:
    content = f"Awal  pesan\n{_filler(80)}"
    for terms in ([], ["tidakada"]):
        out = snippet(content, terms)
        assert out.startswith("Awal pesan isi0")
        assert out.endswith("…")
        assert "<mark>" not in out
        assert len(_plain(out)) <= SNIPPET_LENGTH


def test_a_single_long_word_is_cut_inside() -> None:
    content = "a" * (SNIPPET_LENGTH * 2)
    out = snippet(content, ["a"])
    assert out == f"<mark>{'a' * SNIPPET_LENGTH}</mark>…"


def test_empty_content_gives_an_empty_snippet() -> None:
    assert snippet("", ["kar"]) == ""
    assert snippet(" \n\t ", []) == ""


# Without "…" in the content, the snippet's ellipses are unambiguous.
_snippet_text = st.lists(
    st.one_of(
        st.sampled_from(list("<>&\"' \n\t_-.")),
        st.characters(codec="utf-8", exclude_characters="…"),
        st.sampled_from(["kar", "karier", "Data", "<script>", "</mark>", "<mark>", "a" * 50]),
    ),
    max_size=300,
).map("".join)


@given(_snippet_text, st.lists(_word_text, max_size=3))
def test_snippet_invariants(content: str, terms: list[str]) -> None:
    out = snippet(content, terms)
    one_line = " ".join(content.split())
    # Marks are the only tags.
    assert "<" not in _MARKS.sub(lambda m: m.group(1), out)
    assert ">" not in _MARKS.sub(lambda m: m.group(1), out)
    assert "\n" not in out
    # The text is a piece of the content on one line, at most SNIPPET_LENGTH long.
    plain = html.unescape(out.replace("<mark>", "").replace("</mark>", ""))
    plain = plain.removeprefix("…").removesuffix("…")
    assert plain in one_line
    assert len(plain) <= SNIPPET_LENGTH
    # Each mark wraps a hit word (or what is shown of it at the cut end).
    folded = [_fold(t) for t in terms]
    for marked in _marked(out):
        assert _WORD.fullmatch(marked)
        assert any(_fold(marked).startswith(t) for t in folded)
    # Whenever the content matches some term, the snippet shows a hit.
    if any(matches(content, [t]) for t in terms):
        assert _marked(out)
    else:
        assert "<mark>" not in out
