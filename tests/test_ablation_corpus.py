"""The ablation study's pretraining corpus (examples/ablations/build_corpus.sh): the same
records every build, on the first rows of MOSES (tests/fixtures/moses, 40 rows)."""
import hashlib
import json
import os
import subprocess

import pytest

from moleblend_data.shards import MoleculeShards

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SCRIPT = os.path.join(REPO, "examples", "ablations", "build_corpus.sh")
DATA = os.path.join(REPO, "tests", "fixtures")
ROWS = 30


def build(dest, *flags):
    return subprocess.run(["bash", SCRIPT, str(dest), DATA, "--rows", str(ROWS), *flags], cwd=REPO,
                          capture_output=True, text=True)


def records(dest):
    """Every record's bytes in dataset order, and each shard's records sha256 from the manifest."""
    shards = MoleculeShards(str(dest))
    data = [shards.read_bytes(i)[0] for i in range(len(shards))]
    shards.close()
    manifest = json.load(open(os.path.join(dest, "manifest.json"), encoding="utf-8"))
    return data, [(s["num_records"], s["sha256"]) for s in manifest["shards"]], manifest


@pytest.fixture(scope="module")
def first_build(tmp_path_factory):
    dest = tmp_path_factory.mktemp("corpus") / "first"
    result = build(dest)
    assert result.returncode == 0, result.stderr
    return dest


def test_two_builds_give_the_same_records_whatever_the_workers(first_build, tmp_path):
    again, with_workers = tmp_path / "again", tmp_path / "workers"
    assert build(again).returncode == 0
    assert build(with_workers, "--workers", "2").returncode == 0
    first, first_hashes, manifest = records(first_build)
    assert manifest["num_molecules"] == ROWS and manifest["num_rejected"] == 0
    assert manifest["geometry"] == {"rdkit_etkdg_mmff": ROWS}
    assert manifest["split"] == {"method": "random", "fractions": [0.9, 0.05, 0.05], "seed": 0}
    assert sum(manifest["splits"].values()) == ROWS
    for other in (again, with_workers):
        data, hashes, _ = records(other)
        assert hashes == first_hashes
        assert [hashlib.sha256(d).hexdigest() for d in data] == [hashlib.sha256(d).hexdigest() for d in first]
    assert len(set(first)) == ROWS  # distinct molecules, not one record repeated


def test_a_built_corpus_is_kept_and_another_recipe_is_refused(first_build):
    before = os.path.getmtime(os.path.join(first_build, "manifest.json"))
    kept = build(first_build)
    assert kept.returncode == 0 and "already built" in kept.stdout
    assert os.path.getmtime(os.path.join(first_build, "manifest.json")) == before
    other = subprocess.run(["bash", SCRIPT, str(first_build), DATA, "--rows", "20"], cwd=REPO,
                           capture_output=True, text=True)
    assert other.returncode != 0 and "rows (--limit): 30, the recipe says 20" in other.stderr
