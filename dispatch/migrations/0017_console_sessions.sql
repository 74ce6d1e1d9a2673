-- Supervisors signed in to the web console. The cookie's secret is stored as its SHA-256
-- only; the CSRF token is derived from the secret (never stored). A session ends when it
-- is signed out, idles past its limit, or reaches its absolute lifetime.
CREATE TABLE console_sessions (
    id             bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    agency_id      uuid NOT NULL REFERENCES agencies (id) ON DELETE CASCADE,
    supervisor_id  bigint NOT NULL REFERENCES supervisors (id) ON DELETE CASCADE,
    token_hash     bytea NOT NULL UNIQUE,
    created_at     timestamptz NOT NULL,
    last_seen_at   timestamptz NOT NULL,
    expires_at     timestamptz NOT NULL,
    signed_out_at  timestamptz
);
CREATE INDEX console_sessions_supervisor ON console_sessions (supervisor_id);
-- Housekeeping drops ended sessions by age.
CREATE INDEX console_sessions_expires ON console_sessions (expires_at);

-- The live board reads the agency's active incidents on every change.
CREATE INDEX incidents_agency_active ON incidents (agency_id, received_at DESC)
    WHERE status = 'active';

-- An optional map background for the console: a tile URL template with {z}, {x} and {y}.
-- Unset, maps are drawn on a plain background and no page loads anything from elsewhere.
ALTER TABLE agencies ADD COLUMN map_tile_url text
    CHECK (map_tile_url IS NULL OR (length(map_tile_url) <= 500 AND map_tile_url ~ '^https?://'));
