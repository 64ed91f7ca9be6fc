"""Numbers are kept exactly: the shared table (tests/data/numbers.json, the same for every SDK)
through a real plugin process, both servers, and `jsontext` on its own."""

from __future__ import annotations

import copy
import enum
import json
import math
import pickle
from collections.abc import Callable
from decimal import Decimal
from typing import Any

import pytest
from conftest import FIXTURES, REPO, Running

from hookvisor_plugin import ToolCall, decision, jsontext
from hookvisor_plugin.proto import pb2

SAMPLE = FIXTURES / "sample.py"
Start = Callable[..., Running]
TABLE: list[dict[str, str]] = json.loads((REPO / "tests" / "data" / "numbers.json").read_text())[
    "numbers"
]


class NumberText(str):
    """A number's text, as `texts` reads it."""


def texts(text: str) -> Any:
    """`text` decoded with every number left as its text (`NumberText`), to compare digits."""
    return json.loads(text, parse_int=NumberText, parse_float=NumberText)


def numbers_object() -> str:
    """`{"n0":CANONICAL0,...}`: the params_json a plugin receives for the table."""
    return "{" + ",".join(f'"n{i}":{n["canonical"]}' for i, n in enumerate(TABLE)) + "}"


def assert_numbers(got: dict[str, Any]) -> None:
    for i, number in enumerate(TABLE):
        text = got[f"n{i}"]
        assert isinstance(text, NumberText), (number["name"], text)
        assert text == number["canonical"], number["name"]


def table_call() -> ToolCall:
    """The view a plugin gets of the table's params."""
    request = pb2.BeforeToolCallRequest(tool_name="x", params_json=numbers_object())
    return ToolCall.from_proto(request)


def test_the_table_is_there() -> None:
    assert len(TABLE) >= 10
    assert {"-0.0", "12345678901234567890", "1e+400"} <= {n["canonical"] for n in TABLE}


@pytest.mark.parametrize("mode", ["sync", "aio"])
def test_a_rewrite_returns_every_number_with_its_text(mode: str, start: Start) -> None:
    plugin = start(SAMPLE, [mode])
    # "rewrite" answers decision.rewrite({**call.params, "rewritten": True}).
    rewritten = texts(plugin.call("rewrite", numbers_object()).params_json)
    assert_numbers(rewritten)
    assert rewritten["rewritten"] is True and len(rewritten) == len(TABLE) + 1

    # The session hook patches {"agent": ..., "seen": the metadata it got}.
    patched = plugin.plugin.BeforeSessionCreate(
        pb2.BeforeSessionCreateRequest(agent_id="main", session_metadata_json=numbers_object()),
        timeout=5,
    )
    assert_numbers(texts(patched.metadata_json)["seen"])


def test_what_a_plugin_author_receives() -> None:
    call = table_call()
    by_text = {n["canonical"]: call.params[f"n{i}"] for i, n in enumerate(TABLE)}
    # Integers are ints, exact at any size.
    assert by_text["12345678901234567890"] == 12345678901234567890
    assert type(by_text["12345678901234567890"]) is int
    assert type(by_text["42"]) is int
    # Anything with a fraction or an exponent is a Decimal with exactly its digits (a
    # JSONDecimal, which also keeps its text).
    assert by_text["0.1000000000000000000000000001"] == Decimal("0.1000000000000000000000000001")
    assert by_text["1.50"].as_tuple() == Decimal("1.50").as_tuple()
    assert by_text["1e+400"] == Decimal("1e400")
    assert by_text["-1e-400"] < 0
    # Negative zero stays negative, "-0" included (an int has no sign for zero).
    for text in ("-0.0", "-0"):
        zero = by_text[text]
        assert isinstance(zero, Decimal) and zero == 0 and zero.is_signed(), text
    for value in call.params.values():
        assert type(value) in (int, jsontext.JSONDecimal)
    assert isinstance(by_text["1e+3"], Decimal) and by_text["1e+3"].json_text == "1e+3"


def test_every_number_comes_back_with_its_value_and_text() -> None:
    call = table_call()
    sent = decision.rewrite({**call.params, "extra": "x"}).to_proto().params_json
    assert_numbers(texts(sent))
    # The same values read back, decimal by decimal (sign of zero included).
    again = jsontext.loads(sent)
    for key, value in call.params.items():
        assert again[key] == value and type(again[key]) is type(value)
        assert Decimal(again[key]).as_tuple() == Decimal(value).as_tuple()


@pytest.mark.parametrize("text", ["1e-5", "1.5E3", "15e-1", "0.0000000", "100e-2", "15e+2"])
def test_any_notation_read_is_written_back_unchanged(text: str) -> None:
    value = jsontext.loads(text)
    assert isinstance(value, jsontext.JSONDecimal) and value.json_text == text
    assert jsontext.dumps(value) == text
    assert jsontext.dumps(copy.deepcopy([value])) == f"[{text}]"
    assert jsontext.dumps(pickle.loads(pickle.dumps(value))) == text


@pytest.mark.parametrize(
    ("value", "written"),
    [
        (Decimal("1e-5"), "0.00001"),
        (Decimal("1.5E3"), "1.5e+3"),
        (Decimal("-0.0"), "-0.0"),
        (Decimal("0.0000000"), "0e-7"),
        (jsontext.loads("1.5") + 1, "2.5"),
        (jsontext.JSONDecimal("1.50"), "1.50"),
    ],
)
def test_a_decimal_made_by_the_plugin_is_written_as_str_writes_it(
    value: Decimal, written: str
) -> None:
    assert jsontext.dumps(value) == written
    assert Decimal(written).as_tuple() == value.as_tuple()


@pytest.mark.parametrize("text", ["1_000", " 1", "1.", ".5", "Infinity", "NaN", "0x1", "\u0661"])
def test_a_json_decimal_is_made_only_from_json_number_text(text: str) -> None:
    with pytest.raises(ValueError):
        jsontext.JSONDecimal(text)


def test_integers_past_the_int_conversion_limit_are_decimals() -> None:
    digits = "9" * 5000
    value = jsontext.loads(f"[{digits},-{digits}]")
    assert all(isinstance(v, Decimal) for v in value)
    assert jsontext.dumps(value) == f"[{digits},-{digits}]"


@pytest.mark.parametrize("text", ["NaN", "Infinity", "-Infinity", "[NaN]", "1.", "01", "{"])
def test_what_is_not_json_is_refused(text: str) -> None:
    with pytest.raises(ValueError):
        jsontext.loads(text)


class Color(enum.IntEnum):
    RED = 1


@pytest.mark.parametrize(
    "value",
    [
        {"a": [1, 2.5, -0.0, 1e300, 5e-324, True, False, None, 'é\n"\\', (3, 4)]},
        {7: "int key", 2.5: "float key", True: "t", None: "n", "s": Color.RED},
        [[], {}, "", 0, -1, 2**70],
        "plain",
    ],
)
def test_dumps_writes_what_json_dumps_writes(value: Any) -> None:
    expected = json.dumps(value, separators=(",", ":"), ensure_ascii=False, allow_nan=False)
    assert jsontext.dumps(value) == expected


@pytest.mark.parametrize(
    ("value", "error"),
    [
        (math.nan, ValueError),
        ([math.inf], ValueError),
        (Decimal("NaN"), ValueError),
        ({"n": Decimal("-Infinity")}, ValueError),
        ({"s": {1, 2}}, TypeError),
        ({(1, 2): "tuple key"}, TypeError),
        (b"bytes", TypeError),
    ],
)
def test_dumps_refuses_what_json_cannot_hold(value: Any, error: type[Exception]) -> None:
    with pytest.raises(error):
        jsontext.dumps(value)


def test_dumps_refuses_a_circular_reference() -> None:
    loop: list[Any] = []
    loop.append(loop)
    with pytest.raises(ValueError, match="Circular"):
        jsontext.dumps({"loop": loop})
    shared = [1]
    assert jsontext.dumps([shared, shared]) == "[[1],[1]]"
