-- Volunteers' own accounts: sign-up and sign-in by phone code, device sessions with rotating
-- refresh tokens, credentials with scans and their review, notices to volunteers outside any
-- alert (codes, reminders, aftercare), feedback and debrief requests, erasure, and the
-- append-only audit log of supervisor actions.

ALTER TABLE volunteers
    -- Set when the volunteer erased their account: this row is then the pseudonym that
    -- carries their alerts and response-log facts, with nothing personal left on it.
    ADD COLUMN erased_at timestamptz,
    -- The tier the volunteer asks for (NULL: whatever their credentials allow). A volunteer
    -- granted "professional" who asks for "lay" is alerted to public places only.
    ADD COLUMN tier_requested text CHECK (tier_requested IN ('lay', 'professional')),
    -- When a professional tier granted by an approved licence lapses (NULL: it does not).
    ADD COLUMN professional_until timestamptz,
    ADD COLUMN self_registered boolean NOT NULL DEFAULT false;

-- Codes sent by SMS to sign up or sign in. The number is kept only as a hash (rate limits
-- and look-up need no more); the code only as a salted hash. Purged a day after issue.
CREATE TABLE phone_codes (
    id            bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    agency_id     uuid NOT NULL REFERENCES agencies (id) ON DELETE CASCADE,
    phone_hash    bytea NOT NULL,
    purpose       text NOT NULL CHECK (purpose IN ('signup', 'signin')),
    salt          bytea NOT NULL,
    code_hash     bytea NOT NULL,
    -- Name and language of an account to create when the code is verified.
    signup        jsonb,
    created_at    timestamptz NOT NULL,
    expires_at    timestamptz NOT NULL,
    attempts      integer NOT NULL DEFAULT 0,
    state         text NOT NULL DEFAULT 'live'
                  CHECK (state IN ('live', 'used', 'voided', 'superseded'))
);
CREATE INDEX phone_codes_phone ON phone_codes (agency_id, phone_hash, id DESC);
CREATE INDEX phone_codes_created ON phone_codes (created_at);

-- One row per signed-in device. The access token (short-lived) and every refresh token are
-- stored as SHA-256 hashes only.
CREATE TABLE volunteer_sessions (
    id                  bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    agency_id           uuid NOT NULL REFERENCES agencies (id) ON DELETE CASCADE,
    volunteer_id        bigint NOT NULL REFERENCES volunteers (id) ON DELETE CASCADE,
    device_label        text CHECK (length(device_label) <= 100),
    access_hash         bytea NOT NULL UNIQUE,
    access_expires_at   timestamptz NOT NULL,
    refresh_expires_at  timestamptz NOT NULL,
    generation          integer NOT NULL DEFAULT 1,
    created_at          timestamptz NOT NULL,
    refreshed_at        timestamptz,
    revoked_at          timestamptz,
    revoked_reason      text
);
CREATE INDEX volunteer_sessions_volunteer ON volunteer_sessions (volunteer_id, id DESC);

-- Every refresh token a session was ever given. Only the newest is unused; presenting a
-- used one means the chain leaked, and the session is revoked.
CREATE TABLE session_refresh_tokens (
    token_hash   bytea PRIMARY KEY,
    session_id   bigint NOT NULL REFERENCES volunteer_sessions (id) ON DELETE CASCADE,
    agency_id    uuid NOT NULL REFERENCES agencies (id) ON DELETE CASCADE,
    generation   integer NOT NULL,
    created_at   timestamptz NOT NULL,
    used_at      timestamptz
);
CREATE INDEX session_refresh_tokens_session ON session_refresh_tokens (session_id);

-- A push device registered through a session stops with it.
ALTER TABLE devices
    ADD COLUMN session_id bigint REFERENCES volunteer_sessions (id) ON DELETE SET NULL;

-- Proof of training: what the volunteer declared, and the supervisor's review.
CREATE TABLE credentials (
    id            bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    agency_id     uuid NOT NULL REFERENCES agencies (id) ON DELETE CASCADE,
    volunteer_id  bigint NOT NULL REFERENCES volunteers (id) ON DELETE CASCADE,
    kind          text NOT NULL CHECK (kind IN ('cpr_bls', 'professional_licence')),
    issuer        text NOT NULL CHECK (length(issuer) BETWEEN 1 AND 200),
    number        text CHECK (length(number) <= 100),
    expires_on    date NOT NULL,
    -- expires_on at 00:00 in the agency's time zone when it was submitted or reviewed.
    expires_at    timestamptz NOT NULL,
    state         text NOT NULL DEFAULT 'pending'
                  CHECK (state IN ('pending', 'approved', 'rejected')),
    reason        text,
    submitted_at  timestamptz NOT NULL,
    reviewed_at   timestamptz,
    reviewed_by   bigint REFERENCES supervisors (id) ON DELETE SET NULL
);
CREATE INDEX credentials_volunteer ON credentials (volunteer_id, id DESC);
CREATE INDEX credentials_agency_state ON credentials (agency_id, state, id DESC);

-- The scan, in its own table so that listing credentials never reads the bytes.
CREATE TABLE credential_scans (
    credential_id  bigint PRIMARY KEY REFERENCES credentials (id) ON DELETE CASCADE,
    agency_id      uuid NOT NULL REFERENCES agencies (id) ON DELETE CASCADE,
    media_type     text NOT NULL CHECK (media_type IN ('application/pdf', 'image/jpeg', 'image/png')),
    size_bytes     integer NOT NULL CHECK (size_bytes BETWEEN 1 AND 5242880),
    sha256         bytea NOT NULL,
    content        bytea NOT NULL,
    uploaded_at    timestamptz NOT NULL
);

-- Messages to a volunteer that are not an alert: sign-in codes, credential reminders and
-- reviews, aftercare. An outbox like the alerts' one: written in the transaction that
-- decides, sent by a worker that leases due rows with SKIP LOCKED. A code's text and the
-- number it goes to are wiped once it is sent.
CREATE TABLE volunteer_notices (
    id            bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    ref           uuid NOT NULL UNIQUE,
    agency_id     uuid NOT NULL REFERENCES agencies (id) ON DELETE CASCADE,
    volunteer_id  bigint REFERENCES volunteers (id) ON DELETE CASCADE,
    phone_e164    text,
    kind          text NOT NULL,
    -- Queued once per key (a reminder for a credential, a follow-up for an alert).
    dedupe_key    text UNIQUE,
    title         text,
    body          text,
    data          jsonb NOT NULL DEFAULT '{}'::jsonb,
    available_at  timestamptz NOT NULL,
    expires_at    timestamptz NOT NULL,
    lease_until   timestamptz,
    attempts      integer NOT NULL DEFAULT 0,
    done_at       timestamptz,
    outcome       text,
    channel       text,
    last_error    text,
    created_at    timestamptz NOT NULL
);
CREATE INDEX volunteer_notices_due ON volunteer_notices (available_at, id) WHERE done_at IS NULL;
CREATE INDEX volunteer_notices_volunteer ON volunteer_notices (volunteer_id);

-- How a volunteer is after an alert, and whether they want to talk to someone.
CREATE TABLE alert_feedback (
    id              bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    agency_id       uuid NOT NULL REFERENCES agencies (id) ON DELETE CASCADE,
    volunteer_id    bigint NOT NULL REFERENCES volunteers (id) ON DELETE CASCADE,
    alert_id        uuid NOT NULL REFERENCES alerts (id) ON DELETE CASCADE,
    text            text,
    wants_to_talk   boolean NOT NULL,
    created_at      timestamptz NOT NULL,
    handled_at      timestamptz,
    handled_by      bigint REFERENCES supervisors (id) ON DELETE SET NULL,
    handled_note    text
);
CREATE INDEX alert_feedback_open ON alert_feedback (agency_id, id DESC)
    WHERE wants_to_talk AND handled_at IS NULL;
CREATE INDEX alert_feedback_volunteer ON alert_feedback (volunteer_id);

-- Who did what, when, with the values before and after. Append-only: the trigger below
-- refuses every UPDATE and DELETE. Never holds a name, phone number or secret.
CREATE TABLE audit_log (
    id             bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    agency_id      uuid NOT NULL REFERENCES agencies (id),
    supervisor_id  bigint,
    actor          text NOT NULL,
    action         text NOT NULL,
    target_type    text NOT NULL,
    target_id      text,
    at             timestamptz NOT NULL,
    before         jsonb,
    after          jsonb
);
CREATE INDEX audit_log_agency ON audit_log (agency_id, id DESC);

CREATE FUNCTION audit_log_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'audit_log is append-only' USING ERRCODE = 'insufficient_privilege';
END
$$;
CREATE TRIGGER audit_log_append_only BEFORE UPDATE OR DELETE ON audit_log
    FOR EACH ROW EXECUTE FUNCTION audit_log_append_only();
CREATE TRIGGER audit_log_no_truncate BEFORE TRUNCATE ON audit_log
    FOR EACH STATEMENT EXECUTE FUNCTION audit_log_append_only();
