-- GOG publishes no MD5 of a whole V1 blob, only of each file record inside it. A blob is
-- proven by its records' MD5s plus the MD5 of the bytes no record covers (in offset order;
-- that of zero bytes when the records cover it all), measured when the blob is stored: one
-- pass over the blob checks both. Blobs stored before keep their whole-blob MD5 in
-- objects.md5 (verify checks it too) until they are stored again.
ALTER TABLE v1_blobs ADD COLUMN uncovered_md5 TEXT;
