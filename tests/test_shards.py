"""Record layout round trips, shard reading from several processes, clear errors."""
import json
import multiprocessing
import os

import lmdb
import numpy as np
import pytest

from moleblend_data.featurize import FEATURIZATION_VERSION
from moleblend_data.molecule import Geometry, MoleculeRecord
from moleblend_data.shards import (FORMAT_VERSION, MalformedRecord, MoleculeShards, file_sha256,
                                          ShardWriter, decode_record, encode_record, record_key,
                                          write_manifest)


def make(i, num_atoms=5, conformers=1, targets=2):
    rng = np.random.default_rng(i)
    bonds = np.stack([np.arange(num_atoms - 1), np.arange(1, num_atoms)], 1).astype(np.int32)
    return MoleculeRecord(
        id=f"mol-{i}-é", smiles="C" * num_atoms,
        atom_features=rng.integers(0, 100, (num_atoms, 9)).astype(np.int16), bond_index=bonds,
        bond_features=rng.integers(0, 5, (num_atoms - 1, 3)).astype(np.int16),
        coordinates=rng.normal(size=(conformers, num_atoms, 3)).astype(np.float32),
        targets=np.array([i, np.nan][:targets], np.float32), geometry=Geometry.RDKIT_3D)


def assert_same(a, b):
    assert (a.id, a.smiles, a.geometry) == (b.id, b.smiles, b.geometry)
    for name in ("atom_features", "bond_index", "bond_features", "coordinates", "targets"):
        x, y = getattr(a, name), getattr(b, name)
        assert x.dtype == y.dtype and x.shape == y.shape, name
        np.testing.assert_array_equal(x, y, err_msg=name)


@pytest.mark.parametrize("kwargs", [{}, {"conformers": 0}, {"conformers": 3}, {"targets": 0},
                                    {"num_atoms": 1}])
def test_round_trip(kwargs):
    record = make(7, **kwargs)
    assert_same(decode_record(encode_record(record)), record)


def test_decode_rejects_bad_bytes():
    data = bytearray(encode_record(make(1)))
    with pytest.raises(ValueError, match="checksum"):
        decode_record(bytes(data[:-5] + b"\0" + data[-4:]))
    with pytest.raises(ValueError, match="bytes"):
        decode_record(bytes(data[:-1]))
    other = bytearray(data)
    other[4:6] = (FORMAT_VERSION + 1).to_bytes(2, "little")
    with pytest.raises(ValueError, match="version"):
        decode_record(bytes(other))
    with pytest.raises(ValueError, match="magic"):
        decode_record(b"\x80\x04" + bytes(data[2:]))  # e.g. a pickle


def write_dataset(path, records, shard_size, splits):
    writer = ShardWriter(str(path), shard_size)
    for record in records:
        writer.add(record)
    shards = writer.close()
    ranges, start = {}, 0
    for name, count in splits.items():
        ranges[name] = [start, start + count]
        start += count
    write_manifest(str(path), {"format_version": FORMAT_VERSION, "featurization_version": FEATURIZATION_VERSION,
                               "num_molecules": len(records),
                               "splits": splits, "split_ranges": ranges, "shard_size": shard_size,
                               "shards": shards, "targets": []})
    return shards


def test_reader_splits_and_shards(tmp_path):
    records = [make(i, num_atoms=2 + i % 4) for i in range(23)]
    shards = write_dataset(tmp_path, records, 5, {"train": 15, "valid": 5, "test": 3})
    assert [s["num_records"] for s in shards] == [5, 5, 5, 5, 3]
    assert sorted(os.listdir(tmp_path)) == ["manifest.json"] + [f"shard-0000{i}.lmdb" for i in range(5)]
    valid = MoleculeShards(str(tmp_path), "valid")
    assert len(valid) == 5 and valid.manifest["splits"]["test"] == 3
    for i in range(5):
        assert_same(valid[i], records[15 + i])
    assert_same(valid[-1], records[19])
    np.testing.assert_array_equal(valid.num_atoms, [r.num_atoms for r in records[15:20]])
    with pytest.raises(IndexError):
        valid[5]
    with pytest.raises(KeyError, match="splits"):
        MoleculeShards(str(tmp_path), "nope")
    assert len(MoleculeShards(str(tmp_path))) == 23


def _read_ids(args):
    dataset, indices = args
    return [dataset[i].id for i in indices]


def test_reader_in_forked_and_spawned_workers(tmp_path):
    records = [make(i) for i in range(12)]
    write_dataset(tmp_path, records, 4, {"train": 12})
    dataset = MoleculeShards(str(tmp_path), "train")
    assert dataset[0].id == "mol-0-é"  # environments opened in the parent first
    for method in ("fork", "spawn"):
        with multiprocessing.get_context(method).Pool(2) as pool:
            ids = pool.map(_read_ids, [(dataset, range(0, 6)), (dataset, range(6, 12))])
        assert sum(ids, []) == [r.id for r in records]


def test_malformed_record_names_shard_and_key(tmp_path):
    write_dataset(tmp_path, [make(i) for i in range(6)], 3, {"train": 6})
    shard = str(tmp_path / "shard-00001.lmdb")
    env = lmdb.open(shard, subdir=False, lock=False)
    with env.begin(write=True) as txn:
        data = bytearray(txn.get(record_key(2)))
        data[40] ^= 0xFF
        txn.put(record_key(2), bytes(data))
    env.close()
    # as if the record had been damaged before the shard was recorded in the manifest: the
    # shard's size and sha256 pass, the record's own checksum does not
    manifest = json.loads((tmp_path / "manifest.json").read_text())
    manifest["shards"][1].update(bytes=os.path.getsize(shard), file_sha256=file_sha256(shard))
    (tmp_path / "manifest.json").write_text(json.dumps(manifest))
    dataset = MoleculeShards(str(tmp_path), "train")
    dataset[4]
    with pytest.raises(MalformedRecord) as error:
        dataset[5]
    assert "shard-00001.lmdb" in str(error.value) and record_key(2).decode() in str(error.value)


def test_unfinished_or_foreign_dataset(tmp_path):
    with pytest.raises(FileNotFoundError, match="manifest"):
        MoleculeShards(str(tmp_path), "train")
    (tmp_path / "manifest.json").write_text(json.dumps({"format_version": FORMAT_VERSION + 1}))
    with pytest.raises(ValueError, match="format_version"):
        MoleculeShards(str(tmp_path), "train")
