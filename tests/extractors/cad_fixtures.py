"""Small IFC and STEP files made by the tests themselves, and the shared sample corpus.

Generated files hold known facts (names, counts, units) so the tests compare what the
extractors report with what was written, not with numbers copied from an earlier run.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def corpus_dir() -> Path | None:
    """The sample corpus (env ``PGQUEUE_CORPUS``, else ``../shared/corpus``), if present."""
    path = Path(os.environ.get("PGQUEUE_CORPUS", ROOT.parent / "shared" / "corpus"))
    return path if path.is_dir() else None


def corpus_file(relative: str) -> Path:
    """A corpus file; the calling test is skipped when the corpus is not on this machine."""
    corpus = corpus_dir()
    if corpus is None:
        pytest.skip("sample corpus not found (set PGQUEUE_CORPUS)")
    path = corpus / relative
    if not path.is_file():
        pytest.skip(f"{relative} is not in the sample corpus")
    return path


def corpus_files(pattern: str) -> list[str]:
    """Corpus paths matching ``pattern`` (relative), for parametrising; empty without corpus."""
    corpus = corpus_dir()
    if corpus is None:
        return []
    return sorted(str(path.relative_to(corpus)) for path in corpus.glob(pattern))


# --- STEP ------------------------------------------------------------------------------------


def step_file_text(
    schema: str,
    data: str,
    *,
    description: str = "('test part'),'2;1'",
    file_name: str = "'part.stp','2024-05-06T07:08:09',('Ada'),('ACME; Inc.'),'pre 1.0','CAD 9',''",
) -> str:
    """An ISO 10303-21 file with the given FILE_SCHEMA and data section text."""
    return (
        "ISO-10303-21;\nHEADER;\n"
        f"FILE_DESCRIPTION({description});\n"
        f"FILE_NAME({file_name});\n"
        f"FILE_SCHEMA(('{schema}'));\nENDSEC;\nDATA;\n{data}ENDSEC;\nEND-ISO-10303-21;\n"
    )


@dataclass
class StepAssembly:
    """Hand-written STEP data for a product tree, with what it holds for the assertions."""

    records: list[str] = field(default_factory=list)
    products: list[tuple[str, str, str]] = field(default_factory=list)  # id, name, description
    next_id: int = 100

    def new_id(self) -> int:
        self.next_id += 1
        return self.next_id

    def add(self, text: str) -> int:
        identifier = self.new_id()
        self.records.append(f"#{identifier}={text};\n")
        return identifier

    def product(self, product_id: str, name: str, description: str = "",
                formation_type: str = "PRODUCT_DEFINITION_FORMATION") -> int:
        """Write PRODUCT, its formation and definition; return the definition's id."""
        self.products.append((product_id, name, description))
        written = self.add(f"PRODUCT({_quoted(product_id)},{_quoted(name)},"
                           f"{_quoted(description)},(#2))")
        if formation_type == "PRODUCT_DEFINITION_FORMATION_WITH_SPECIFIED_SOURCE":
            formation = self.add(f"{formation_type}('1','',#{written},.NOT_KNOWN.)")
        else:
            formation = self.add(f"{formation_type}('1','',#{written})")
        return self.add(f"PRODUCT_DEFINITION('design','',#{formation},#3)")

    def use(self, parent: int, child: int, label: str) -> None:
        self.add(f"NEXT_ASSEMBLY_USAGE_OCCURRENCE({_quoted(label)},{_quoted(label)},'',"
                 f"#{parent},#{child},$)")

    def text(self, units: str) -> str:
        context = (
            "#1=APPLICATION_CONTEXT('mechanical design');\n"
            "#2=PRODUCT_CONTEXT('',#1,'mechanical');\n"
            "#3=PRODUCT_DEFINITION_CONTEXT('part definition',#1,'design');\n"
        )
        return context + units + "".join(self.records)


def _quoted(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


# Units as exporters write them: complex instances spread over lines, a representation context
# naming them. The length unit is #11.
MILLIMETRE_UNITS = """#11=( LENGTH_UNIT() NAMED_UNIT(*)
  SI_UNIT(.MILLI.,.METRE.) );
#12=( NAMED_UNIT(*) PLANE_ANGLE_UNIT() SI_UNIT($,.RADIAN.) );
#13=( NAMED_UNIT(*) SI_UNIT($,.STERADIAN.) SOLID_ANGLE_UNIT() );
#14=UNCERTAINTY_MEASURE_WITH_UNIT(LENGTH_MEASURE(1.E-07),#11,'distance_accuracy_value',
  'confusion; accuracy');
#15=( GEOMETRIC_REPRESENTATION_CONTEXT(3) GLOBAL_UNCERTAINTY_ASSIGNED_CONTEXT((#14))
  GLOBAL_UNIT_ASSIGNED_CONTEXT((#11,#12,#13)) REPRESENTATION_CONTEXT('Context #1',
  '3D Context with UNIT and UNCERTAINTY') );
"""

INCH_UNITS = """#10=DIMENSIONAL_EXPONENTS(1.,0.,0.,0.,0.,0.,0.);
#9=(LENGTH_UNIT()NAMED_UNIT(*)SI_UNIT($,.METRE.));
#8=LENGTH_MEASURE_WITH_UNIT(LENGTH_MEASURE(0.0254),#9);
#11=(CONVERSION_BASED_UNIT('INCH',#8)LENGTH_UNIT()NAMED_UNIT(#10));
#12=(NAMED_UNIT(*)PLANE_ANGLE_UNIT()SI_UNIT($,.RADIAN.));
#7=PLANE_ANGLE_MEASURE_WITH_UNIT(PLANE_ANGLE_MEASURE(0.0174532925),#12);
#6=(CONVERSION_BASED_UNIT('DEGREE',#7)NAMED_UNIT(#10)PLANE_ANGLE_UNIT());
#15=(GEOMETRIC_REPRESENTATION_CONTEXT(3)GLOBAL_UNIT_ASSIGNED_CONTEXT((#11,#6))
REPRESENTATION_CONTEXT('',''));
"""


# --- IFC -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class IfcModelFacts:
    """What ``write_ifc_model`` put into the file."""

    path: Path
    storeys: tuple[tuple[str, float], ...]
    walls_per_storey: int
    fire_ratings: tuple[str, ...]  # per wall, in creation order
    wall_length: float
    wall_volume: float
    layer_name: str


def write_ifc_model(path: Path, *, schema: str = "IFC4", walls_per_storey: int = 3) -> IfcModelFacts:
    """An IFC model: project > site > building > 2 storeys, walls with a pset and quantities,
    one slab per storey, millimetre units, a presentation layer holding the wall bodies."""
    import ifcopenshell.api as api

    model = api.run("project.create_file", version=schema)
    project = api.run("root.create_entity", model, ifc_class="IfcProject", name="Test Project")
    units = [
        api.run("unit.add_si_unit", model, unit_type="LENGTHUNIT", prefix="MILLI"),
        api.run("unit.add_si_unit", model, unit_type="AREAUNIT"),
        api.run("unit.add_conversion_based_unit", model, name="degree"),
    ]
    api.run("unit.assign_unit", model, units=units)
    context = api.run("context.add_context", model, context_type="Model")
    body = api.run("context.add_context", model, context_type="Model", context_identifier="Body",
                   target_view="MODEL_VIEW", parent=context)
    site = api.run("root.create_entity", model, ifc_class="IfcSite", name="Test Site")
    building = api.run("root.create_entity", model, ifc_class="IfcBuilding", name="Hall B")
    api.run("aggregate.assign_object", model, relating_object=project, products=[site])
    api.run("aggregate.assign_object", model, relating_object=site, products=[building])
    layer = api.run("layer.add_layer", model, name="A-WALL")
    storeys = (("Ground floor", 0.0), ("First floor", 3200.0))
    fire_ratings: list[str] = []
    wall_length, wall_height, wall_thickness = 4000.0, 3000.0, 250.0
    wall_volume = wall_length * wall_height * wall_thickness / 1e9  # m3, as a Qto holds it
    for storey_index, (storey_name, elevation) in enumerate(storeys):
        storey = api.run("root.create_entity", model, ifc_class="IfcBuildingStorey",
                         name=storey_name)
        storey.Elevation = elevation
        api.run("aggregate.assign_object", model, relating_object=building, products=[storey])
        for wall_index in range(walls_per_storey):
            wall = api.run("root.create_entity", model, ifc_class="IfcWall",
                           name=f"Wall {storey_index}.{wall_index}")
            api.run("spatial.assign_container", model, relating_structure=storey,
                    products=[wall])
            representation = api.run("geometry.add_wall_representation", model, context=body,
                                     length=wall_length, height=wall_height,
                                     thickness=wall_thickness)
            api.run("geometry.assign_representation", model, product=wall,
                    representation=representation)
            api.run("layer.assign_layer", model, items=[representation], layer=layer)
            rating = "REI90" if wall_index == 0 else "REI30"
            fire_ratings.append(rating)
            pset = api.run("pset.add_pset", model, product=wall, name="Pset_WallCommon")
            api.run("pset.edit_pset", model, pset=pset,
                    properties={"FireRating": rating, "IsExternal": wall_index == 0})
            quantities = api.run("pset.add_qto", model, product=wall,
                                 name="Qto_WallBaseQuantities")
            api.run("pset.edit_qto", model, qto=quantities,
                    properties={"Length": wall_length, "NetVolume": wall_volume})
        slab = api.run("root.create_entity", model, ifc_class="IfcSlab",
                       name=f"Slab {storey_index}")
        api.run("spatial.assign_container", model, relating_structure=storey, products=[slab])
    model.header.file_name.name = path.name
    model.header.file_name.author = ("Grace Hopper",)
    model.header.file_name.organization = ("Test Office",)
    model.write(str(path))
    return IfcModelFacts(
        path=path, storeys=storeys, walls_per_storey=walls_per_storey,
        fire_ratings=tuple(fire_ratings), wall_length=wall_length, wall_volume=wall_volume,
        layer_name="A-WALL",
    )
