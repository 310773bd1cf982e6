-- The journal's tables. Kept to the SQL that SQLite and PostgreSQL share (BIGINT, TEXT,
-- PRIMARY KEY, ON CONFLICT), so that both journals use one schema.

CREATE TABLE IF NOT EXISTS journal_meta (
    key TEXT PRIMARY KEY,
    value TEXT NOT NULL
);

-- Every committed event, by revision: gapless and increasing. `body` is the event as JSON;
-- `actor` the principal whose command caused it (`agent:<id>`, `account:<id>`, `engine`).
CREATE TABLE IF NOT EXISTS events (
    revision BIGINT PRIMARY KEY,
    time_ms BIGINT NOT NULL,
    body TEXT NOT NULL,
    actor TEXT NOT NULL DEFAULT 'engine'
);

-- The latest state, serialised, and the revision it includes.
CREATE TABLE IF NOT EXISTS snapshots (
    revision BIGINT PRIMARY KEY,
    time_ms BIGINT NOT NULL,
    body TEXT NOT NULL
);

-- Answered request ids, so that a retry gets its first answer.
CREATE TABLE IF NOT EXISTS requests (
    request_id TEXT PRIMARY KEY,
    fingerprint TEXT NOT NULL,
    answer TEXT NOT NULL,
    revision BIGINT NOT NULL,
    time_ms BIGINT NOT NULL
);

CREATE INDEX IF NOT EXISTS requests_by_time ON requests (time_ms);

-- Closed tasks, each as it closed (`body`: the task as JSON), written with the event that
-- closed it and kept for the configured history. `revision` is that event's: the order.
CREATE TABLE IF NOT EXISTS task_history (
    task_id TEXT PRIMARY KEY,
    revision BIGINT NOT NULL,
    closed_at BIGINT NOT NULL,
    body TEXT NOT NULL
);

CREATE INDEX IF NOT EXISTS task_history_by_revision ON task_history (revision);
CREATE INDEX IF NOT EXISTS task_history_by_close ON task_history (closed_at);
