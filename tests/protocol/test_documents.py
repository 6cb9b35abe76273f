"""protocol.documents: bounded TOML and JSON parsing, one rule for every door (issue 11)."""

from __future__ import annotations

import contextlib

import pytest
from hypothesis import given
from hypothesis import strategies as st

from protocol.documents import (
    MAX_DOCUMENT_BYTES,
    MAX_NESTING,
    DocumentError,
    parse_json,
    parse_toml,
)

DEEP = MAX_NESTING + 1


@pytest.mark.parametrize(
    ("text", "parser"),
    [
        ("x = " + "[" * DEEP + "]" * DEEP, parse_toml),
        ("x = " + "{a = " * DEEP + "1" + "}" * DEEP, parse_toml),
        ("[" * DEEP + "]" * DEEP, parse_json),
        ('{"a":' * DEEP + "1" + "}" * DEEP, parse_json),
        # A string closing bracket between real ones must not hide the real nesting.
        ('["]",' * 5000 + "1" + "]" * 5000, parse_json),
        ("x = " + "['''x]''', " * 5000 + "1" + "]" * 5000, parse_toml),
    ],
    ids=[
        "toml-arrays",
        "toml-inline-tables",
        "json-arrays",
        "json-objects",
        "json-bracket-strings",
        "toml-literal-strings",
    ],
)
def test_deep_nesting_is_one_clear_error(text: str, parser: object) -> None:
    with pytest.raises(DocumentError, match="nested too deeply"):
        parser(text)  # type: ignore[operator]


@pytest.mark.parametrize(
    "text",
    [
        'a = "[[[[[[[[[[" # ]]]]\nb = 1',
        "a = '''\n" + "[" * 200 + "\n'''",
        'a = """' + "{" * 200 + '"""',
        "# " + "[" * 500 + "\nb = [[1, 2], [3]]",
    ],
    ids=["basic-string-and-comment", "multiline-literal", "multiline-basic", "comment"],
)
def test_brackets_in_strings_and_comments_are_not_nesting(text: str) -> None:
    assert isinstance(parse_toml(text), dict)


def test_a_document_over_the_size_bound_is_refused() -> None:
    with pytest.raises(DocumentError, match="too long"):
        parse_json(" " * (MAX_DOCUMENT_BYTES + 1))
    with pytest.raises(DocumentError, match="too long"):
        parse_toml("a = '" + "é" * (MAX_DOCUMENT_BYTES // 2 + 1) + "'")  # bytes, not chars
    assert parse_json("[1]", max_bytes=3) == [1]


def test_invalid_documents_name_the_format() -> None:
    with pytest.raises(DocumentError, match="not valid TOML"):
        parse_toml("a = = 1")
    with pytest.raises(DocumentError, match=r"not JSON: .* at line 1 column"):
        parse_json("{1}")


@given(st.text(alphabet="[]{}\"'#\\\n abc=,:1", max_size=300))
def test_any_text_parses_or_is_a_document_error(text: str) -> None:
    for parser in (parse_toml, parse_json):
        with contextlib.suppress(DocumentError):  # the one error family; others fail
            parser(text)


@pytest.mark.parametrize(
    ("parser", "text"),
    [(parse_json, '{"version":' + "9" * 5000 + "}"), (parse_toml, "version = " + "9" * 5000)],
    ids=["json", "toml"],
)
def test_an_integer_past_the_digit_limit_is_a_document_error(parser: object, text: str) -> None:
    # Found by the state-file fuzz harness (docs/fuzzing.md): Python refuses to convert an
    # integer of more than 4,300 digits with a plain ValueError, which escaped every door
    # that catches DocumentError (PumpDevice.restore raised ValueError, not SnapshotError).
    assert callable(parser)
    with pytest.raises(DocumentError, match="4300 digits"):
        parser(text)
