"""Geometry of the synthetic TD1 card and TD3 passport data page: page size and resolution, and where the photo, the
field grid and the MRZ band are printed.

The document generator (veid_ml.data.documents) draws at these positions and the document reader
(veid_ml.document_reader) looks for text at them, so this is the one place they are written down: a layout change
here moves both. Lengths are millimetres from the page's top-left corner unless noted; PAGE turns them into pixels.
"""

# width px, height px, px per mm: TD1 85.6 x 54 mm (ID-1 card), TD3 125 x 88 mm (passport data page)
PAGE = {"TD1": (642, 405, 7.5), "TD3": (750, 528, 6.0)}

PHOTO = {"TD1": (4.0, 11.5, 19.5, 24.0), "TD3": (4.0, 12.0, 30.0, 38.5)}  # holder photo: x, y, width, height

# Field grid per layout: rows of (field, column start in mm from the field area's left edge).
ROWS = {
    "TD1": [[("surname", 0)], [("given_names", 0)], [("sex", 0), ("nationality", 12), ("birth_date", 30)],
            [("document_number", 0), ("expiry_date", 30)]],
    "TD3": [[("type", 0), ("code", 14), ("document_number", 30)], [("surname", 0)], [("given_names", 0)],
            [("nationality", 0)], [("birth_date", 0), ("sex", 40)], [("place_of_birth", 0)],
            [("issue_date", 0), ("authority", 40)], [("expiry_date", 0)]],
}


def _field_area(layout: str, row: float, label_size: float, value_offset: float, value_size: float) -> dict:
    """The grid starts 4 mm right of the photo, its first label 0.5 mm above the photo's top edge. Each row is `row`
    mm high: a label at the row's top, its value `value_offset` mm below; sizes are font sizes in mm."""
    x, y, w, _ = PHOTO[layout]
    return {"left": x + w + 4.0, "top": y - 0.5, "row": row, "label_size": label_size, "value_offset": value_offset,
            "value_size": value_size}


FIELD_AREA = {"TD1": _field_area("TD1", row=6.1, label_size=1.45, value_offset=1.9, value_size=2.6),
              "TD3": _field_area("TD3", row=7.0, label_size=1.7, value_offset=2.3, value_size=3.3)}
VALUE_RIGHT_MARGIN = 3.0  # a value's font shrinks until it ends at least this far from the right page edge

MRZ_LINES = {"TD1": 3, "TD3": 2}
MRZ_BAND = {"TD1": 17.5, "TD3": 16.0}  # height of the lightened clear zone, up from the bottom edge
MRZ_TOP = 2.2  # first MRZ line's top below the band's top edge
MRZ_LINE_GAP = {"TD1": 4.3, "TD3": 6.0}  # top of one MRZ line to the next
MRZ_PITCH = 2.54  # ICAO 9303 OCR-B character pitch; lines are centred on the page
