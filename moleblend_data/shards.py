"""A prepared dataset on disk: `manifest.json` plus `shard-NNNNN.lmdb` files.

Records are stored in a fixed little-endian binary layout (no pickle, so opening a
dataset never runs code from it):

    header   RECORD_HEADER (magic b"MBLR", format version, geometry code, counts, lengths)
    id       utf-8, id_len bytes
    smiles   utf-8, smiles_len bytes
    atom_features  int16   [N, 9]
    bond_index     int32   [E, 2]
    bond_features  int16   [E, 3]
    coordinates    float32 [K, N, 3]
    targets        float32 [T]
    crc32          uint32 of all bytes above

The records of all splits are numbered 0..num_molecules-1 in split order (the manifest's
`split_ranges`), and record g is in shard g // shard_size under the key of g % shard_size.
Each shard also holds `__meta__` (JSON) and `__num_atoms__` (int32 per record).
"""
from __future__ import annotations

import hashlib
import json
import os
import struct
import zlib

import lmdb
import numpy as np

from .safe_files import create_new
from .molecule import NUM_ATOM_FEATURES, NUM_BOND_FEATURES, MoleculeRecord

# 2: the manifest records each shard file's size and sha256, checked before the shard is read.
FORMAT_VERSION = 2
MAGIC = b"MBLR"
RECORD_HEADER = struct.Struct("<4sHBxIIIHHI")  # magic, version, geometry, N, E, T, K, id_len, smiles_len
CRC = struct.Struct("<I")
MANIFEST = "manifest.json"
META_KEY = b"__meta__"
NUM_ATOMS_KEY = b"__num_atoms__"
# Largest size an LMDB shard may grow to; space is only used as records are written.
SHARD_MAP_SIZE = 1 << 36
# How the record's arrays are stored, whatever the machine's byte order.
INT16, INT32, FLOAT32 = np.dtype("<i2"), np.dtype("<i4"), np.dtype("<f4")


class MalformedRecord(ValueError):
    """A stored record (or shard) that does not decode; the message names shard and key."""


def shard_name(index: int) -> str:
    return f"shard-{index:05d}.lmdb"


def record_key(local_index: int) -> bytes:
    return b"%09d" % local_index


def encode_record(record: MoleculeRecord) -> bytes:
    record.validate()
    id_bytes = record.id.encode("utf-8")
    smiles_bytes = record.smiles.encode("utf-8")
    n, e, t = record.num_atoms, record.bond_index.shape[0], record.targets.shape[0]
    k = record.coordinates.shape[0]
    if len(id_bytes) >= 1 << 16 or k >= 1 << 16:
        raise ValueError(f"record {record.id[:40]!r}: id or conformer count too large to store")
    parts = [
        RECORD_HEADER.pack(MAGIC, FORMAT_VERSION, int(record.geometry), n, e, t, k,
                           len(id_bytes), len(smiles_bytes)),
        id_bytes, smiles_bytes,
        # contiguous arrays: join reads their bytes directly
        np.ascontiguousarray(record.atom_features, INT16),
        np.ascontiguousarray(record.bond_index, INT32),
        np.ascontiguousarray(record.bond_features, INT16),
        np.ascontiguousarray(record.coordinates, FLOAT32),
        np.ascontiguousarray(record.targets, FLOAT32),
    ]
    body = b"".join(parts)
    return body + CRC.pack(zlib.crc32(body))


def decode_record(data: bytes) -> MoleculeRecord:
    """Inverse of encode_record; ValueError on any inconsistency."""
    data = bytes(data)
    if len(data) < RECORD_HEADER.size + CRC.size:
        raise ValueError(f"record of {len(data)} bytes is shorter than its header")
    magic, version, geometry, n, e, t, k, id_len, smiles_len = RECORD_HEADER.unpack_from(data)
    if magic != MAGIC:
        raise ValueError(f"not a MoleBlend record (magic {magic!r})")
    if version != FORMAT_VERSION:
        raise ValueError(f"record format version {version}, this code reads version {FORMAT_VERSION}")
    sizes = [id_len, smiles_len, 2 * n * NUM_ATOM_FEATURES, 4 * e * 2, 2 * e * NUM_BOND_FEATURES,
             4 * k * n * 3, 4 * t]
    expected = RECORD_HEADER.size + sum(sizes) + CRC.size
    if len(data) != expected:
        raise ValueError(f"record is {len(data)} bytes, its header describes {expected}")
    (stored_crc,) = CRC.unpack_from(data, len(data) - CRC.size)
    if zlib.crc32(memoryview(data)[:-CRC.size]) != stored_crc:
        raise ValueError("record checksum mismatch (corrupt data)")
    offsets = np.cumsum([RECORD_HEADER.size] + sizes)
    chunk = [data[offsets[i]:offsets[i + 1]] for i in range(len(sizes))]
    record = MoleculeRecord(
        id=chunk[0].decode("utf-8"), smiles=chunk[1].decode("utf-8"),
        atom_features=np.frombuffer(chunk[2], "<i2").reshape(n, NUM_ATOM_FEATURES).astype(np.int16),
        bond_index=np.frombuffer(chunk[3], "<i4").reshape(e, 2).astype(np.int32),
        bond_features=np.frombuffer(chunk[4], "<i2").reshape(e, NUM_BOND_FEATURES).astype(np.int16),
        coordinates=np.frombuffer(chunk[5], "<f4").reshape(k, n, 3).astype(np.float32),
        targets=np.frombuffer(chunk[6], "<f4").astype(np.float32),
        geometry=int(geometry))
    record.validate()
    return record


class ShardWriter:
    """Write records, in order, into shards of `shard_size` records.

    A shard is written under a temporary name and renamed when complete, so a shard
    file with its final name is always whole. `close()` returns the manifest's `shards`
    list: file name, record count and a sha256 of the records' bytes in order.
    """

    def __init__(self, output_dir: str, shard_size: int, commit_every: int = 1000):
        if shard_size < 1:
            raise ValueError("shard_size must be >= 1")
        self.output_dir = output_dir
        self.shard_size = shard_size
        self.commit_every = commit_every
        self.shards: list[dict] = []
        self.num_records = 0
        self._env = None
        self._txn = None
        self._in_shard = 0
        self._hash = None
        self._num_atoms: list[int] = []
        os.makedirs(output_dir, exist_ok=True)

    def _open(self):
        path = os.path.join(self.output_dir, shard_name(len(self.shards)) + ".tmp")
        create_new(path, "wb").close()  # a regular file of our own: LMDB then opens it, not a planted link
        # meminit: unused page bytes are zeroed, so the same records give the same file
        self._env = lmdb.open(path, subdir=False, map_size=SHARD_MAP_SIZE, lock=False,
                              readahead=False, meminit=True)
        self._txn = self._env.begin(write=True)
        self._in_shard = 0
        self._hash = hashlib.sha256()
        self._num_atoms = []

    def add(self, record: MoleculeRecord | bytes, num_atoms: int | None = None) -> None:
        """Append one record: a MoleculeRecord, or its encode_record bytes (then give
        its atom count, or it is decoded to find it)."""
        if isinstance(record, (bytes, bytearray)):
            data = bytes(record)
            if num_atoms is None:
                num_atoms = decode_record(data).num_atoms
        else:
            data, num_atoms = encode_record(record), record.num_atoms
        if self._env is None:
            self._open()
        self._txn.put(record_key(self._in_shard), bytes(data), append=True)
        self._hash.update(data)
        self._num_atoms.append(num_atoms)
        self._in_shard += 1
        self.num_records += 1
        if self._in_shard % self.commit_every == 0:
            self._txn.commit()
            self._txn = self._env.begin(write=True)
        if self._in_shard == self.shard_size:
            self._finish_shard()

    def _finish_shard(self):
        name = shard_name(len(self.shards))
        meta = {"format_version": FORMAT_VERSION, "num_records": self._in_shard,
                "first_index": self.num_records - self._in_shard}
        self._txn.put(META_KEY, json.dumps(meta).encode())
        self._txn.put(NUM_ATOMS_KEY, np.asarray(self._num_atoms, "<i4").tobytes())
        self._txn.commit()
        self._env.sync(True)
        self._env.close()
        self._env = self._txn = None
        final = os.path.join(self.output_dir, name)
        os.replace(final + ".tmp", final)
        self.shards.append({"file": name, "num_records": self._in_shard,
                            "sha256": self._hash.hexdigest(),
                            "bytes": os.path.getsize(final), "file_sha256": file_sha256(final)})

    def close(self) -> list[dict]:
        if self._env is not None:
            self._finish_shard()
        return self.shards

    def abort(self) -> None:
        if self._env is not None:
            self._txn.abort()
            self._env.close()
            self._env = self._txn = None


def write_manifest(output_dir: str, manifest: dict) -> None:
    """Write manifest.json atomically: a dataset is complete exactly when it exists."""
    path = os.path.join(output_dir, MANIFEST)
    with create_new(path + ".tmp", "w", encoding="utf-8") as f:
        json.dump(manifest, f, indent=2, sort_keys=False, allow_nan=False)
        f.write("\n")
        f.flush()
        os.fsync(f.fileno())
    os.replace(path + ".tmp", path)


class ManifestError(ValueError):
    """manifest.json is not valid; the message names the file and the field."""


def _manifest_error(path: str, field: str, problem: str) -> ManifestError:
    return ManifestError(f"{path}: field '{field}': {problem} (the dataset is damaged or was edited; "
                         "rebuild it with data_prep)")


def _check_int(path, field, value, minimum=0):
    if not isinstance(value, int) or isinstance(value, bool) or value < minimum:
        raise _manifest_error(path, field, f"expected an integer >= {minimum}, found {value!r}")
    return value


def validate_manifest(manifest, path: str) -> dict:
    """Check a manifest's types, counts and ranges: the split ranges tile the records
    without gap or overlap, the shards hold shard_size records each (the last the rest),
    and every shard file is a plain name inside the dataset folder. ManifestError."""
    if not isinstance(manifest, dict):
        raise _manifest_error(path, "(top level)", "expected a JSON object")
    if manifest.get("format_version") != FORMAT_VERSION:
        raise ValueError(f"{path}: format_version {manifest.get('format_version')!r}, this code reads version "
                         f"{FORMAT_VERSION}; prepare the data again with data_prep")
    for key in ("format_version", "featurization_version", "num_molecules", "splits", "split_ranges",
                "targets", "shard_size", "shards"):
        if key not in manifest:
            raise _manifest_error(path, key, "missing")
    total = _check_int(path, "num_molecules", manifest["num_molecules"])
    shard_size = _check_int(path, "shard_size", manifest["shard_size"], 1)
    ranges, counts = manifest["split_ranges"], manifest["splits"]
    if not isinstance(ranges, dict) or not isinstance(counts, dict) or set(ranges) != set(counts):
        raise _manifest_error(path, "split_ranges", "expected one [start, stop) range per split of 'splits'")
    bounds = []
    for name, span in ranges.items():
        if (not isinstance(span, list) or len(span) != 2
                or not all(isinstance(v, int) and not isinstance(v, bool) for v in span)):
            raise _manifest_error(path, f"split_ranges.{name}", f"expected [start, stop], found {span!r}")
        if span[1] - span[0] != counts[name]:
            raise _manifest_error(path, f"split_ranges.{name}",
                                  f"{span} holds {span[1] - span[0]} records, 'splits' says {counts[name]!r}")
        bounds.append((span[0], span[1], name))
    position = 0
    for start, stop, name in sorted(bounds):
        if start != position or stop < start:
            raise _manifest_error(path, f"split_ranges.{name}",
                                  f"[{start}, {stop}) does not continue at record {position}: "
                                  "the splits must tile the records without gap or overlap")
        position = stop
    if position != total:
        raise _manifest_error(path, "split_ranges", f"the splits cover {position} records, num_molecules is {total}")
    shards = manifest["shards"]
    expected_count = -(-total // shard_size)
    if not isinstance(shards, list) or len(shards) != expected_count:
        raise _manifest_error(path, "shards", f"{total} records in shards of {shard_size} make "
                                              f"{expected_count} shards, found {len(shards) if isinstance(shards, list) else shards!r}")
    for index, shard in enumerate(shards):
        field = f"shards[{index}]"
        if not isinstance(shard, dict):
            raise _manifest_error(path, field, "expected an object")
        for key in ("file", "num_records", "sha256", "bytes", "file_sha256"):
            if key not in shard:
                raise _manifest_error(path, f"{field}.{key}", "missing")
        if shard["file"] != shard_name(index):
            raise _manifest_error(path, f"{field}.file", f"expected {shard_name(index)!r}, found {shard['file']!r} "
                                                         "(shards are read only from the dataset folder, by their own names)")
        wanted = min(shard_size, total - index * shard_size)
        if _check_int(path, f"{field}.num_records", shard["num_records"]) != wanted:
            raise _manifest_error(path, f"{field}.num_records", f"expected {wanted}, found {shard['num_records']}")
        _check_int(path, f"{field}.bytes", shard["bytes"], 1)
    _validate_split(manifest, path)
    _validate_ogb(manifest, path)
    return manifest


def _validate_split(manifest: dict, path: str) -> None:
    """`split` (how the splits were made; absent from older manifests): an object with a
    method, and a fold within its number of folds when the valid split is a fold."""
    if "split" not in manifest:
        return
    split = manifest["split"]
    if not isinstance(split, dict):
        raise _manifest_error(path, "split", f"expected an object, found {split!r}")
    if split and not isinstance(split.get("method"), str):
        raise _manifest_error(path, "split.method", f"expected a string, found {split.get('method')!r}")
    if "folds" in split or "fold" in split:
        folds = _check_int(path, "split.folds", split.get("folds"), 2)
        fold = _check_int(path, "split.fold", split.get("fold"))
        if fold >= folds:
            raise _manifest_error(path, "split.fold", f"fold {fold} of {folds} folds (0 to {folds - 1})")


def _validate_ogb(manifest: dict, path: str) -> None:
    """`source.ogb` (datasets of OGB's benchmarks): the names OGB's Evaluator is called with."""
    source = manifest.get("source")
    if not isinstance(source, dict) or "ogb" not in source:
        return
    ogb = source["ogb"]
    if not isinstance(ogb, dict):
        raise _manifest_error(path, "source.ogb", f"expected an object, found {ogb!r}")
    for key in ("name", "eval_metric"):
        if not isinstance(ogb.get(key), str):
            raise _manifest_error(path, f"source.ogb.{key}", f"expected a string, found {ogb.get(key)!r}")


def read_manifest(data_dir: str) -> dict:
    path = os.path.join(data_dir, MANIFEST)
    if not os.path.exists(path):
        raise FileNotFoundError(f"{data_dir} has no {MANIFEST}: not a prepared dataset, "
                                "or its build did not finish (run data_prep again)")
    try:
        with open(path, encoding="utf-8") as f:
            manifest = json.load(f)
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise ManifestError(f"{path}: not valid JSON ({error}); the dataset is damaged or was edited") from None
    return validate_manifest(manifest, path)


def file_sha256(path: str) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


# Shards verified in this process: (real path, inode, size, mtime) -> True. A shard is
# hashed once per process, before LMDB maps it (a truncated or damaged file read through
# a memory map ends in SIGBUS, not in an exception).
_VERIFIED: dict[tuple, bool] = {}


def verify_shard(data_dir: str, info: dict) -> str:
    """The path of a manifest's shard after checking that it lies in the dataset folder
    (not a link out of it) and has the size and sha256 the manifest records; MalformedRecord
    naming the shard otherwise."""
    path = os.path.join(data_dir, info["file"])
    folder = os.path.realpath(data_dir)
    if os.path.islink(path) or os.path.dirname(os.path.realpath(path)) != folder:
        raise MalformedRecord(f"{path}: a shard must be a file in the dataset folder, not a link")
    try:
        stat = os.stat(path)
    except OSError as error:
        raise MalformedRecord(f"{path}: cannot open shard ({error.strerror})") from None
    key = (os.path.realpath(path), stat.st_ino, stat.st_size, stat.st_mtime_ns)
    if key in _VERIFIED:
        return path
    if stat.st_size != info["bytes"]:
        raise MalformedRecord(f"{path}: {stat.st_size} bytes, the manifest records {info['bytes']} "
                              "(truncated or replaced; rebuild the dataset)")
    if file_sha256(path) != info["file_sha256"]:
        raise MalformedRecord(f"{path}: its sha256 differs from the manifest's (damaged, or a shard of "
                              "another dataset; rebuild the dataset)")
    _VERIFIED[key] = True
    return path


# LMDB allows one open environment per file and process; readers of several splits of
# one dataset (train and valid share a shard at split boundaries) share it. A process
# forked after its parent opened a shard (DataLoader workers) inherits the parent's
# read-only, lock-free environment and reuses it: py-lmdb refuses to open the same file
# again in the child.
_OPEN_SHARDS: dict[tuple[str, int, int], lmdb.Environment] = {}


def _open_shard(path: str) -> lmdb.Environment:
    stat = os.stat(path)
    # The file's identity is part of the key: a rebuilt dataset gets fresh environments.
    key = (os.path.realpath(path), stat.st_ino, stat.st_mtime_ns)
    env = _OPEN_SHARDS.get(key)
    if env is None:
        try:
            env = lmdb.open(path, subdir=False, readonly=True, lock=False, readahead=False,
                            meminit=False, max_readers=1)
        except lmdb.Error as error:
            raise MalformedRecord(f"{path}: cannot open shard ({error})") from None
        _OPEN_SHARDS[key] = env
    return env


class MoleculeShards:
    """Random access to the records of one split (or of all, `split=None`).

    LMDB environments are opened on first access in each process (read-only, no lock),
    so an instance can be created before a DataLoader forks its workers.
    """

    def __init__(self, data_dir: str, split: str | None = None):
        self.data_dir = data_dir
        self.manifest = read_manifest(data_dir)
        self.split = split
        if split is None:
            self.start, self.stop = 0, int(self.manifest["num_molecules"])
        else:
            ranges = self.manifest["split_ranges"]
            if split not in ranges:
                raise KeyError(f"{data_dir} has no split {split!r}; splits: {sorted(ranges)}")
            self.start, self.stop = ranges[split]
        self.shard_size = int(self.manifest["shard_size"])
        self.shards = self.manifest["shards"]
        self._envs: dict[int, lmdb.Environment] = {}
        self._pid = None
        self._num_atoms = None

    def __len__(self) -> int:
        return self.stop - self.start

    def __getstate__(self):
        state = self.__dict__.copy()
        state["_envs"], state["_pid"] = {}, None
        return state

    def _env(self, shard: int) -> lmdb.Environment:
        if self._pid != os.getpid():  # first use in this process (or after a fork)
            self._envs, self._pid = {}, os.getpid()
        env = self._envs.get(shard)
        if env is None:
            env = _open_shard(verify_shard(self.data_dir, self.shards[shard]))
            self._envs[shard] = env
        return env

    def _locate(self, index: int) -> tuple[int, int]:
        if index < 0:
            index += len(self)
        if not 0 <= index < len(self):
            raise IndexError(f"index {index} out of range for {len(self)} records")
        g = self.start + index
        return g // self.shard_size, g % self.shard_size

    def read_bytes(self, index: int) -> tuple[bytes, str, bytes]:
        shard, local = self._locate(index)
        key = record_key(local)
        try:
            with self._env(shard).begin(buffers=False) as txn:
                data = txn.get(key)
        except lmdb.Error as error:
            raise MalformedRecord(f"{os.path.join(self.data_dir, self.shards[shard]['file'])} key "
                                  f"{key.decode()}: {error}") from None
        return data, self.shards[shard]["file"], key

    def __getitem__(self, index: int) -> MoleculeRecord:
        data, shard_file, key = self.read_bytes(index)
        where = f"{os.path.join(self.data_dir, shard_file)} key {key.decode()}"
        if data is None:
            raise MalformedRecord(f"{where}: record missing")
        try:
            return decode_record(data)
        except ValueError as error:
            raise MalformedRecord(f"{where}: {error}") from None

    def __iter__(self):
        for i in range(len(self)):
            yield self[i]

    @property
    def num_atoms(self) -> np.ndarray:
        """int32 [len(self)] atom count of every record (for batching by size)."""
        if self._num_atoms is None:
            parts = []
            for shard, info in enumerate(self.shards):
                try:
                    with self._env(shard).begin() as txn:
                        raw = txn.get(NUM_ATOMS_KEY)
                except lmdb.Error as error:
                    raise MalformedRecord(f"{os.path.join(self.data_dir, info['file'])}: {error}") from None
                if raw is None or len(raw) != 4 * info["num_records"]:
                    raise MalformedRecord(f"{os.path.join(self.data_dir, info['file'])} key "
                                          f"{NUM_ATOMS_KEY.decode()}: missing or wrong length")
                parts.append(np.frombuffer(raw, "<i4"))
            sizes = np.concatenate(parts) if parts else np.zeros(0, "<i4")
            self._num_atoms = sizes[self.start:self.stop].astype(np.int32)
        return self._num_atoms

    def close(self) -> None:
        """Close this dataset's shards (for every reader of them in this process)."""
        for env in self._envs.values():
            for key in [k for k, v in _OPEN_SHARDS.items() if v is env]:
                del _OPEN_SHARDS[key]
            env.close()
        self._envs = {}


def verify_dataset(data_dir: str) -> dict:
    """Check everything a prepared dataset's manifest states: every shard's size and sha256,
    that every record decodes (its CRC), the records' sha256 per shard, and the per-record
    atom counts. Returns {"shards", "records", "bytes"}; MalformedRecord or ManifestError
    naming the file at the first problem."""
    manifest = read_manifest(data_dir)
    shards = MoleculeShards(data_dir)
    total_bytes = 0
    for index, info in enumerate(manifest["shards"]):
        path = verify_shard(data_dir, info)
        total_bytes += info["bytes"]
        first = index * manifest["shard_size"]
        digest = hashlib.sha256()
        sizes = []
        for local in range(info["num_records"]):
            data, _, key = shards.read_bytes(first + local)
            if data is None:
                raise MalformedRecord(f"{path} key {key.decode()}: record missing")
            try:
                sizes.append(decode_record(data).num_atoms)
            except ValueError as error:
                raise MalformedRecord(f"{path} key {key.decode()}: {error}") from None
            digest.update(data)
        if digest.hexdigest() != info["sha256"]:
            raise MalformedRecord(f"{path}: the records' sha256 differs from the manifest's")
        if not np.array_equal(shards.num_atoms[first:first + info["num_records"]], sizes):
            raise MalformedRecord(f"{path} key {NUM_ATOMS_KEY.decode()}: atom counts differ from the records'")
    shards.close()
    return {"shards": len(manifest["shards"]), "records": manifest["num_molecules"], "bytes": total_bytes}
