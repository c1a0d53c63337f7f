-- How many times a worker took each delta job. A run that fails (its differ crashed, hit a
-- limit or hung, or its worker died) re-queues the job until it has had its last allowed
-- run; then the job is failed with the reason, never retried forever.
ALTER TABLE delta_jobs ADD COLUMN runs BIGINT NOT NULL DEFAULT 0;

-- Releases a device reported as rolled back or failed on trial (boot or health check): the
-- director does not assign them to that device again until an operator asks for a retry,
-- which deletes the device's rows. Ends the install → fail → roll back → install loop.
CREATE TABLE device_rejections (
    device_id TEXT NOT NULL REFERENCES devices (id),
    release_id TEXT NOT NULL REFERENCES releases (id),
    reason TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    PRIMARY KEY (device_id, release_id)
);
