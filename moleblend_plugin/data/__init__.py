"""The fairseq side of the data: datasets over prepared shards and batch collation. The
records themselves, their featurization and the shards are in `moleblend_data`."""
