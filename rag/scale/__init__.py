"""Scale-out: indexing on Ray (`ray_ingest`) and sharded search (`shards`)."""
