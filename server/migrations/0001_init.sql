-- Otter server schema. Portable SQL: runs unchanged on SQLite and PostgreSQL.
-- Ids are random text, times are Unix seconds, digests are lowercase hex.

-- Bearer tokens: only the SHA-256 of the secret is stored.
CREATE TABLE tokens (
    id TEXT PRIMARY KEY,
    secret_sha256 TEXT NOT NULL,
    scopes TEXT NOT NULL,
    label TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    revoked_at BIGINT
);

-- Published firmware releases (full signed images, stored by SHA-256).
CREATE TABLE releases (
    id TEXT PRIMARY KEY,
    hardware_id TEXT NOT NULL,
    version TEXT NOT NULL,
    major BIGINT NOT NULL,
    minor BIGINT NOT NULL,
    patch BIGINT NOT NULL,
    security_counter BIGINT NOT NULL,
    key_id TEXT NOT NULL,
    sha256 TEXT NOT NULL,
    length BIGINT NOT NULL,
    target_name TEXT NOT NULL UNIQUE,
    created_at BIGINT NOT NULL,
    UNIQUE (hardware_id, major, minor, patch)
);

-- Compressed bsdiff patches between two releases of one hardware id.
CREATE TABLE deltas (
    id TEXT PRIMARY KEY,
    from_release TEXT NOT NULL REFERENCES releases (id),
    to_release TEXT NOT NULL REFERENCES releases (id),
    target_name TEXT NOT NULL UNIQUE,
    sha256 TEXT NOT NULL,
    length BIGINT NOT NULL,
    created_at BIGINT NOT NULL,
    UNIQUE (from_release, to_release)
);

-- Background delta builds, one per publish. Any server process may claim a queued job;
-- a running job whose heartbeat is old is taken over.
CREATE TABLE delta_jobs (
    id TEXT PRIMARY KEY,
    release_id TEXT NOT NULL REFERENCES releases (id),
    state TEXT NOT NULL,
    bases_total BIGINT NOT NULL,
    bases_done BIGINT NOT NULL,
    message TEXT NOT NULL,
    worker TEXT,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL
);

-- What each job did with each base release: built, dropped (not smaller), skipped, failed.
CREATE TABLE delta_attempts (
    job_id TEXT NOT NULL REFERENCES delta_jobs (id),
    from_release TEXT NOT NULL REFERENCES releases (id),
    outcome TEXT NOT NULL,
    patch_length BIGINT,
    full_compressed_length BIGINT,
    millis BIGINT NOT NULL,
    reason TEXT NOT NULL,
    PRIMARY KEY (job_id, from_release)
);

-- Registered devices. `counter` is the last accepted check-in/report counter (replay guard).
CREATE TABLE devices (
    id TEXT PRIMARY KEY,
    serial TEXT NOT NULL UNIQUE,
    public_key TEXT NOT NULL UNIQUE,
    hardware_id TEXT NOT NULL,
    counter BIGINT,
    current_version TEXT,
    image_sha256 TEXT,
    status TEXT,
    last_seen BIGINT,
    created_at BIGINT NOT NULL
);

-- Per-device timeline of signed reports, ordered by the device's counter.
CREATE TABLE device_events (
    device_id TEXT NOT NULL REFERENCES devices (id),
    counter BIGINT NOT NULL,
    device_time BIGINT NOT NULL,
    received_at BIGINT NOT NULL,
    kind TEXT NOT NULL,
    event TEXT NOT NULL,
    PRIMARY KEY (device_id, counter)
);

-- Signed TUF root versions, imported from the key directory.
CREATE TABLE tuf_roots (
    version BIGINT PRIMARY KEY,
    body TEXT NOT NULL
);

-- Signed targets, snapshot and timestamp metadata, every version kept (served by version).
CREATE TABLE tuf_metadata (
    role TEXT NOT NULL,
    version BIGINT NOT NULL,
    body TEXT NOT NULL,
    sha256 TEXT NOT NULL,
    expires BIGINT NOT NULL,
    created_at BIGINT NOT NULL,
    PRIMARY KEY (role, version)
);

-- One row: updating it inside a transaction makes that transaction the only metadata writer,
-- across every server process sharing the database.
CREATE TABLE tuf_writer (
    id BIGINT PRIMARY KEY,
    generation BIGINT NOT NULL
);
INSERT INTO tuf_writer (id, generation) VALUES (1, 0);
