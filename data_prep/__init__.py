"""Raw molecule files -> prepared datasets (manifest.json + LMDB shards).

    python -m data_prep SOURCE --output DIR [options]     (see --help)
"""
