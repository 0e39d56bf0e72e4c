"""MoleculeNet CSVs in their original column conventions, with a preset per data set."""
from __future__ import annotations

from dataclasses import dataclass

from .base import TargetSpec, read_csv_header
from .tabular import CsvSource

C, R = "classification", "regression"

TOX21 = ["NR-AR", "NR-AR-LBD", "NR-AhR", "NR-Aromatase", "NR-ER", "NR-ER-LBD", "NR-PPAR-gamma",
         "SR-ARE", "SR-ATAD5", "SR-HSE", "SR-MMP", "SR-p53"]
SIDER = ["Hepatobiliary disorders", "Metabolism and nutrition disorders", "Product issues",
         "Eye disorders", "Investigations", "Musculoskeletal and connective tissue disorders",
         "Gastrointestinal disorders", "Social circumstances", "Immune system disorders",
         "Reproductive system and breast disorders",
         "Neoplasms benign, malignant and unspecified (incl cysts and polyps)",
         "General disorders and administration site conditions", "Endocrine disorders",
         "Surgical and medical procedures", "Vascular disorders",
         "Blood and lymphatic system disorders", "Skin and subcutaneous tissue disorders",
         "Congenital, familial and genetic disorders", "Infections and infestations",
         "Respiratory, thoracic and mediastinal disorders", "Psychiatric disorders",
         "Renal and urinary disorders", "Pregnancy, puerperium and perinatal conditions",
         "Ear and labyrinth disorders", "Cardiac disorders", "Nervous system disorders",
         "Injury, poisoning and procedural complications"]
MUV = ["MUV-466", "MUV-548", "MUV-600", "MUV-644", "MUV-652", "MUV-689", "MUV-692", "MUV-712",
       "MUV-713", "MUV-733", "MUV-737", "MUV-810", "MUV-832", "MUV-846", "MUV-852", "MUV-858",
       "MUV-859"]
ALL_OTHER_COLUMNS = None  # ToxCast: every column but the SMILES is an assay


@dataclass
class Preset:
    smiles_columns: tuple  # original name first; the first one the file has is used
    targets: list | None  # TargetSpec list, or ALL_OTHER_COLUMNS
    extra: dict  # other known label columns (selectable with --targets): name -> (unit, type)
    task_type: str = C


PRESETS = {
    "bbbp": Preset(("smiles",), [TargetSpec("p_np", "", C)], {}),
    "bace": Preset(("mol", "smiles"), [TargetSpec("Class", "", C)], {"pIC50": ("pIC50", R)}),
    "hiv": Preset(("smiles",), [TargetSpec("HIV_active", "", C)], {}),
    "clintox": Preset(("smiles",), [TargetSpec("FDA_APPROVED", "", C), TargetSpec("CT_TOX", "", C)], {}),
    "tox21": Preset(("smiles",), [TargetSpec(n, "", C) for n in TOX21], {}),
    "sider": Preset(("smiles",), [TargetSpec(n, "", C) for n in SIDER], {}),
    "toxcast": Preset(("smiles",), ALL_OTHER_COLUMNS, {}),
    "muv": Preset(("smiles",), [TargetSpec(n, "", C) for n in MUV], {}),
    "esol": Preset(("smiles",), [TargetSpec("measured log solubility in mols per litre", "log(mol/L)", R)],
                   {"ESOL predicted log solubility in mols per litre": ("log(mol/L)", R)}, R),
    "freesolv": Preset(("smiles",), [TargetSpec("expt", "kcal/mol", R)], {"calc": ("kcal/mol", R)}, R),
    "lipophilicity": Preset(("smiles",), [TargetSpec("exp", "logD", R)], {}, R),
}
ALIASES = {"lipo": "lipophilicity", "delaney": "esol", "sampl": "freesolv"}


def moleculenet_source(dataset: str, path: str, targets: list[str] | None = None,
                       fractions=(0.8, 0.1, 0.1)) -> CsvSource:
    """A CsvSource with the preset's columns and the scaffold split.

    `targets` selects label columns by name (e.g. ["CT_TOX"] for a ClinTox file that
    lacks FDA_APPROVED); by default all of the preset's are used.
    """
    key = ALIASES.get(dataset.lower(), dataset.lower())
    if key not in PRESETS:
        raise ValueError(f"unknown MoleculeNet data set {dataset!r}; known: {sorted(PRESETS)}")
    preset = PRESETS[key]
    header = read_csv_header(path)
    smiles_column = next((c for c in preset.smiles_columns if c in header), preset.smiles_columns[0])
    if preset.targets is ALL_OTHER_COLUMNS:
        known = {c: TargetSpec(c, "", preset.task_type) for c in header if c != smiles_column}
        default = list(known)
    else:
        known = {t.name: t for t in preset.targets}
        known.update({n: TargetSpec(n, unit, kind) for n, (unit, kind) in preset.extra.items()})
        default = [t.name for t in preset.targets]
    chosen = targets or default
    unknown = [n for n in chosen if n not in known]
    if unknown:
        raise ValueError(f"{key} has no target(s) {unknown}; its targets: {list(known)}")
    source = CsvSource(path, smiles_column, [known[n] for n in chosen], id_column=None,
                       split="scaffold", fractions=fractions,
                       hint="Select the target columns the file has with --targets.")
    source.name = f"moleculenet/{key}"
    return source
