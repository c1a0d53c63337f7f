-- Staged rollouts (issue 11). Portable SQL: runs unchanged on SQLite and PostgreSQL.

-- Tags a fleet manager gives devices; a rollout's cohort may name tags.
CREATE TABLE device_tags (
    device_id TEXT NOT NULL REFERENCES devices (id),
    tag TEXT NOT NULL,
    PRIMARY KEY (device_id, tag)
);

-- One rollout of one release to a cohort, in stages. `cohort` and `stages` are JSON text;
-- `cohort_key` is the SHA-256 of the cohort's canonical JSON, so one index keeps a single
-- active (running or paused) rollout per hardware id and cohort across server processes.
-- `policy` is the fleet manager's `Signed<RolloutPolicy>` JSON as uploaded (NULL until then).
-- `revision` rises with every change of the row: writers compare and swap on it.
CREATE TABLE rollouts (
    id TEXT PRIMARY KEY,
    release_id TEXT NOT NULL REFERENCES releases (id),
    hardware_id TEXT NOT NULL,
    cohort TEXT NOT NULL,
    cohort_key TEXT NOT NULL,
    stages TEXT NOT NULL,
    max_failures_bp BIGINT NOT NULL,
    min_devices BIGINT NOT NULL,
    rate_limit_per_minute BIGINT,
    device_timeout_secs BIGINT NOT NULL,
    policy TEXT,
    state TEXT NOT NULL,
    stage BIGINT NOT NULL,
    stage_started BIGINT,
    started_at BIGINT,
    failures_acknowledged BIGINT NOT NULL,
    revision BIGINT NOT NULL,
    created_by TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL
);
CREATE INDEX rollouts_by_hardware ON rollouts (hardware_id, state);
CREATE UNIQUE INDEX rollouts_one_active ON rollouts (hardware_id, cohort_key)
    WHERE state IN ('running', 'paused');

-- Devices admitted to a rollout, with the stage they were admitted at (kept for good) and
-- their latest state from their signed reports.
CREATE TABLE rollout_members (
    rollout_id TEXT NOT NULL REFERENCES rollouts (id),
    device_id TEXT NOT NULL REFERENCES devices (id),
    stage BIGINT NOT NULL,
    state TEXT NOT NULL,
    admitted_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL,
    PRIMARY KEY (rollout_id, device_id)
);
-- The director's per-check-in lookups: a device's memberships, a rollout's recent admissions.
CREATE INDEX rollout_members_by_device ON rollout_members (device_id);
CREATE INDEX rollout_members_by_admission ON rollout_members (rollout_id, admitted_at);

-- Every change to a rollout: who, when, what and why, in order.
CREATE TABLE rollout_timeline (
    rollout_id TEXT NOT NULL REFERENCES rollouts (id),
    seq BIGINT NOT NULL,
    at BIGINT NOT NULL,
    actor TEXT NOT NULL,
    change TEXT NOT NULL,
    reason TEXT NOT NULL,
    PRIMARY KEY (rollout_id, seq)
);
