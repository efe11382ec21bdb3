-- An owned id whose builds lists are empty and that a synced product's repository manifests
-- list under `products` is a DLC: it is mirrored as part of that base product's builds.
ALTER TABLE products ADD COLUMN dlc_of TEXT;  -- the base product id; NULL: not known as a DLC
