"""The build: featurize every row of a source (in parallel, resumably), split the
accepted molecules, and write shards, rejects.csv and, last, manifest.json."""
from __future__ import annotations

import collections
import contextlib
import fcntl
import json
import logging
import multiprocessing
import os
import shutil
import sys
import threading
import time
from dataclasses import asdict, dataclass, field

import numpy as np
from rdkit import Chem, RDLogger
from tqdm import tqdm

from moleblend_data.featurize import (FEATURIZATION_VERSION, FeaturizeOptions,
                                             RejectedMolecule, make_record, mol_from_molblock,
                                             mol_from_smiles, source_geometry_of)
from moleblend_data.geometry import GeometryMismatch, mol_from_xyz, same_molecule
from moleblend_data.molecule import Geometry
from moleblend_data.safe_files import create_new, refuse_link
from moleblend_data.shards import (FORMAT_VERSION, MANIFEST, ShardWriter, decode_record,
                                          encode_record, file_sha256, write_manifest)

from .journal import Journal
from .rejects import REJECTS_FILE, write_rejects
from .sources.base import RawEntry, Source
from .splits import murcko_scaffold

log = logging.getLogger("data_prep")
WORK_DIR = ".build"  # inside the output folder while a build is unfinished
LOCK_FILE = ".build.lock"  # held (flock) by the build writing the folder
# Results kept in flight per worker: enough to keep workers busy, small enough that
# memory does not depend on the size of the source.
WINDOW_PER_WORKER = 32
FLUSH_SECONDS = 2.0
LOG_SECONDS = 30.0


@dataclass
class BuildOptions:
    output: str
    workers: int = 1
    shard_size: int = 50_000
    featurize: FeaturizeOptions = field(default_factory=FeaturizeOptions)
    overwrite: bool = False
    limit: int = 0  # only the first `limit` rows (0 = all)
    progress: bool = True


# --- per-row work, run in worker processes -------------------------------------------

_options: FeaturizeOptions | None = None
_scaffolds = False


def _init_worker(options: FeaturizeOptions, scaffolds: bool) -> None:
    global _options, _scaffolds
    _options, _scaffolds = options, scaffolds
    RDLogger.DisableLog("rdApp.*")  # RDKit's complaints go to rejects.csv instead


def _molecule_of(entry: RawEntry):
    """The molecule and its source geometry (or None) of a raw entry (see `make_record`).

    A molfile is the molecule, read as RDKit's SDF reader reads it; where the source also
    gives a SMILES for it (PCQM4Mv2's training molecules), the two must be the same
    molecule. An XYZ geometry is joined to the SMILES by `make_record`."""
    if entry.molblock is not None or entry.geometry_block is not None:
        block = entry.molblock if entry.molblock is not None else entry.geometry_block
        mol = mol_from_molblock(block, remove_hs=not _options.with_hydrogens)
        if entry.smiles is not None:
            try:
                same_molecule(mol, mol_from_smiles(entry.smiles))
            except GeometryMismatch as error:
                raise RejectedMolecule("geometry_mismatch", str(error)) from None
        if entry.molblock_is_3d:
            return mol, mol
        return mol, source_geometry_of(mol)
    geometry = None
    if entry.xyz is not None:
        elements, xyz = entry.xyz
        try:
            geometry = mol_from_xyz(elements, np.asarray(xyz, dtype=np.float64).reshape(-1, 3))
        except ValueError as error:
            raise RejectedMolecule("geometry_mismatch", str(error)) from None
    return entry.smiles, geometry


def process_entry(entry: RawEntry):
    """('accepted', row, id, record bytes, scaffold) or ('rejected', row, reject dict)."""
    smiles_text = entry.smiles if entry.smiles is not None else ""
    try:
        if entry.reject is not None:
            raise RejectedMolecule(*entry.reject)
        molecule, geometry = _molecule_of(entry)
        if entry.smiles is None and entry.molblock is not None:
            smiles_text = Chem.MolToSmiles(Chem.RemoveHs(molecule, sanitize=False))
        record = make_record(molecule, _options, id=entry.id, targets=entry.targets,
                             geometry=geometry, seed=entry.row)
    except RejectedMolecule as error:
        return ("rejected", entry.row, {"row": entry.row, "id": entry.id, "reason": error.reason,
                                        "detail": error.detail[:200], "smiles": smiles_text})
    except Exception as error:  # one odd molecule must not end a build of millions
        # Recorded in rejects.csv and counted in the manifest under its own reason.
        return ("rejected", entry.row, {"row": entry.row, "id": entry.id,
                                        "reason": "featurization_error",
                                        "detail": f"{type(error).__name__}: {error}"[:200],
                                        "smiles": smiles_text})
    scaffold = murcko_scaffold(record.smiles) if _scaffolds else ""
    return ("accepted", entry.row, entry.id, encode_record(record), scaffold)


def _ordered_map(func, items, workers: int, initargs):
    """func over items in order, in `workers` processes, with a bounded number in flight."""
    if workers <= 1:
        _init_worker(*initargs)
        for item in items:
            yield func(item)
        return
    slots = threading.Semaphore(workers * WINDOW_PER_WORKER)
    stop = threading.Event()

    def feed():
        for item in items:
            while not slots.acquire(timeout=0.1):
                if stop.is_set():
                    return
            yield item

    context = multiprocessing.get_context("fork" if os.name == "posix" else "spawn")
    with context.Pool(workers, _init_worker, initargs) as pool:
        try:
            for result in pool.imap(func, feed(), chunksize=4):
                slots.release()
                yield result
        finally:
            stop.set()


# --- the build ------------------------------------------------------------------------

def _clear_output(output: str) -> None:
    for name in [MANIFEST, REJECTS_FILE] + sorted(os.listdir(output)):
        path = os.path.join(output, name)
        if name == MANIFEST or name == REJECTS_FILE or name.startswith("shard-"):
            if os.path.exists(path):
                os.remove(path)


class BuildLocked(RuntimeError):
    """Another build holds the output folder."""


@contextlib.contextmanager
def output_lock(output: str):
    """Hold an exclusive lock on the output folder for the whole build: two builds into one
    folder would interleave their journals and shards."""
    path = os.path.join(output, LOCK_FILE)
    refuse_link(path)
    fd = os.open(path, os.O_RDWR | os.O_CREAT | getattr(os, "O_NOFOLLOW", 0), 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise BuildLocked(f"another data_prep build is writing to {output} (it holds {LOCK_FILE}); "
                              "wait for it to finish or choose another --output") from None
        yield
    finally:
        os.close(fd)  # releases the lock


def build(source: Source, options: BuildOptions) -> dict:
    """Build (or resume building) the dataset of `source` in `options.output`; return its manifest."""
    os.makedirs(options.output, exist_ok=True)
    with output_lock(options.output):
        return _build(source, options)


def _build(source: Source, options: BuildOptions) -> dict:
    output = options.output
    if os.path.exists(os.path.join(output, MANIFEST)):
        if not options.overwrite:
            raise FileExistsError(f"{output} already holds a finished dataset (use --overwrite)")
        os.remove(os.path.join(output, MANIFEST))  # from here on, the folder reads as unfinished
        shutil.rmtree(os.path.join(output, WORK_DIR), ignore_errors=True)
    started = time.monotonic()
    files = [{"name": os.path.basename(p), "bytes": os.path.getsize(p), "sha256": file_sha256(p)}
             for p in source.files()]
    featurize = options.featurize
    fingerprint = {"format_version": FORMAT_VERSION, "featurization_version": FEATURIZATION_VERSION,
                   "source": source.name, "files": files, "options": source.describe(),
                   "split": source.split_description(), **source.source_fields(),
                   "featurize": asdict(featurize), "limit": options.limit,
                   "targets": [asdict(t) for t in source.targets()]}
    work = os.path.join(output, WORK_DIR)
    refuse_link(work)
    fingerprint_path = os.path.join(work, "fingerprint.json")
    if os.path.exists(fingerprint_path) and not os.path.islink(fingerprint_path):
        with open(fingerprint_path, encoding="utf-8") as f:
            if json.load(f) != fingerprint:
                log.warning("%s holds an unfinished build of other inputs or options; starting over", output)
                shutil.rmtree(work)
    os.makedirs(work, exist_ok=True)
    with create_new(fingerprint_path, "w", encoding="utf-8") as f:
        json.dump(fingerprint, f)

    journal = Journal(os.path.join(work, "journal.bin"), keep_ids=source.name == "pcqm4mv2",
                      keep_scaffolds=source.needs_scaffolds)
    resumed = sum(journal.done)
    if resumed:
        log.info("resuming: %d rows already processed", resumed)
    try:
        _featurize_all(source, options, journal)
    finally:
        journal.close()
    manifest = _finalize(source, options, journal, fingerprint)
    shutil.rmtree(work)
    log.debug("built %d molecules (%d rejected) in %.1f s -> %s", manifest["num_molecules"],
             manifest["num_rejected"], time.monotonic() - started, output)
    return manifest


def _featurize_all(source: Source, options: BuildOptions, journal: Journal) -> None:
    seen_ids: set[str] = set()

    def pending():
        for entry in source.entries():
            if options.limit and entry.row >= options.limit:
                break
            if source.has_ids:
                if entry.id in seen_ids and entry.reject is None:
                    entry.reject = ("duplicate_id", f"id {entry.id!r} appeared before")
                seen_ids.add(entry.id)
            if not journal.is_done(entry.row):
                yield entry

    initargs = (options.featurize, source.needs_scaffolds)
    # A bar on a terminal; redirected to a file, a log line every LOG_SECONDS instead of
    # carriage-return frames.
    on_terminal = sys.stderr.isatty()
    progress = tqdm(desc=f"featurizing {source.name}", unit=" mol", disable=not (options.progress and on_terminal),
                    dynamic_ncols=True)
    started = last_flush = last_log = time.monotonic()
    rejected = done = 0
    for result in _ordered_map(process_entry, pending(), options.workers, initargs):
        if result[0] == "accepted":
            _, row, mol_id, data, scaffold = result
            journal.add_accepted(row, data, mol_id, scaffold)
        else:
            journal.add_rejected(result[2])
            rejected += 1
        progress.update()
        done += 1
        now = time.monotonic()
        if now - last_flush > FLUSH_SECONDS:
            journal.flush()
            progress.set_postfix(rejected=rejected)
            last_flush = now
        if options.progress and not on_terminal and now - last_log > LOG_SECONDS:
            log.info("featurized %d rows (%d rejected), %.0f rows/s", done, rejected, done / (now - started))
            last_log = now
    journal.flush()
    progress.close()


def _finalize(source: Source, options: BuildOptions, journal: Journal, fingerprint: dict) -> dict:
    output = options.output
    _clear_output(output)
    order = journal.accepted_order()
    ids = [journal.ids[p] for p in order] if journal.keep_ids else []
    scaffolds = [journal.scaffolds[p] for p in order] if journal.keep_scaffolds else None
    rows = np.frombuffer(journal.rows, dtype=np.int64)[order]
    splits = source.split(rows, ids, scaffolds)
    assigned = np.concatenate([p for p in splits.values()]) if splits else np.zeros(0, np.int64)
    if len(np.unique(assigned)) != len(assigned):
        raise RuntimeError("a molecule was assigned to two splits")

    targets = source.targets()
    num_targets = len(targets)
    total = np.zeros(num_targets)
    total_sq = np.zeros(num_targets)
    count = np.zeros(num_targets)
    binary = np.ones(num_targets, dtype=bool)
    geometry_counts = collections.Counter()
    writer = ShardWriter(output, options.shard_size)
    split_ranges, start = {}, 0
    try:
        with open(journal.path, "rb") as handle:
            for name, positions in splits.items():
                for position in positions:
                    data = journal.read_record(int(order[position]), handle)
                    record = decode_record(data)
                    writer.add(data, num_atoms=record.num_atoms)
                    geometry_counts[Geometry.NAMES[record.geometry]] += 1
                    values = record.targets.astype(np.float64)
                    known = ~np.isnan(values)
                    binary &= ~known | (values == 0) | (values == 1)
                    if name == "train":
                        total[known] += values[known]
                        total_sq[known] += values[known] ** 2
                        count[known] += 1
                split_ranges[name] = [start, start + len(positions)]
                start += len(positions)
        shards = writer.close()
    except BaseException:
        writer.abort()
        raise
    rejected_by_reason = write_rejects(output, journal.rejects)

    target_entries = []
    for t, spec in enumerate(targets):
        mean = total[t] / count[t] if count[t] else None
        std = float(np.sqrt(max(total_sq[t] / count[t] - mean ** 2, 0.0))) if count[t] else None
        task_type = spec.task_type
        if task_type == "auto":
            task_type = "classification" if binary[t] else "regression"
        target_entries.append({"name": spec.name, "unit": spec.unit, "task_type": task_type,
                               "mean": mean, "std": std, "train_labels": int(count[t])})
    featurize = options.featurize
    manifest = {
        "format_version": FORMAT_VERSION,
        "featurization_version": FEATURIZATION_VERSION,
        "num_molecules": int(start),
        "num_rejected": len(journal.rejects),
        "rejected_by_reason": rejected_by_reason,
        "splits": {name: int(len(p)) for name, p in splits.items()},
        "split_ranges": split_ranges,
        "split": source.split_description(),
        "targets": target_entries,
        "source": {"type": source.name, "files": fingerprint["files"], "options": source.describe(),
                   **source.source_fields(), **({"limit": options.limit} if options.limit else {})},
        "featurization": {"atom_features": "ogb", "bond_features": "ogb",
                          "with_hydrogens": featurize.with_hydrogens,
                          "num_conformers": featurize.num_conformers,
                          "conformer_method": "rdkit ETKDGv3 + MMFF94 (UFF when MMFF lacks parameters)",
                          "conformer_timeout_s": featurize.conformer_timeout_s,
                          "on_conformer_failure": featurize.on_conformer_failure,
                          "max_atoms": featurize.max_atoms,
                          "largest_fragment": featurize.largest_fragment,
                          "seed": featurize.seed},
        "geometry": dict(sorted(geometry_counts.items())),
        "shard_size": options.shard_size,
        "shards": shards,
    }
    write_manifest(output, manifest)
    return manifest
