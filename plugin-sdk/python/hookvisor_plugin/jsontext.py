"""JSON text to Python values and back, every number kept exactly.

The supervisor hands a plugin each number with the host's digits unchanged (its exponent written
`e+N` or `e-N`), and a plugin that returns the params it got, changed elsewhere, must return every
number with the same value. The standard `json` module would round `0.1000000000000000000000000001`
to the float `0.1`, `1e400` to `inf` and `-1e-400` to `-0.0`, so the SDK reads and writes JSON
with these two functions instead:

- `loads`: an integer is an `int` (exact at any size); a number with a fraction or an exponent is a
  `JSONDecimal`, a `decimal.Decimal` with exactly its digits that also remembers its text (`1.50`
  is `Decimal("1.50")`, `-0.0` is `Decimal("-0.0")`, `1e+400` is `Decimal("1E+400")`), never a
  `float`. Two integers an `int` cannot carry are `JSONDecimal`s too: `-0` (an `int` has no
  negative zero) and one of more digits than Python converts (`sys.get_int_max_str_digits()`,
  4300 by default). `NaN` and `Infinity`, which the `json` module accepts but JSON has not, are
  refused.
- `dumps`: compact JSON like `json.dumps(value, separators=(",", ":"), ensure_ascii=False,
  allow_nan=False)`, which also writes a `Decimal`: a `JSONDecimal` as the very text it was read
  from, any other `Decimal` (one you made, or the result of arithmetic) as its digits and exponent
  as `str` gives them, with a lower-case `e` (`Decimal("-0.0")` is `-0.0`, `Decimal("1E+3")` is
  `1e+3`). So every number read by `loads` is written back with its text unchanged.

Both are what the SDK uses for `params_json` and the metadata; use `dumps` for your own copies
(`json.dumps` refuses a `Decimal`).
"""

from __future__ import annotations

import json
import math
import re
from decimal import Decimal
from typing import Any

__all__ = ["JSONDecimal", "dumps", "loads"]

_NUMBER = re.compile(r"-?(?:0|[1-9][0-9]*)(?:\.[0-9]+)?(?:[eE][+-]?[0-9]+)?")


class JSONDecimal(Decimal):
    """A `Decimal` read from a JSON number, which keeps that number's text so that `dumps` writes
    it back unchanged (`Decimal` alone cannot tell `15e+2` from `1.5e+3`). It is a `Decimal` in
    every other way; arithmetic on it gives plain `Decimal`s. Make one to send a number with a
    text of your choice: `JSONDecimal("1.50")` (only JSON number text is accepted)."""

    __slots__ = ("_text",)
    _text: str

    def __new__(cls, text: str) -> JSONDecimal:
        if not isinstance(text, str) or not _NUMBER.fullmatch(text):
            raise ValueError(f"not a JSON number: {text!r}")
        number = super().__new__(cls, text)
        number._text = text
        return number

    @property
    def json_text(self) -> str:
        """The JSON text this number was made from."""
        return self._text

    def __reduce__(self) -> tuple[type[JSONDecimal], tuple[str]]:
        return (type(self), (self._text,))

    def __copy__(self) -> JSONDecimal:
        return self

    def __deepcopy__(self, memo: Any) -> JSONDecimal:
        return self


def _parse_int(text: str) -> int | JSONDecimal:
    if text == "-0":
        # The only integer text with a sign an int would drop.
        return JSONDecimal(text)
    try:
        return int(text)
    except ValueError:
        # More digits than int() converts (sys.get_int_max_str_digits()): a Decimal keeps them.
        return JSONDecimal(text)


def _refuse_constant(text: str) -> Any:
    raise ValueError(f"{text} is not a JSON value")


_DECODER = json.JSONDecoder(
    parse_float=JSONDecimal, parse_int=_parse_int, parse_constant=_refuse_constant
)


def loads(text: str) -> Any:
    """One JSON value from `text`, numbers kept exactly (see the module's doc); raises
    `ValueError` (a `json.JSONDecodeError` for bad syntax) when `text` is not one JSON value."""
    return _DECODER.decode(text)


def dumps(value: Any) -> str:
    """`value` as compact JSON text, a `Decimal` written exactly; raises `TypeError` for a value
    JSON has no form for and `ValueError` for NaN, an infinity or a circular reference, as
    `json.dumps(..., allow_nan=False)` does."""
    out: list[str] = []
    _encode(value, out, set())
    return "".join(out)


def _decimal_text(number: Decimal) -> str:
    """A `JSONDecimal`'s text; any other finite `Decimal` as `str` writes it, `e` in lower case."""
    if isinstance(number, JSONDecimal):
        return number.json_text
    if not number.is_finite():
        raise ValueError(f"Out of range decimal values are not JSON compliant: {number}")
    return str(number).replace("E", "e")


def _encode(value: Any, out: list[str], seen: set[int]) -> None:
    # The order of the checks is json.encoder's: bool before int (bool is an int), and the base
    # types' own repr for subclasses (an IntEnum writes its number).
    if value is None:
        out.append("null")
    elif value is True:
        out.append("true")
    elif value is False:
        out.append("false")
    elif isinstance(value, str):
        out.append(_string(value))
    elif isinstance(value, int):
        out.append(int.__repr__(value))
    elif isinstance(value, float):
        out.append(_float_text(value))
    elif isinstance(value, Decimal):
        out.append(_decimal_text(value))
    elif isinstance(value, dict):
        _enter(value, seen)
        out.append("{")
        for index, (key, item) in enumerate(value.items()):
            if index:
                out.append(",")
            out.append(_string(_key(key)))
            out.append(":")
            _encode(item, out, seen)
        out.append("}")
        seen.discard(id(value))
    elif isinstance(value, (list, tuple)):
        _enter(value, seen)
        out.append("[")
        for index, item in enumerate(value):
            if index:
                out.append(",")
            _encode(item, out, seen)
        out.append("]")
        seen.discard(id(value))
    else:
        raise TypeError(f"Object of type {type(value).__name__} is not JSON serializable")


def _enter(container: object, seen: set[int]) -> None:
    if id(container) in seen:
        raise ValueError("Circular reference detected")
    seen.add(id(container))


def _string(text: str) -> str:
    return json.dumps(text, ensure_ascii=False)


def _float_text(number: float) -> str:
    if not math.isfinite(number):
        raise ValueError(f"Out of range float values are not JSON compliant: {number!r}")
    return float.__repr__(number)


def _key(key: Any) -> str:
    # The keys json.dumps accepts, written as it writes them.
    if isinstance(key, str):
        return key
    if key is True:
        return "true"
    if key is False:
        return "false"
    if key is None:
        return "null"
    if isinstance(key, int):
        return int.__repr__(key)
    if isinstance(key, float):
        return _float_text(key)
    raise TypeError(f"keys must be str, int, float, bool or None, not {type(key).__name__}")
