"""Contact sheets of every generator (`veid-ml contact-sheets`): what the models learn from, for a person to look at."""

from pathlib import Path

from veid_ml.data import attacks, documents, faces, textlines

GENERATORS = (faces, attacks, documents, textlines)


def write_all(out_dir: Path) -> list[str]:
    return [str(module.write_contact_sheets(out_dir)) for module in GENERATORS]
