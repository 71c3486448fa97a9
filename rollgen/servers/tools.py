"""The tools of ``server=tool_use``: a calculator, unit conversion, date arithmetic and a lookup in bundled tables.

Each tool is a plain function of JSON arguments returning text; bad input raises ``ToolError`` with a message
the model can act on (the rollout unit sends it back as the tool's result). ``TOOL_SPECS`` are their OpenAI
function specs and ``TOOLS`` maps a name to its function.

* ``calculator(expression)``: arithmetic read with ``ast`` (no ``eval``): ``+ - * / // % **`` (``^`` means
  power), parentheses, ``pi``, ``e`` and ``sqrt abs round min max floor ceil log log10 exp sin cos tan``;
  numbers and exponents are capped so no expression can hang the server;
* ``convert_units(value, from_unit, to_unit)``: length, mass, temperature, volume, area, time and speed;
* ``add_days(date, days)``, ``weekday(date)``, ``days_between(start, end)``: ISO dates (``YYYY-MM-DD``);
* ``lookup(table, key, field)``: a row of the bundled ``countries`` (by name or ISO code) or ``elements`` (by
  name, symbol or atomic number) table, ``data/tool_tables.json``.

Numbers come back as integers when whole, else with 12 significant digits (``0.333333333333``).
"""

from __future__ import annotations

import ast
import datetime as dt
import json
import math
import operator
from collections.abc import Callable
from functools import cache
from pathlib import Path
from typing import Any

__all__ = ["TABLES_PATH", "TOOLS", "TOOL_SPECS", "ToolError", "fmt_number", "run_tool", "tables"]

TABLES_PATH = Path(__file__).resolve().parent / "data" / "tool_tables.json"


class ToolError(ValueError):
    """A tool call the tool cannot carry out; the message goes back to the model."""


def fmt_number(value: float | int) -> str:
    """A number as a tool returns it: an integer when whole (below 1e15), else 12 significant digits."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ToolError(f"not a number: {value!r}")
    if isinstance(value, float) and not math.isfinite(value):
        raise ToolError("the result is not a finite number")
    if float(value).is_integer() and abs(value) < 1e15:
        return str(int(value))
    return f"{value:.12g}"


# --- calculator -------------------------------------------------------------------------------------------------

_MAX_EXPRESSION = 500
_MAX_MAGNITUDE = 1e100  # larger intermediate values are refused (no 10**10**10 that runs for ever)
_BINARY: dict[type, Callable[[Any, Any], Any]] = {
    ast.Add: operator.add, ast.Sub: operator.sub, ast.Mult: operator.mul, ast.Div: operator.truediv,
    ast.FloorDiv: operator.floordiv, ast.Mod: operator.mod, ast.Pow: operator.pow}
_FUNCTIONS: dict[str, Callable[..., Any]] = {
    "sqrt": math.sqrt, "abs": abs, "round": round, "min": min, "max": max, "floor": math.floor, "ceil": math.ceil,
    "log": math.log, "log10": math.log10, "exp": math.exp, "sin": math.sin, "cos": math.cos, "tan": math.tan}
_CONSTANTS = {"pi": math.pi, "e": math.e}


def _checked(value: Any) -> Any:
    if isinstance(value, complex):
        raise ToolError("the result is not a real number")
    if abs(value) > _MAX_MAGNITUDE:
        raise ToolError("a value in the expression is too large (over 1e100)")
    return value


def _eval(node: ast.AST) -> Any:
    if isinstance(node, ast.Expression):
        return _eval(node.body)
    if isinstance(node, ast.Constant) and type(node.value) in (int, float):
        return _checked(node.value)
    if isinstance(node, ast.Name) and node.id in _CONSTANTS:
        return _CONSTANTS[node.id]
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, (ast.UAdd, ast.USub)):
        v = _eval(node.operand)
        return -v if isinstance(node.op, ast.USub) else v
    if isinstance(node, ast.BinOp) and type(node.op) in _BINARY:
        left, right = _eval(node.left), _eval(node.right)
        if isinstance(node.op, ast.Pow) and left not in (0, 1, -1) and abs(right * math.log10(abs(left))) > 100:
            raise ToolError("a power in the expression is too large (over 1e100)")
        try:
            return _checked(_BINARY[type(node.op)](left, right))
        except ZeroDivisionError:
            raise ToolError("division by zero") from None
        except OverflowError:
            raise ToolError("a value in the expression is too large") from None
    if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id in _FUNCTIONS and not node.keywords:
        args = [_eval(a) for a in node.args]
        if node.func.id == "round" and len(args) == 2 and abs(args[1]) > 15:
            raise ToolError("round: at most 15 digits")
        try:
            return _checked(_FUNCTIONS[node.func.id](*args))
        except (ValueError, TypeError) as e:
            raise ToolError(f"{node.func.id}{tuple(args)}: {e}") from None
        except OverflowError:
            raise ToolError(f"{node.func.id}: the result is too large") from None
    if isinstance(node, ast.Call) and isinstance(node.func, ast.Name):
        raise ToolError(f"unknown function {node.func.id!r}; the functions are {', '.join(_FUNCTIONS)}")
    if isinstance(node, ast.Name):
        raise ToolError(f"unknown name {node.id!r}: use numbers, {', '.join(_CONSTANTS)} and the functions "
                        f"{', '.join(_FUNCTIONS)}")
    raise ToolError(f"unsupported syntax: {ast.unparse(node)!r} (arithmetic only: + - * / // % ** and functions)")


def calculator(expression: str) -> str:
    """The value of an arithmetic expression."""
    text = expression.strip().replace("^", "**").replace("×", "*").replace("÷", "/")
    if not text:
        raise ToolError("empty expression")
    if len(text) > _MAX_EXPRESSION:
        raise ToolError(f"expression longer than {_MAX_EXPRESSION} characters")
    try:
        tree = ast.parse(text, mode="eval")
    except SyntaxError as e:
        raise ToolError(f"not an arithmetic expression: {e.msg} at column {e.offset}") from None
    return fmt_number(_eval(tree))


# --- unit conversion --------------------------------------------------------------------------------------------

# dimension -> unit -> (factor to the dimension's base unit, aliases)
_UNITS: dict[str, dict[str, tuple[float, tuple[str, ...]]]] = {
    "length": {"m": (1.0, ("meter", "meters", "metre", "metres")), "km": (1000.0, ("kilometer", "kilometers", "kilometre", "kilometres")),
               "cm": (0.01, ("centimeter", "centimeters", "centimetre", "centimetres")), "mm": (0.001, ("millimeter", "millimeters", "millimetre", "millimetres")),
               "mi": (1609.344, ("mile", "miles")), "yd": (0.9144, ("yard", "yards")), "ft": (0.3048, ("foot", "feet")),
               "in": (0.0254, ("inch", "inches")), "nmi": (1852.0, ("nautical mile", "nautical miles"))},
    "mass": {"kg": (1.0, ("kilogram", "kilograms")), "g": (0.001, ("gram", "grams")), "mg": (1e-6, ("milligram", "milligrams")),
             "t": (1000.0, ("tonne", "tonnes", "metric ton", "metric tons")), "lb": (0.45359237, ("pound", "pounds", "lbs")),
             "oz": (0.028349523125, ("ounce", "ounces")), "st": (6.35029318, ("stone", "stones"))},
    "volume": {"l": (1.0, ("liter", "liters", "litre", "litres")), "ml": (0.001, ("milliliter", "milliliters", "millilitre", "millilitres")),
               "m3": (1000.0, ("cubic meter", "cubic meters", "cubic metre", "cubic metres")),
               "gal": (3.785411784, ("gallon", "gallons", "us gallon", "us gallons")), "qt": (0.946352946, ("quart", "quarts")),
               "pt": (0.473176473, ("pint", "pints")), "cup": (0.2365882365, ("cups",)),
               "fl_oz": (0.0295735295625, ("fluid ounce", "fluid ounces", "fl oz"))},
    "area": {"m2": (1.0, ("square meter", "square meters", "square metre", "square metres")),
             "km2": (1e6, ("square kilometer", "square kilometers", "square kilometre", "square kilometres")),
             "mi2": (2589988.110336, ("square mile", "square miles")), "ha": (1e4, ("hectare", "hectares")),
             "acre": (4046.8564224, ("acres",)), "ft2": (0.09290304, ("square foot", "square feet"))},
    "time": {"s": (1.0, ("sec", "second", "seconds")), "min": (60.0, ("minute", "minutes")), "h": (3600.0, ("hr", "hour", "hours")),
             "day": (86400.0, ("days", "d")), "week": (604800.0, ("weeks", "wk"))},
    "speed": {"m/s": (1.0, ("meters per second", "metres per second", "mps")), "km/h": (1 / 3.6, ("kph", "kmh", "kilometers per hour", "kilometres per hour")),
              "mph": (0.44704, ("miles per hour", "mi/h")), "knot": (1852 / 3600, ("knots", "kn", "kt"))},
    "temperature": {"C": (1.0, ("celsius", "degc", "°c")), "F": (1.0, ("fahrenheit", "degf", "°f")), "K": (1.0, ("kelvin",))},
}
_ALIASES: dict[str, tuple[str, str]] = {
    alias.lower(): (dim, unit) for dim, units in _UNITS.items() for unit, (_, aliases) in units.items()
    for alias in (unit, *aliases)}


def _unit(name: str) -> tuple[str, str]:
    key = " ".join(name.strip().lower().split())
    if key not in _ALIASES:
        raise ToolError(f"unknown unit {name!r}; known units: "
                        + "; ".join(f"{dim}: {', '.join(units)}" for dim, units in _UNITS.items()))
    return _ALIASES[key]


def _to_kelvin(value: float, unit: str) -> float:
    return {"C": value + 273.15, "F": (value - 32) * 5 / 9 + 273.15, "K": value}[unit]


def _from_kelvin(value: float, unit: str) -> float:
    return {"C": value - 273.15, "F": (value - 273.15) * 9 / 5 + 32, "K": value}[unit]


def convert_units(value: float, from_unit: str, to_unit: str) -> str:
    """``value`` in ``from_unit`` expressed in ``to_unit`` (the same dimension)."""
    (dim, src), (dim_to, dst) = _unit(from_unit), _unit(to_unit)
    if dim != dim_to:
        raise ToolError(f"cannot convert {dim} ({from_unit}) to {dim_to} ({to_unit})")
    if dim == "temperature":
        kelvin = _to_kelvin(float(value), src)
        if kelvin < 0:
            raise ToolError(f"{value} {from_unit} is below absolute zero")
        result = _from_kelvin(kelvin, dst)
    else:
        result = float(value) * _UNITS[dim][src][0] / _UNITS[dim][dst][0]
    return fmt_number(float(f"{result:.12g}"))


# --- dates ------------------------------------------------------------------------------------------------------

def _date(text: str, name: str) -> dt.date:
    try:
        return dt.date.fromisoformat(text.strip())
    except ValueError:
        raise ToolError(f"{name}: {text!r} is not a date as YYYY-MM-DD") from None


def add_days(date: str, days: int) -> str:
    """The date ``days`` after ``date`` (before it when negative), as YYYY-MM-DD."""
    try:
        return (_date(date, "date") + dt.timedelta(days=days)).isoformat()
    except OverflowError:
        raise ToolError("the resulting date is outside years 1-9999") from None


def weekday(date: str) -> str:
    """The day of the week of ``date`` (Monday, Tuesday, ...)."""
    return _date(date, "date").strftime("%A")


def days_between(start: str, end: str) -> str:
    """Days from ``start`` to ``end`` (negative when ``end`` is earlier)."""
    return str((_date(end, "end") - _date(start, "start")).days)


# --- lookup -----------------------------------------------------------------------------------------------------

@cache
def tables() -> dict[str, dict[str, Any]]:
    """The bundled tables: name -> ``{"key": [...key columns], "rows": [...]}``."""
    data = json.loads(TABLES_PATH.read_text(encoding="utf-8"))
    return {name: table for name, table in data.items() if not name.startswith("_")}


def lookup(table: str, key: str, field: str) -> str:
    """One field of one row of a bundled table, the row found by any of its key columns (case-insensitive)."""
    data = tables()
    if table not in data:
        raise ToolError(f"unknown table {table!r}; the tables are {', '.join(data)}")
    spec = data[table]
    wanted = key.strip().casefold()
    row = next((r for r in spec["rows"] if any(str(r[k]).casefold() == wanted for k in spec["key"])), None)
    if row is None:
        raise ToolError(f"no row {key!r} in table {table!r} (looked up by {', '.join(spec['key'])})")
    if field not in row:
        raise ToolError(f"no field {field!r} in table {table!r}; the fields are {', '.join(row)}")
    value = row[field]
    if value is None:
        raise ToolError(f"table {table!r} has no value of {field!r} for {key!r}")
    return fmt_number(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else str(value)


# --- specs ------------------------------------------------------------------------------------------------------

def _spec(name: str, description: str, properties: dict[str, Any]) -> dict[str, Any]:
    return {"type": "function", "function": {"name": name, "description": description, "parameters": {
        "type": "object", "properties": properties, "required": list(properties), "additionalProperties": False}}}


def _all_units() -> list[str]:
    return [unit for units in _UNITS.values() for unit in units]


_DATE = {"type": "string", "description": "a date as YYYY-MM-DD"}
TOOL_SPECS: list[dict[str, Any]] = [
    _spec("calculator", "Evaluate an arithmetic expression: + - * / // % ** (or ^), parentheses, pi, e, sqrt, abs, "
          "round, min, max, floor, ceil, log, log10, exp, sin, cos, tan.",
          {"expression": {"type": "string", "description": "e.g. (12.5 + 7) * 3"}}),
    _spec("convert_units", "Convert a quantity between units of length, mass, volume, area, time, speed or "
          "temperature (US customary gallons, cups and fluid ounces).",
          {"value": {"type": "number"}, "from_unit": {"type": "string", "description": f"one of {', '.join(_all_units())}"},
           "to_unit": {"type": "string", "description": "a unit of the same dimension"}}),
    _spec("add_days", "The date a number of days after (or, when negative, before) a date.",
          {"date": _DATE, "days": {"type": "integer"}}),
    _spec("weekday", "The day of the week of a date.", {"date": _DATE}),
    _spec("days_between", "The number of days from start to end (negative when end is earlier).",
          {"start": _DATE, "end": _DATE}),
    _spec("lookup", "Look up a field of a country (by name or ISO alpha-3 code; fields: capital, continent, "
          "population, area_km2, currency, calling_code) or of a chemical element (by name, symbol or atomic "
          "number; fields: symbol, atomic_number, atomic_mass, group, period, melting_point_c, boiling_point_c).",
          {"table": {"type": "string", "enum": ["countries", "elements"]}, "key": {"type": "string"},
           "field": {"type": "string"}}),
]
TOOLS: dict[str, Callable[..., str]] = {
    "calculator": calculator, "convert_units": convert_units, "add_days": add_days, "weekday": weekday,
    "days_between": days_between, "lookup": lookup}


def run_tool(name: str, arguments: dict[str, Any]) -> str:
    """Run tool ``name`` on arguments already checked against its spec. ``ToolError`` when it cannot."""
    if name not in TOOLS:
        raise ToolError(f"unknown tool {name!r}; the tools are {', '.join(TOOLS)}")
    return TOOLS[name](**arguments)
