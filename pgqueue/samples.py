"""Sample files of every format, generated here, for ``pgqueue demo``: a two-page PDF drawing
(written by a small PDF writer of our own: reportlab is only a test dependency), a DXF plate
(ezdxf), an IFC storey with walls (ifcopenshell.api) and a STEP assembly (ISO 10303-21 text).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


@dataclass(frozen=True)
class Sample:
    format: str
    path: Path
    options: dict[str, Any] = field(default_factory=dict)


def write_all(folder: Path) -> list[Sample]:
    folder.mkdir(parents=True, exist_ok=True)
    pdf = folder / "bracket_drawing.pdf"
    pdf.write_bytes(pdf_document([_drawing_page(), _notes_page()]))
    dxf = folder / "mounting_plate.dxf"
    write_dxf(dxf)
    ifc = folder / "office_storey.ifc"
    write_ifc(ifc)
    step = folder / "bolted_assembly.step"
    step.write_text(STEP_ASSEMBLY, encoding="ascii")
    return [
        Sample("pdf", pdf, {"tables": True}),
        Sample("dxf", dxf),
        Sample("ifc", ifc, {"spatial": True, "properties": True}),
        Sample("step", step),
    ]


# --- PDF: a minimal writer --------------------------------------------------------------------


class Page:
    """One A4 landscape page of text (Helvetica, WinAnsi) and stroked lines, in points."""

    def __init__(self) -> None:
        self.operations: list[bytes] = []

    def text(self, x: float, y: float, size: float, text: str) -> None:
        escaped = text.encode("cp1252").replace(b"\\", b"\\\\").replace(b"(", b"\\(").replace(b")", b"\\)")
        self.operations.append(b"BT /F1 %.1f Tf %.1f %.1f Td (%s) Tj ET" % (size, x, y, escaped))

    def line(self, x0: float, y0: float, x1: float, y1: float) -> None:
        self.operations.append(b"%.1f %.1f m %.1f %.1f l S" % (x0, y0, x1, y1))

    def grid(self, x: float, y: float, widths: Sequence[float], height: float, rows: Sequence[Sequence[str]]) -> None:
        """A ruled table with its top left corner at (x, y)."""
        total = sum(widths)
        for index in range(len(rows) + 1):
            self.line(x, y - index * height, x + total, y - index * height)
        edge = x
        for width in (0, *widths):
            edge += width
            self.line(edge, y, edge, y - len(rows) * height)
        for row_index, row in enumerate(rows):
            left = x
            for width, cell in zip(widths, row, strict=True):
                self.text(left + 4, y - (row_index + 1) * height + 5, 9, cell)
                left += width

    def content(self) -> bytes:
        return b"0.8 w\n" + b"\n".join(self.operations)


def pdf_document(pages: Sequence[Page]) -> bytes:
    """A complete PDF 1.4 file: catalog, page tree, one font, the pages, a cross-reference table."""
    kids = " ".join(f"{4 + 2 * index} 0 R" for index in range(len(pages)))
    bodies = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        f"<< /Type /Pages /Kids [{kids}] /Count {len(pages)} >>".encode(),
        b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica /Encoding /WinAnsiEncoding >>",
    ]
    for index, page in enumerate(pages):
        content = page.content()
        bodies.append(
            f"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 842 595] /Resources << /Font << /F1 3 0 R >> >> "
            f"/Contents {5 + 2 * index} 0 R >>".encode()
        )
        bodies.append(b"<< /Length %d >>\nstream\n" % len(content) + content + b"\nendstream")
    document = bytearray(b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n")
    offsets = []
    for number, body in enumerate(bodies, start=1):
        offsets.append(len(document))
        document += b"%d 0 obj\n" % number + body + b"\nendobj\n"
    xref_at = len(document)
    document += b"xref\n0 %d\n0000000000 65535 f \n" % (len(bodies) + 1)
    for offset in offsets:
        document += b"%010d 00000 n \n" % offset
    document += b"trailer\n<< /Size %d /Root 1 0 R >>\nstartxref\n%d\n" % (len(bodies) + 1, xref_at)
    return bytes(document) + b"%%EOF\n"


def _drawing_page() -> Page:
    page = Page()
    page.line(40, 80, 400, 80)  # the part's outline
    page.line(400, 80, 400, 320)
    page.line(400, 320, 40, 320)
    page.line(40, 320, 40, 80)
    page.text(200, 60, 10, "120 ±0.2")
    page.text(410, 200, 10, "80")
    page.text(120, 240, 10, "Ø12 H7")
    page.text(300, 240, 10, "R5")
    page.text(40, 560, 16, "BRACKET, GENERAL ARRANGEMENT")
    page.grid(560, 300, (40, 130, 40), 18, [
        ("POS", "PART", "QTY"), ("1", "BRACKET PLATE", "1"), ("2", "HEX BOLT M8X20", "4"),
        ("3", "WASHER M8", "4"),
    ])
    page.grid(560, 160, (90, 130), 18, [
        ("DRAWING NO:", "DEMO-1001"), ("TITLE:", "BRACKET"), ("REVISION:", "A"),
        ("SCALE:", "1:2"), ("MATERIAL:", "S235JR"), ("SHEET:", "1/2"),
    ])
    return page


def _notes_page() -> Page:
    page = Page()
    page.text(40, 540, 14, "NOTES")
    page.text(40, 510, 10, "1. ALL DIMENSIONS IN MM.")
    page.text(40, 490, 10, "2. BREAK ALL SHARP EDGES 0.5 X 45°.")
    page.text(40, 470, 10, "3. GENERAL TOLERANCES ISO 2768-m.")
    return page


# --- DXF --------------------------------------------------------------------------------------


def write_dxf(path: Path) -> None:
    import ezdxf

    document = ezdxf.new("R2018", setup=True)
    document.layers.add("CONTOUR", color=7)
    document.layers.add("HOLES", color=4)
    document.layers.add("DIMENSIONS", color=1)
    document.layers.add("TEXT", color=3)
    space = document.modelspace()
    space.add_lwpolyline([(0, 0), (120, 0), (120, 80), (0, 80)], close=True,
                         dxfattribs={"layer": "CONTOUR"})
    for x, y in ((15, 15), (105, 15), (105, 65), (15, 65)):
        space.add_circle((x, y), 4.5, dxfattribs={"layer": "HOLES"})
    # Drawn in millimetres and shown as drawn: ezdxf's own EZDXF style scales the displayed
    # measurement by 100 (DIMLFAC), which would show 12000 on a 120 mm plate.
    shown_as_drawn = {"dimlfac": 1}
    space.add_linear_dim(base=(0, -15), p1=(0, 0), p2=(120, 0), override=shown_as_drawn,
                         dxfattribs={"layer": "DIMENSIONS"}).render()
    space.add_linear_dim(base=(-15, 0), p1=(0, 0), p2=(0, 80), angle=90, override=shown_as_drawn,
                         dxfattribs={"layer": "DIMENSIONS"}).render()
    space.add_diameter_dim(center=(15, 65), radius=4.5, angle=45, override=shown_as_drawn,
                           dxfattribs={"layer": "DIMENSIONS"}).render()
    space.add_text("MOUNTING PLATE", height=5, dxfattribs={"layer": "TEXT"}).set_placement((0, 95))
    space.add_text("MATERIAL: S235JR  THICKNESS 8", height=3,
                   dxfattribs={"layer": "TEXT"}).set_placement((0, 88))
    document.saveas(path)


# --- IFC --------------------------------------------------------------------------------------


def write_ifc(path: Path) -> None:
    import ifcopenshell.api.aggregate
    import ifcopenshell.api.context
    import ifcopenshell.api.project
    import ifcopenshell.api.pset
    import ifcopenshell.api.root
    import ifcopenshell.api.spatial
    import ifcopenshell.api.unit

    model = ifcopenshell.api.project.create_file(version="IFC4")
    project = ifcopenshell.api.root.create_entity(model, ifc_class="IfcProject", name="pgqueue demo")
    ifcopenshell.api.unit.assign_unit(model)
    ifcopenshell.api.context.add_context(model, context_type="Model")
    site = ifcopenshell.api.root.create_entity(model, ifc_class="IfcSite", name="Site")
    building = ifcopenshell.api.root.create_entity(model, ifc_class="IfcBuilding", name="Office")
    storey = ifcopenshell.api.root.create_entity(model, ifc_class="IfcBuildingStorey", name="Ground floor")
    ifcopenshell.api.aggregate.assign_object(model, products=[site], relating_object=project)
    ifcopenshell.api.aggregate.assign_object(model, products=[building], relating_object=site)
    ifcopenshell.api.aggregate.assign_object(model, products=[storey], relating_object=building)
    elements = [
        ifcopenshell.api.root.create_entity(model, ifc_class=ifc_class, name=name)
        for ifc_class, name in (
            ("IfcWall", "North wall"), ("IfcWall", "East wall"), ("IfcWall", "South wall"),
            ("IfcWall", "West wall"), ("IfcSlab", "Floor slab"), ("IfcDoor", "Entrance"),
        )
    ]
    ifcopenshell.api.spatial.assign_container(model, products=elements, relating_structure=storey)
    for wall in elements[:4]:
        pset = ifcopenshell.api.pset.add_pset(model, product=wall, name="Pset_WallCommon")
        ifcopenshell.api.pset.edit_pset(model, pset=pset, properties={"FireRating": "REI60", "IsExternal": True})
    model.write(str(path))


# --- STEP -------------------------------------------------------------------------------------

# An AP214 assembly: a plate and two bolts, in millimetres, without geometry.
STEP_ASSEMBLY = """ISO-10303-21;
HEADER;
FILE_DESCRIPTION(('pgqueue demo: bolted assembly'),'2;1');
FILE_NAME('bolted_assembly.step','2026-01-01T00:00:00',('pgqueue demo'),('pgqueue'),
  'pgqueue demo writer','pgqueue','');
FILE_SCHEMA(('AUTOMOTIVE_DESIGN { 1 0 10303 214 1 1 1 1 }'));
ENDSEC;
DATA;
#1=APPLICATION_CONTEXT('core data for automotive mechanical design processes');
#2=APPLICATION_PROTOCOL_DEFINITION('international standard','automotive_design',2000,#1);
#3=PRODUCT_CONTEXT('',#1,'mechanical');
#4=PRODUCT_DEFINITION_CONTEXT('part definition',#1,'design');
#5=(LENGTH_UNIT()NAMED_UNIT(*)SI_UNIT(.MILLI.,.METRE.));
#6=(NAMED_UNIT(*)PLANE_ANGLE_UNIT()SI_UNIT($,.RADIAN.));
#7=(NAMED_UNIT(*)SI_UNIT($,.STERADIAN.)SOLID_ANGLE_UNIT());
#8=UNCERTAINTY_MEASURE_WITH_UNIT(LENGTH_MEASURE(1.E-07),#5,'distance_accuracy_value','');
#9=(GEOMETRIC_REPRESENTATION_CONTEXT(3)GLOBAL_UNCERTAINTY_ASSIGNED_CONTEXT((#8))
  GLOBAL_UNIT_ASSIGNED_CONTEXT((#5,#6,#7))REPRESENTATION_CONTEXT('',''));
#10=CARTESIAN_POINT('',(0.,0.,0.));
#11=DIRECTION('',(0.,0.,1.));
#12=DIRECTION('',(1.,0.,0.));
#13=AXIS2_PLACEMENT_3D('',#10,#11,#12);
#20=PRODUCT('ASM-100','Bolted assembly','plate with two bolts',(#3));
#21=PRODUCT_DEFINITION_FORMATION('','',#20);
#22=PRODUCT_DEFINITION('design','',#21,#4);
#23=PRODUCT_DEFINITION_SHAPE('','',#22);
#24=SHAPE_REPRESENTATION('',(#13),#9);
#25=SHAPE_DEFINITION_REPRESENTATION(#23,#24);
#30=PRODUCT('PLT-200','Base plate','120 x 80 x 8',(#3));
#31=PRODUCT_DEFINITION_FORMATION('','',#30);
#32=PRODUCT_DEFINITION('design','',#31,#4);
#33=PRODUCT_DEFINITION_SHAPE('','',#32);
#34=SHAPE_REPRESENTATION('',(#13),#9);
#35=SHAPE_DEFINITION_REPRESENTATION(#33,#34);
#40=PRODUCT('BLT-M8','Hex bolt M8x20','ISO 4017',(#3));
#41=PRODUCT_DEFINITION_FORMATION('','',#40);
#42=PRODUCT_DEFINITION('design','',#41,#4);
#43=PRODUCT_DEFINITION_SHAPE('','',#42);
#44=SHAPE_REPRESENTATION('',(#13),#9);
#45=SHAPE_DEFINITION_REPRESENTATION(#43,#44);
#50=NEXT_ASSEMBLY_USAGE_OCCURRENCE('NAUO1','plate','',#22,#32,$);
#51=NEXT_ASSEMBLY_USAGE_OCCURRENCE('NAUO2','bolt 1','',#22,#42,$);
#52=NEXT_ASSEMBLY_USAGE_OCCURRENCE('NAUO3','bolt 2','',#22,#42,$);
ENDSEC;
END-ISO-10303-21;
"""
