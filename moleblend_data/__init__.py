"""Molecules to records and records on disk: featurization (RDKit + OGB), geometries,
conformers, pair relations, the record layout and the LMDB shards. Imports neither torch
nor fairseq, so that data preparation starts fast and runs where they are not installed;
the fairseq plugin (`moleblend_plugin`) reads what this package writes."""
