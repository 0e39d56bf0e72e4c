"""Readers of raw molecule files, one module per kind of source."""
from .base import RawEntry, Source, TargetSpec
from .moleculenet import PRESETS, moleculenet_source
from .ogb_molecules import OgbMoleculeSource, ogb_datasets
from .pcqm4mv2 import Pcqm4mv2Source
from .qm9 import Qm9Source
from .tabular import CsvSource, SdfSource
