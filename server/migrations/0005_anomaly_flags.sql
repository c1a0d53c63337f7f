-- What the server flags for fleet managers to look at: an image hash that is no release, a
-- device that keeps refusing or failing verification, a release rolling back far more often
-- than the fleet, bad signatures under a known device id, a device gone silent. One open flag
-- per kind and subject (a device id, or a release id for a rollback storm): a repeat raises
-- its count and last time. Acknowledged flags stay, with who acknowledged them and when.
CREATE TABLE anomaly_flags (
    id TEXT PRIMARY KEY,
    kind TEXT NOT NULL,
    subject TEXT NOT NULL,
    hardware_id TEXT NOT NULL,
    reason TEXT NOT NULL,
    occurrences BIGINT NOT NULL,
    first_at BIGINT NOT NULL,
    last_at BIGINT NOT NULL,
    acknowledged_by TEXT,
    acknowledged_at BIGINT,
    acknowledged_note TEXT
);
CREATE UNIQUE INDEX anomaly_flags_open ON anomaly_flags (kind, subject)
    WHERE acknowledged_at IS NULL;
CREATE INDEX anomaly_flags_by_time ON anomaly_flags (last_at);
