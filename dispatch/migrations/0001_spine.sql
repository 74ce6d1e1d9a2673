-- The spine: agencies, volunteers, incidents, alerts, outbox, response log.
-- Every row that belongs to one agency carries agency_id, so tables can later be
-- partitioned or distributed by agency without a rewrite.

CREATE TABLE agencies (
    id                  uuid PRIMARY KEY,
    name                text NOT NULL CHECK (length(name) BETWEEN 1 AND 200),
    alert_radius_m      double precision NOT NULL DEFAULT 500
                        CHECK (alert_radius_m > 0 AND alert_radius_m <= 20000),
    alert_limit         integer NOT NULL DEFAULT 7 CHECK (alert_limit BETWEEN 1 AND 100),
    position_max_age_s  integer NOT NULL DEFAULT 900 CHECK (position_max_age_s > 0),
    alert_ttl_s         integer NOT NULL DEFAULT 600 CHECK (alert_ttl_s > 0),
    time_zone           text NOT NULL DEFAULT 'UTC',
    created_at          timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE agency_keys (
    id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    agency_id   uuid NOT NULL REFERENCES agencies (id) ON DELETE CASCADE,
    key_hash    bytea NOT NULL UNIQUE,
    label       text,
    created_at  timestamptz NOT NULL DEFAULT now(),
    revoked_at  timestamptz
);
CREATE INDEX agency_keys_agency ON agency_keys (agency_id) WHERE revoked_at IS NULL;

CREATE TABLE supervisors (
    id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    agency_id   uuid NOT NULL REFERENCES agencies (id) ON DELETE CASCADE,
    name        text NOT NULL,
    token_hash  bytea NOT NULL UNIQUE,
    created_at  timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE volunteers (
    id            bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    agency_id     uuid NOT NULL REFERENCES agencies (id) ON DELETE CASCADE,
    display_name  text NOT NULL CHECK (length(display_name) BETWEEN 1 AND 200),
    phone_e164    text CHECK (phone_e164 ~ '^\+[1-9][0-9]{6,14}$'),
    language      text NOT NULL DEFAULT 'en',
    token_hash    bytea NOT NULL UNIQUE,
    verified      boolean NOT NULL DEFAULT true,
    available     boolean NOT NULL DEFAULT true,
    created_at    timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX volunteers_agency ON volunteers (agency_id);

-- Last known position only: one row per volunteer, overwritten, never history.
CREATE TABLE volunteer_positions (
    volunteer_id  bigint PRIMARY KEY REFERENCES volunteers (id) ON DELETE CASCADE,
    agency_id     uuid NOT NULL REFERENCES agencies (id) ON DELETE CASCADE,
    lat           double precision NOT NULL CHECK (lat BETWEEN -90 AND 90),
    lon           double precision NOT NULL CHECK (lon BETWEEN -180 AND 180),
    accuracy_m    double precision,
    reported_at   timestamptz NOT NULL
);
CREATE INDEX volunteer_positions_reported ON volunteer_positions (reported_at);

CREATE TABLE incidents (
    id                   uuid PRIMARY KEY,
    agency_id            uuid NOT NULL REFERENCES agencies (id) ON DELETE CASCADE,
    source               text NOT NULL,
    source_incident_id   text NOT NULL,
    version_at           timestamptz NOT NULL,
    version_seq          bigint NOT NULL,
    content_hash         bytea NOT NULL,
    status               text NOT NULL CHECK (status IN ('active', 'closed', 'cancelled')),
    is_test              boolean NOT NULL,
    is_cardiac_arrest    boolean,
    call_type_code       text NOT NULL,
    lat                  double precision,
    lon                  double precision,
    place_type           text NOT NULL,
    received_at          timestamptz NOT NULL,
    report               jsonb NOT NULL,
    created_at           timestamptz NOT NULL DEFAULT now(),
    updated_at           timestamptz NOT NULL DEFAULT now(),
    UNIQUE (agency_id, source, source_incident_id)
);

CREATE TABLE alerts (
    id            uuid PRIMARY KEY,
    agency_id     uuid NOT NULL REFERENCES agencies (id) ON DELETE CASCADE,
    incident_id   uuid NOT NULL REFERENCES incidents (id) ON DELETE CASCADE,
    volunteer_id  bigint NOT NULL REFERENCES volunteers (id) ON DELETE CASCADE,
    wave          integer NOT NULL DEFAULT 1,
    role          text NOT NULL DEFAULT 'cpr',
    state         text NOT NULL,
    distance_m    double precision NOT NULL,
    expires_at    timestamptz NOT NULL,
    created_at    timestamptz NOT NULL DEFAULT now(),
    updated_at    timestamptz NOT NULL DEFAULT now(),
    -- A volunteer is alerted at most once per incident (invariant 2).
    UNIQUE (incident_id, volunteer_id)
);
CREATE INDEX alerts_volunteer ON alerts (volunteer_id, created_at DESC);

-- Side effects to perform, written in the same transaction as the decision.
CREATE TABLE outbox (
    id            bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    agency_id     uuid NOT NULL REFERENCES agencies (id) ON DELETE CASCADE,
    alert_id      uuid NOT NULL REFERENCES alerts (id) ON DELETE CASCADE,
    channel       text NOT NULL,
    attempts      integer NOT NULL DEFAULT 0,
    available_at  timestamptz NOT NULL DEFAULT now(),
    lease_until   timestamptz,
    done_at       timestamptz,
    outcome       text,
    last_error    text,
    created_at    timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX outbox_pending ON outbox (available_at, id) WHERE done_at IS NULL;

-- Append-only record of what happened, for supervisors and reports.
CREATE TABLE response_log (
    id            bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    agency_id     uuid NOT NULL REFERENCES agencies (id) ON DELETE CASCADE,
    incident_id   uuid NOT NULL REFERENCES incidents (id) ON DELETE CASCADE,
    alert_id      uuid REFERENCES alerts (id) ON DELETE CASCADE,
    volunteer_id  bigint,
    event         text NOT NULL,
    at            timestamptz NOT NULL,
    details       jsonb NOT NULL DEFAULT '{}'::jsonb
);
CREATE INDEX response_log_incident ON response_log (incident_id, at, id);
