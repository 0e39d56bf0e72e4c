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

from .molecule import NUM_ATOM_FEATURES, NUM_BOND_FEATURES, MoleculeRecord

FORMAT_VERSION = 1
MAGIC = b"MBLR"
RECORD_HEADER = struct.Struct("<4sHBxIIIHHI")  # magic, version, geometry, N, E, T, K, id_len, smiles_len
CRC = struct.Struct("<I")
MANIFEST = "manifest.json"
META_KEY = b"__meta__"
NUM_ATOMS_KEY = b"__num_atoms__"
# Largest size an LMDB shard may grow to; space is only used as records are written.
SHARD_MAP_SIZE = 1 << 36


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
        np.ascontiguousarray(record.atom_features, "<i2").tobytes(),
        np.ascontiguousarray(record.bond_index, "<i4").tobytes(),
        np.ascontiguousarray(record.bond_features, "<i2").tobytes(),
        np.ascontiguousarray(record.coordinates, "<f4").tobytes(),
        np.ascontiguousarray(record.targets, "<f4").tobytes(),
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
        if os.path.exists(path):
            os.remove(path)
        self._env = lmdb.open(path, subdir=False, map_size=SHARD_MAP_SIZE, lock=False,
                              readahead=False, meminit=False)
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
        os.replace(os.path.join(self.output_dir, name + ".tmp"), os.path.join(self.output_dir, name))
        self.shards.append({"file": name, "num_records": self._in_shard,
                            "sha256": self._hash.hexdigest()})

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
    with open(path + ".tmp", "w", encoding="utf-8") as f:
        json.dump(manifest, f, indent=2, sort_keys=False, allow_nan=False)
        f.write("\n")
        f.flush()
        os.fsync(f.fileno())
    os.replace(path + ".tmp", path)


def read_manifest(data_dir: str) -> dict:
    path = os.path.join(data_dir, MANIFEST)
    if not os.path.exists(path):
        raise FileNotFoundError(f"{data_dir} has no {MANIFEST}: not a prepared dataset, "
                                "or its build did not finish (run data_prep again)")
    with open(path, encoding="utf-8") as f:
        manifest = json.load(f)
    if manifest.get("format_version") != FORMAT_VERSION:
        raise ValueError(f"{path}: format_version {manifest.get('format_version')}, "
                         f"this code reads version {FORMAT_VERSION}; prepare the data again")
    return manifest


# LMDB allows one open environment per file and process; readers of several splits of
# one dataset (train and valid share a shard at split boundaries) share it. A process
# forked after its parent opened a shard (DataLoader workers) inherits the parent's
# read-only, lock-free environment and reuses it: py-lmdb refuses to open the same file
# again in the child.
_OPEN_SHARDS: dict[tuple[str, int, int], lmdb.Environment] = {}


def _open_shard(path: str) -> lmdb.Environment:
    try:
        stat = os.stat(path)
    except OSError as error:
        raise MalformedRecord(f"{path}: cannot open shard ({error})") from None
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
            env = _open_shard(os.path.join(self.data_dir, self.shards[shard]["file"]))
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
        with self._env(shard).begin(buffers=False) as txn:
            data = txn.get(key)
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
                with self._env(shard).begin() as txn:
                    raw = txn.get(NUM_ATOMS_KEY)
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
