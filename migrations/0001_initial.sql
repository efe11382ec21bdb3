-- The archive's state: what GOG listed, what each build needs, and every stored object.
-- Objects are the todo list: a sync plans from rows that are not 'verified'.

CREATE TABLE runs (
    id INTEGER PRIMARY KEY,
    command TEXT NOT NULL,            -- sync, verify, ...
    pid INTEGER NOT NULL,
    started_at TEXT NOT NULL,
    ended_at TEXT,                    -- NULL: still running, or killed (the next run sweeps temp files)
    exit_code INTEGER,
    summary TEXT                      -- JSON
);

CREATE TABLE products (
    product_id TEXT PRIMARY KEY,
    first_seen TEXT NOT NULL,
    last_synced TEXT,
    last_error TEXT
);

-- Raw JSON answers, stored once per distinct body (builds lists are re-polled every run).
CREATE TABLE json_bodies (
    md5 TEXT PRIMARY KEY,
    body TEXT NOT NULL
);

CREATE TABLE build_list_fetches (
    id INTEGER PRIMARY KEY,
    product_id TEXT NOT NULL,
    os TEXT NOT NULL,
    generation INTEGER NOT NULL,
    with_password INTEGER NOT NULL,   -- the password itself is a secret and is not stored
    fetched_at TEXT NOT NULL,
    status INTEGER NOT NULL,
    body_md5 TEXT REFERENCES json_bodies(md5)
);
CREATE INDEX build_list_fetches_product ON build_list_fetches(product_id, os, fetched_at);

CREATE TABLE objects (
    id INTEGER PRIMARY KEY,
    kind TEXT NOT NULL,               -- layout.ObjectKind
    path TEXT NOT NULL UNIQUE,        -- relative to the archive root
    md5 TEXT,                         -- MD5 of the stored bytes (the name, for content-addressed kinds)
    size INTEGER,                     -- stored size; NULL until known
    inflated_md5 TEXT,                -- chunks: MD5 and size of the inflated bytes
    inflated_size INTEGER,
    state TEXT NOT NULL DEFAULT 'missing'
        CHECK (state IN ('missing', 'present', 'verified', 'corrupt', 'absent_upstream')),
    product_id TEXT,                  -- the product whose link it is fetched under
    endpoint TEXT,                    -- CDN endpoint name it came from
    source_url TEXT,                  -- redacted: no query string, no token segment
    error TEXT,                       -- the last problem, for the user
    fetched_at TEXT,
    verified_at TEXT,
    updated_at TEXT NOT NULL
);
CREATE INDEX objects_state ON objects(state, kind);

-- Every product a stored object belongs to (a chunk shared by products is stored once).
CREATE TABLE object_products (
    object_id INTEGER NOT NULL REFERENCES objects(id),
    product_id TEXT NOT NULL,
    PRIMARY KEY (object_id, product_id)
) WITHOUT ROWID;

CREATE TABLE builds (
    product_id TEXT NOT NULL,
    build_id TEXT NOT NULL,
    os TEXT NOT NULL,
    generation INTEGER NOT NULL,
    branch TEXT,
    version_name TEXT,
    date_published TEXT,
    legacy_build_id INTEGER,
    manifest_url TEXT,                -- redacted
    repository_object_id INTEGER REFERENCES objects(id),
    item TEXT NOT NULL,               -- the latest raw builds-list item (JSON)
    first_seen TEXT NOT NULL,
    last_seen TEXT NOT NULL,
    is_listed INTEGER NOT NULL DEFAULT 1,  -- 0: GOG stopped listing it; it is kept all the same
    state TEXT NOT NULL DEFAULT 'pending' CHECK (state IN ('pending', 'complete', 'incomplete')),
    completed_at TEXT,
    error TEXT,
    PRIMARY KEY (product_id, build_id)
);

-- The depots (manifests) a build uses.
CREATE TABLE build_depots (
    product_id TEXT NOT NULL,
    build_id TEXT NOT NULL,
    manifest_object_id INTEGER NOT NULL REFERENCES objects(id),
    depot_product_id TEXT NOT NULL,
    languages TEXT NOT NULL,          -- JSON list
    size INTEGER NOT NULL DEFAULT 0,
    compressed_size INTEGER NOT NULL DEFAULT 0,
    is_offline INTEGER NOT NULL DEFAULT 0,
    is_gog_depot INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (product_id, build_id, manifest_object_id)
) WITHOUT ROWID;

-- What a depot manifest references: 'chunk' and 'sfc' are required; 'sfc_member' chunks are
-- fetched once, opportunistically (the CDN may not have them, protocol.md 4.3).
CREATE TABLE manifest_objects (
    manifest_object_id INTEGER NOT NULL REFERENCES objects(id),
    object_id INTEGER NOT NULL REFERENCES objects(id),
    role TEXT NOT NULL CHECK (role IN ('chunk', 'sfc', 'sfc_member')),
    PRIMARY KEY (manifest_object_id, object_id)
) WITHOUT ROWID;
CREATE INDEX manifest_objects_object ON manifest_objects(object_id);

CREATE TABLE sfc_members (
    manifest_object_id INTEGER NOT NULL REFERENCES objects(id),
    path TEXT NOT NULL,
    sfc_offset INTEGER NOT NULL,
    sfc_size INTEGER NOT NULL,
    md5 TEXT,
    PRIMARY KEY (manifest_object_id, path)
) WITHOUT ROWID;

-- Depot manifests whose references are recorded above (parsed once, then planned from SQL).
CREATE TABLE indexed_manifests (
    object_id INTEGER PRIMARY KEY REFERENCES objects(id),
    indexed_at TEXT NOT NULL
);
