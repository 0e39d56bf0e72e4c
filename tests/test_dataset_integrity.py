"""A prepared dataset is what its manifest says, or it refuses to load with an error that
names the file; builds are safe against each other and against planted links."""
import json
import os
import shutil
import subprocess
import sys
import textwrap

import lmdb
import pytest

from data_prep.__main__ import main
from data_prep.build import output_lock
from moleblend_data.shards import (MANIFEST, NUM_ATOMS_KEY, MalformedRecord, ManifestError,
                                          MoleculeShards, verify_dataset)

FIXTURES = os.path.join(os.path.dirname(__file__), "fixtures")
REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def build(out, *extra, input_file=f"{FIXTURES}/qm9_sample.csv"):
    return main(["qm9", "--input", input_file, "--output", str(out), "--valid-size", "8", "--test-size", "8",
                 "--shard-size", "10", "--quiet", *extra])


@pytest.fixture
def dataset(tmp_path):
    out = tmp_path / "qm9"
    assert build(out) == 0
    return out


def read_everything_in_a_subprocess(folder):
    """Open the dataset and read every record in another process, so that a SIGBUS from a
    damaged memory-mapped file shows as a failure instead of ending the test run."""
    code = textwrap.dedent(f"""
        from moleblend_data.shards import MoleculeShards
        shards = MoleculeShards({str(folder)!r})
        shards.num_atoms
        for i in range(len(shards)):
            shards[i]
    """)
    return subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=120)


def edit_manifest(folder, change):
    manifest = json.loads((folder / MANIFEST).read_text())
    change(manifest)
    (folder / MANIFEST).write_text(json.dumps(manifest))


def test_a_good_dataset_verifies(dataset, capsys):
    assert main(["verify", str(dataset)]) == 0
    assert "records in 4 shards" in capsys.readouterr().out
    assert read_everything_in_a_subprocess(dataset).returncode == 0


def test_a_truncated_shard_is_an_error_naming_it_not_a_signal(dataset):
    shard = dataset / "shard-00001.lmdb"
    os.truncate(shard, os.path.getsize(shard) // 2)
    result = read_everything_in_a_subprocess(dataset)
    assert result.returncode == 1, result  # an exception, not a signal (negative return code)
    assert "shard-00001.lmdb" in result.stderr and "truncated" in result.stderr
    assert main(["verify", str(dataset)]) == 1


def test_damaged_bytes_and_a_damaged_size_index_are_errors(dataset, tmp_path):
    damaged = tmp_path / "damaged"
    shutil.copytree(dataset, damaged)
    shard = damaged / "shard-00002.lmdb"
    data = bytearray(shard.read_bytes())
    data[len(data) // 2] ^= 0x40  # same size, one bit
    shard.write_bytes(bytes(data))
    result = read_everything_in_a_subprocess(damaged)
    assert result.returncode == 1 and "shard-00002.lmdb" in result.stderr and "sha256" in result.stderr

    # the per-record atom counts rewritten: one molecule would silently leave training
    env = lmdb.open(str(dataset / "shard-00000.lmdb"), subdir=False, lock=False)
    with env.begin(write=True) as txn:
        sizes = bytearray(txn.get(NUM_ATOMS_KEY))
        sizes[0:4] = (600).to_bytes(4, "little")
        txn.put(NUM_ATOMS_KEY, bytes(sizes))
    env.close()
    with pytest.raises(MalformedRecord, match="shard-00000.lmdb"):
        MoleculeShards(str(dataset), "train").num_atoms


def test_a_shard_of_another_dataset_is_refused(dataset, tmp_path):
    other = tmp_path / "other"
    assert build(other, "--seed", "7") == 0  # same molecules and counts, another split
    shutil.copy(other / "shard-00000.lmdb", dataset / "shard-00000.lmdb")
    with pytest.raises(MalformedRecord, match="shard-00000.lmdb.*sha256"):
        MoleculeShards(str(dataset), "train")[0]


@pytest.mark.parametrize("name", ["../other/shard-00001.lmdb", "/etc/passwd", "shard-00000.lmdb"])
def test_shard_files_are_read_only_from_the_dataset_folder_by_their_own_names(dataset, name):
    edit_manifest(dataset, lambda m: m["shards"][1].update(file=name))
    with pytest.raises(ManifestError, match=r"manifest.json: field 'shards\[1\].file'"):
        MoleculeShards(str(dataset))


def test_a_shard_that_is_a_link_is_refused(dataset, tmp_path):
    elsewhere = tmp_path / "elsewhere.lmdb"
    shutil.move(dataset / "shard-00001.lmdb", elsewhere)
    os.symlink(elsewhere, dataset / "shard-00001.lmdb")
    with pytest.raises(MalformedRecord, match="not a link"):
        MoleculeShards(str(dataset))[10]


@pytest.mark.parametrize("change, field", [
    (lambda m: m["split_ranges"].update(train=[0, m["split_ranges"]["train"][1] + 8]), "split_ranges.train"),
    (lambda m: m["split_ranges"].update(test=[0, 8]), "split_ranges"),
    (lambda m: m.update(shard_size=8), "shards"),
    (lambda m: m.pop("split_ranges"), "split_ranges"),
    (lambda m: m.update(num_molecules="40"), "num_molecules"),
    (lambda m: m["shards"][0].update(num_records=9), "shards[0].num_records"),
    (lambda m: m.update(split="random"), "split"),
    (lambda m: m["split"].pop("method"), "split.method"),
    (lambda m: m["split"].update(folds=3, fold=3), "split.fold"),
    (lambda m: m["split"].update(folds=1, fold=0), "split.folds"),
    (lambda m: m["source"].update(ogb={"name": "ogbg-molhiv"}), "source.ogb.eval_metric"),
])
def test_an_edited_manifest_is_one_error_naming_the_field(dataset, change, field):
    edit_manifest(dataset, change)
    with pytest.raises(ManifestError) as error:
        MoleculeShards(str(dataset), "train")
    assert "manifest.json" in str(error.value) and field in str(error.value)


def test_a_manifest_from_before_the_split_field_still_loads(dataset):
    edit_manifest(dataset, lambda m: m.pop("split"))
    assert len(MoleculeShards(str(dataset), "train")) == 24


def test_invalid_json_names_the_file(dataset):
    with open(dataset / MANIFEST, "a") as f:
        f.write("}\n")
    with pytest.raises(ManifestError, match=r"manifest.json: not valid JSON"):
        MoleculeShards(str(dataset))


def test_verify_checks_every_record(dataset):
    summary = verify_dataset(str(dataset))
    assert summary["records"] == 40 and summary["shards"] == 4


def test_a_second_build_into_the_same_folder_is_refused(tmp_path, capsys):
    out = tmp_path / "busy"
    out.mkdir()
    with output_lock(str(out)):  # as a running build holds it
        assert build(out) == 2
    assert "another data_prep build is writing to" in capsys.readouterr().err
    assert not (out / MANIFEST).exists()
    assert build(out) == 0  # once the lock is released


@pytest.mark.parametrize("planted", ["rejects.csv.tmp", "manifest.json.tmp", "shard-00000.lmdb.tmp",
                                     ".build/fingerprint.json"])
def test_links_planted_at_temporary_paths_are_not_written_through(tmp_path, planted):
    out = tmp_path / "out"
    (out / ".build").mkdir(parents=True)
    target = tmp_path / "precious.txt"
    target.write_text("keep me\n")
    os.symlink(target, out / planted)
    assert build(out) == 0
    assert target.read_text() == "keep me\n"
    assert not (out / planted).is_symlink()


def test_a_journal_that_is_a_link_stops_the_build(tmp_path, capsys):
    out = tmp_path / "out"
    (out / ".build").mkdir(parents=True)
    target = tmp_path / "precious.bin"
    target.write_bytes(b"keep me")
    os.symlink(target, out / ".build" / "journal.bin")
    assert build(out) == 2
    assert "journal.bin is a symbolic link" in capsys.readouterr().err
    assert target.read_bytes() == b"keep me"
