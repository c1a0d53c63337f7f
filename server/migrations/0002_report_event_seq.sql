-- Device reports carry their own event number (the agent's outbox retries an event until it
-- is acknowledged, each time with a fresh message counter): each event is stored once.
ALTER TABLE device_events ADD COLUMN event_seq BIGINT;
CREATE UNIQUE INDEX device_events_by_event_seq ON device_events (device_id, event_seq);
