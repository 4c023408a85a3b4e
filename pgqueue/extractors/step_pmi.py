"""Semantic PMI of AP242 files: dimensions and geometric tolerances, as ``dimensions``.

AP242 (ISO 10303-47 resources) states a dimension as a DIMENSIONAL_SIZE (of one feature:
``'diameter'``, ``'radius'``, ``'length'``...) or a DIMENSIONAL_LOCATION (between two), with
ANGULAR_ and _WITH_PATH variants. Its value comes through a DIMENSIONAL_CHARACTERISTIC_
REPRESENTATION to a SHAPE_DIMENSION_REPRESENTATION whose measure items are named ``'nominal
value'``, or ``'lower limit'`` and ``'upper limit'``; a PLUS_MINUS_TOLERANCE gives its bounds
(TOLERANCE_VALUE) or a fit (LIMITS_AND_FITS). A geometric tolerance (FLATNESS_TOLERANCE,
POSITION_TOLERANCE..., often a complex instance) holds its magnitude as a measure with unit.

References may point forward, so one pass keeps the few records involved and resolves them at
the end. A value that cannot be resolved with certainty (a missing record, two different
nominal values, a measure without a unit) is reported as ``value: None`` with a warning.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from pgqueue.extractors.step_reader import Enumeration, Reference, TypedValue, Value

MAX_DIMENSIONS = 5000

SIZE_TYPES = frozenset(
    {"DIMENSIONAL_SIZE", "ANGULAR_SIZE", "DIMENSIONAL_SIZE_WITH_PATH",
     "DIMENSIONAL_SIZE_WITH_DATUM_FEATURE"}
)
LOCATION_TYPES = frozenset(
    {"DIMENSIONAL_LOCATION", "ANGULAR_LOCATION", "DIMENSIONAL_LOCATION_WITH_PATH",
     "DIMENSIONAL_LOCATION_WITH_DATUM_FEATURE"}
)
GEOMETRIC_TOLERANCE_TYPES = frozenset(
    f"{name}_TOLERANCE" for name in (
        "ANGULARITY", "CIRCULAR_RUNOUT", "COAXIALITY", "CONCENTRICITY", "CYLINDRICITY",
        "FLATNESS", "LINE_PROFILE", "PARALLELISM", "PERPENDICULARITY", "POSITION",
        "ROUNDNESS", "STRAIGHTNESS", "SURFACE_PROFILE", "SYMMETRY", "TOTAL_RUNOUT",
    )
) | {"GEOMETRIC_TOLERANCE"}
# Simple records whose parameters the resolution needs.
PMI_TYPES = SIZE_TYPES | LOCATION_TYPES | GEOMETRIC_TOLERANCE_TYPES | frozenset({
    "DIMENSIONAL_CHARACTERISTIC_REPRESENTATION", "SHAPE_DIMENSION_REPRESENTATION",
    "MEASURE_REPRESENTATION_ITEM", "DESCRIPTIVE_REPRESENTATION_ITEM", "PLUS_MINUS_TOLERANCE",
    "TOLERANCE_VALUE", "LIMITS_AND_FITS", "MEASURE_WITH_UNIT", "LENGTH_MEASURE_WITH_UNIT",
    "PLANE_ANGLE_MEASURE_WITH_UNIT", "POSITIVE_LENGTH_MEASURE_WITH_UNIT",
})
# Partials that make a complex record worth keeping.
PMI_PARTIALS = SIZE_TYPES | LOCATION_TYPES | GEOMETRIC_TOLERANCE_TYPES | {"MEASURE_WITH_UNIT"}


@dataclass(frozen=True)
class _Measure:
    value: float | None
    unit: int | None  # the unit record
    name: str  # the representation item's name ('nominal value'...), '' when none


@dataclass(frozen=True)
class _Feature:
    """A dimension or a geometric tolerance, as written."""

    id: int
    kind: str  # dimensional_size, dimensional_location, geometric_tolerance
    entity: str  # the most specific entity name
    name: str
    magnitude: int | None = None  # tolerances: the measure record
    modifiers: tuple[str, ...] = ()


@dataclass
class PmiCollector:
    """Keeps what one pass over the records needs to state the PMI."""

    features: list[_Feature] = field(default_factory=list)
    measures: dict[int, _Measure] = field(default_factory=dict)
    notes: dict[int, str] = field(default_factory=dict)  # descriptive item -> its text
    representations: dict[int, list[int]] = field(default_factory=dict)  # rep -> items
    represented_by: dict[int, int] = field(default_factory=dict)  # dimension -> rep
    tolerance_of: dict[int, int] = field(default_factory=dict)  # dimension -> range record
    ranges: dict[int, tuple[Value, Value]] = field(default_factory=dict)  # lower, upper
    fits: dict[int, str] = field(default_factory=dict)  # LIMITS_AND_FITS -> 'H7'

    def add(self, record_id: int, entity: str, parameters: list[Value]) -> None:
        if entity in SIZE_TYPES:
            self._feature(record_id, "dimensional_size", entity, _at(parameters, 1))
        elif entity in LOCATION_TYPES:
            self._feature(record_id, "dimensional_location", entity, _at(parameters, 0))
        elif entity in GEOMETRIC_TOLERANCE_TYPES:
            self._tolerance(record_id, entity, parameters, ())
        elif entity == "DIMENSIONAL_CHARACTERISTIC_REPRESENTATION":
            dimension, representation = _at(parameters, 0), _at(parameters, 1)
            if isinstance(dimension, Reference) and isinstance(representation, Reference):
                self.represented_by[dimension.id] = representation.id
        elif entity == "SHAPE_DIMENSION_REPRESENTATION":
            self.representations[record_id] = _references(_at(parameters, 1))
        elif entity == "MEASURE_REPRESENTATION_ITEM":
            self.measures[record_id] = _measure(_at(parameters, 1), _at(parameters, 2),
                                                _at(parameters, 0))
        elif entity == "DESCRIPTIVE_REPRESENTATION_ITEM":
            self.notes[record_id] = f"{_text(_at(parameters, 0))}: {_text(_at(parameters, 1))}"
        elif entity == "PLUS_MINUS_TOLERANCE":
            bounds, dimension = _at(parameters, 0), _at(parameters, 1)
            if isinstance(bounds, Reference) and isinstance(dimension, Reference):
                self.tolerance_of[dimension.id] = bounds.id
        elif entity == "TOLERANCE_VALUE":
            self.ranges[record_id] = (_at(parameters, 0), _at(parameters, 1))
        elif entity == "LIMITS_AND_FITS":
            # form_variance, zone_variance, grade, source: 'H' + '7' reads as H7
            self.fits[record_id] = f"{_text(_at(parameters, 1))}{_text(_at(parameters, 2))}"
        else:  # a measure with unit
            self.measures[record_id] = _measure(_at(parameters, 0), _at(parameters, 1), None)

    def add_complex(self, record_id: int, partials: dict[str, list[Value]]) -> None:
        names = set(partials)
        if "GEOMETRIC_TOLERANCE" in names:
            entity = next((name for name in partials if name in GEOMETRIC_TOLERANCE_TYPES
                           and name != "GEOMETRIC_TOLERANCE"), "GEOMETRIC_TOLERANCE")
            modifiers = partials.get("GEOMETRIC_TOLERANCE_WITH_MODIFIERS", [])
            self._tolerance(record_id, entity, partials["GEOMETRIC_TOLERANCE"],
                            tuple(item.name.lower() for item in _list(_at(modifiers, 0))
                                  if isinstance(item, Enumeration)))
        elif names & SIZE_TYPES:
            size = partials.get("DIMENSIONAL_SIZE", [])
            entity = sorted(names & SIZE_TYPES, key=len)[-1]
            self._feature(record_id, "dimensional_size", entity, _at(size, 1))
        elif names & LOCATION_TYPES:
            entity = sorted(names & LOCATION_TYPES, key=len)[-1]
            relationship = partials.get("SHAPE_ASPECT_RELATIONSHIP", partials[entity])
            self._feature(record_id, "dimensional_location", entity, _at(relationship, 0))
        elif "MEASURE_WITH_UNIT" in names:
            measure = partials["MEASURE_WITH_UNIT"]
            item = partials.get("REPRESENTATION_ITEM", [])
            self.measures[record_id] = _measure(_at(measure, 0), _at(measure, 1), _at(item, 0))

    def _feature(self, record_id: int, kind: str, entity: str, name: Value) -> None:
        self.features.append(_Feature(record_id, kind, entity, _text(name)))

    def _tolerance(self, record_id: int, entity: str, parameters: list[Value],
                   modifiers: tuple[str, ...]) -> None:
        magnitude = _at(parameters, 2)
        self.features.append(_Feature(
            record_id, "geometric_tolerance", entity, _text(_at(parameters, 0)),
            magnitude.id if isinstance(magnitude, Reference) else None, modifiers,
        ))

    # --- results -----------------------------------------------------------------------------

    def dimensions(self, unit_names: dict[int, tuple[str, str]],
                   warnings: list[str]) -> list[dict[str, Any]]:
        resolver = _Resolver(self, unit_names)
        features = sorted(self.features, key=lambda feature: feature.id)
        if len(features) > MAX_DIMENSIONS:
            warnings.append(f"dimensions lists the first {MAX_DIMENSIONS} of {len(features)} "
                            "PMI dimensions and tolerances")
        found = [resolver.state(feature) for feature in features[:MAX_DIMENSIONS]]
        warnings.extend(resolver.warnings())
        return found


class _Resolver:
    """Follows a feature's references to its values, noting what could not be resolved."""

    def __init__(self, pmi: PmiCollector, unit_names: dict[int, tuple[str, str]]) -> None:
        self.pmi = pmi
        self.unit_names = unit_names
        self.uncertain: list[str] = []

    def state(self, feature: _Feature) -> dict[str, Any]:
        entry: dict[str, Any] = {
            "id": feature.id, "kind": feature.kind, "entity": feature.entity.lower(),
            "value": None, "unit": None, "tolerance": None,
            "dimension_type": _dimension_type(feature), "label": feature.name or None,
            "page": None,
        }
        if feature.kind == "geometric_tolerance":
            entry["characteristic"] = _characteristic(feature.entity)
            entry["modifiers"] = list(feature.modifiers)
            measure = self.pmi.measures.get(feature.magnitude or -1)
            self._set_value(entry, measure, feature, "its magnitude")
            return entry
        items = self.pmi.representations.get(self.pmi.represented_by.get(feature.id, -1))
        if items is None:
            self._doubt(feature, "no value is attached")
            return entry
        named = [self.pmi.measures[item] for item in items if item in self.pmi.measures]
        entry["notes"] = [self.pmi.notes[item] for item in items if item in self.pmi.notes]
        nominal = [measure for measure in named if measure.name in ("nominal value", "")]
        limits = {measure.name: measure for measure in named
                  if measure.name in ("lower limit", "upper limit")}
        distinct = {(measure.value, measure.unit) for measure in nominal}
        if len(distinct) == 1:
            self._set_value(entry, nominal[0], feature, "its value")
        elif len(limits) == 2 and not nominal:
            lower, upper = limits["lower limit"], limits["upper limit"]
            entry["lower_limit"], entry["upper_limit"] = lower.value, upper.value
            entry["unit"] = self._unit(lower.unit)
            entry["tolerance"] = f"{_number(lower.value)}..{_number(upper.value)}"
        else:
            self._doubt(feature, f"{len(distinct)} different nominal values")
        entry["tolerance"] = self._tolerance(feature, entry) or entry["tolerance"]
        return entry

    def _set_value(self, entry: dict[str, Any], measure: _Measure | None, feature: _Feature,
                   what: str) -> None:
        if measure is None or measure.value is None:
            self._doubt(feature, f"{what} cannot be read")
            return
        unit = self._unit(measure.unit)
        if unit is None:
            self._doubt(feature, f"{what} has no unit")
            return
        entry["value"], entry["unit"] = measure.value, unit

    def _tolerance(self, feature: _Feature, entry: dict[str, Any]) -> str | None:
        bounds = self.pmi.tolerance_of.get(feature.id)
        if bounds is None:
            return None
        if bounds in self.pmi.fits:
            return self.pmi.fits[bounds]
        lower, upper = self.pmi.ranges.get(bounds, (None, None))
        low = self.pmi.measures.get(lower.id) if isinstance(lower, Reference) else None
        high = self.pmi.measures.get(upper.id) if isinstance(upper, Reference) else None
        if low is None or high is None or low.value is None or high.value is None:
            self._doubt(feature, "its tolerance cannot be read")
            return None
        entry["lower_deviation"], entry["upper_deviation"] = low.value, high.value
        if low.value == -high.value:
            return f"±{_number(high.value)}"
        return f"{_number(high.value, '+')}/{_number(low.value, '+')}"

    def _unit(self, unit: int | None) -> str | None:
        found = self.unit_names.get(unit) if unit is not None else None
        return found[1] if found else None

    def _doubt(self, feature: _Feature, problem: str) -> None:
        self.uncertain.append(f"#{feature.id} {feature.entity.lower()}: {problem}")

    def warnings(self) -> list[str]:
        if not self.uncertain:
            return []
        listed = "; ".join(self.uncertain[:5])
        more = f" (and {len(self.uncertain) - 5} more)" if len(self.uncertain) > 5 else ""
        return [f"{len(self.uncertain)} PMI value(s) could not be read with certainty and are "
                f"given as null: {listed}{more}"]


def _dimension_type(feature: _Feature) -> str:
    if feature.kind == "geometric_tolerance":
        return "geometric_tolerance"
    if feature.entity.startswith("ANGULAR"):
        return "angular"
    name = feature.name.lower()
    for word in ("diameter", "radius"):
        if word in name:
            return word
    return "linear"


def _characteristic(entity: str) -> str | None:
    if entity == "GEOMETRIC_TOLERANCE":
        return None
    return entity.removesuffix("_TOLERANCE").lower().replace("_", " ")


def _measure(value: Value, unit: Value, name: Value) -> _Measure:
    number = value.value if isinstance(value, TypedValue) else None
    return _Measure(
        float(number) if isinstance(number, int | float) and not isinstance(number, bool)
        else None,
        unit.id if isinstance(unit, Reference) else None,
        _text(name).strip().lower(),
    )


def _number(value: float | None, sign: str = "") -> str:
    # 15 significant digits: every digit a writer gives, without float noise.
    return "?" if value is None else format(value, f"{sign}.15g")


def _at(values: list[Value], index: int) -> Value:
    return values[index] if index < len(values) else None


def _text(value: Value) -> str:
    return value if isinstance(value, str) else ""


def _list(value: Value) -> list[Value]:
    return value if isinstance(value, list) else []


def _references(value: Value) -> list[int]:
    return [item.id for item in _list(value) if isinstance(item, Reference)]


__all__ = ["PMI_PARTIALS", "PMI_TYPES", "PmiCollector"]
