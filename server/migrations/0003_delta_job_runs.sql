-- How many times a worker took each delta job. A run that fails (its differ crashed, hit a
-- limit or hung, or its worker died) re-queues the job until it has had its last allowed
-- run; then the job is failed with the reason, never retried forever.
ALTER TABLE delta_jobs ADD COLUMN runs BIGINT NOT NULL DEFAULT 0;
