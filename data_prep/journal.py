"""The build's work journal: results of featurized rows, appended as they come, so
that a build that is killed can resume where it stopped.

Each entry: ENTRY header (row, kind, payload length), payload, crc32 of header and
payload. On reopening, entries are read until the first incomplete or corrupt one, and
the file is cut there. Accepted rows keep their encoded record and, for scaffold
splits, their scaffold; rejected rows their reason as JSON.
"""
from __future__ import annotations

import json
import os
from array import array
import struct
import zlib

import numpy as np

from moleblend_data.safe_files import open_regular

ENTRY = struct.Struct("<QBI")  # row, kind, payload length
CRC = struct.Struct("<I")
SCAFFOLD_LEN = struct.Struct("<I")
ACCEPTED, REJECTED = 0, 1


class Journal:
    def __init__(self, path: str, keep_ids: bool = False, keep_scaffolds: bool = False):
        """keep_ids / keep_scaffolds: hold the accepted rows' ids / scaffolds in memory
        (for splits that need them); row numbers and offsets are always held, compactly."""
        self.path = path
        self.keep_ids, self.keep_scaffolds = keep_ids, keep_scaffolds
        self.rows = array("q")  # accepted rows, in journal order
        self.offsets = array("q")  # where each accepted row's record bytes start
        self.lengths = array("q")
        self.scaffolds: list[str] = []
        self.ids: list[str] = []
        self.rejects: list[dict] = []
        self.done = bytearray()  # done[row] == 1 once the row has an entry
        self._recover()
        self._file = open_regular(path, "ab")

    def _recover(self):
        if not os.path.exists(self.path):
            return
        good = 0
        with open_regular(self.path, "rb") as f:
            while True:
                header = f.read(ENTRY.size)
                if len(header) < ENTRY.size:
                    break
                row, kind, length = ENTRY.unpack(header)
                payload = f.read(length)
                crc = f.read(CRC.size)
                if len(payload) < length or len(crc) < CRC.size or \
                        CRC.unpack(crc)[0] != zlib.crc32(header + payload):
                    break
                self._index(row, kind, payload, good + ENTRY.size)
                good = f.tell()
        with open_regular(self.path, "r+b") as f:
            f.truncate(good)

    def _index(self, row: int, kind: int, payload: bytes, offset: int):
        if row >= len(self.done):
            self.done.extend(bytes(max(row + 1 - len(self.done), len(self.done))))
        self.done[row] = 1
        if kind == REJECTED:
            self.rejects.append(json.loads(payload.decode("utf-8")))
            return
        (scaffold_len,) = SCAFFOLD_LEN.unpack_from(payload)
        meta = json.loads(payload[SCAFFOLD_LEN.size:SCAFFOLD_LEN.size + scaffold_len].decode("utf-8"))
        start = SCAFFOLD_LEN.size + scaffold_len
        self.rows.append(row)
        self.offsets.append(offset + start)
        self.lengths.append(len(payload) - start)
        if self.keep_scaffolds:
            self.scaffolds.append(meta["scaffold"])
        if self.keep_ids:
            self.ids.append(meta["id"])

    def add_accepted(self, row: int, record_bytes: bytes, mol_id: str, scaffold: str = ""):
        meta = json.dumps({"id": mol_id, "scaffold": scaffold}).encode("utf-8")
        self._append(row, ACCEPTED, SCAFFOLD_LEN.pack(len(meta)) + meta + record_bytes)

    def add_rejected(self, reject: dict):
        self._append(reject["row"], REJECTED, json.dumps(reject).encode("utf-8"))

    def _append(self, row: int, kind: int, payload: bytes):
        header = ENTRY.pack(row, kind, len(payload))
        offset = self._file.tell()
        self._file.write(header + payload + CRC.pack(zlib.crc32(header + payload)))
        self._index(row, kind, payload, offset + ENTRY.size)

    def is_done(self, row: int) -> bool:
        return row < len(self.done) and self.done[row] == 1

    def flush(self):
        self._file.flush()
        os.fsync(self._file.fileno())

    def close(self):
        self._file.close()

    def accepted_order(self) -> np.ndarray:
        """Positions of the accepted entries sorted by row."""
        return np.argsort(np.frombuffer(self.rows, dtype=np.int64), kind="stable")

    def read_record(self, position: int, handle) -> bytes:
        handle.seek(self.offsets[position])
        return handle.read(self.lengths[position])
