-- Re-loading an unchanged file short-circuits on its SHA-256 (issue 15). A batch records the
-- options it was read with and the asset ranges it covered, so that the same bytes read the
-- same way by the same version can be recognised before staging; a short-circuited re-load
-- names the batch it repeats.
ALTER TABLE market.ingest_batches ADD COLUMN read_options VARCHAR;
ALTER TABLE market.ingest_batches ADD COLUMN asset_ranges JSON;
ALTER TABLE market.ingest_batches ADD COLUMN repeats_batch BIGINT;
