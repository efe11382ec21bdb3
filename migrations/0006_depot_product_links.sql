-- A build_depots row is linked once its depot's chunks are recorded as belonging to the
-- depot's product (object_products). Kept in the DB rather than in memory, so that a run
-- killed between fetching a depot manifest and indexing it still links them next time.
ALTER TABLE build_depots ADD COLUMN products_linked INTEGER NOT NULL DEFAULT 0;
