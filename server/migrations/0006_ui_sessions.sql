-- Dashboard sessions: a fleet manager logs in with an API token and gets a session cookie.
-- Only the SHA-256 of the cookie's secret is stored. A session lives no longer than its
-- expiry and no longer than its token: revoking the token ends every session made with it.
-- Each session has its own CSRF secret, which every form must send back.
CREATE TABLE ui_sessions (
    secret_sha256 TEXT PRIMARY KEY,
    token_id TEXT NOT NULL REFERENCES tokens (id),
    csrf TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    expires_at BIGINT NOT NULL
);
CREATE INDEX ui_sessions_by_expiry ON ui_sessions (expires_at);
