-- CAD intake: per-agency call-type and place rules, intake protection, paramedic units.

ALTER TABLE agencies
    -- Which call types count as cardiac arrest, beyond the shipped defaults (see
    -- cad_adapters.call_types): {"codes": [...], "patterns": [...], "text_patterns": [...],
    -- "excluded_codes": [...], "excluded_patterns": [...], "mpds": true}.
    ADD COLUMN call_type_rules jsonb NOT NULL DEFAULT '{}'::jsonb,
    -- How place type is derived when the CAD does not say:
    -- {"residential": ["RES", "APT"], "public": ["STREET", "STATION"]} matched against
    -- place detail and address words.
    ADD COLUMN place_rules jsonb NOT NULL DEFAULT '{}'::jsonb,
    ADD COLUMN require_signature boolean NOT NULL DEFAULT false,
    ADD COLUMN intake_rate_per_min integer NOT NULL DEFAULT 600
        CHECK (intake_rate_per_min BETWEEN 1 AND 100000);

ALTER TABLE incidents
    ADD COLUMN first_ems_on_scene_at timestamptz;

-- The last known status of each paramedic unit on an incident, to diff full snapshots.
CREATE TABLE incident_units (
    incident_id  uuid NOT NULL REFERENCES incidents (id) ON DELETE CASCADE,
    agency_id    uuid NOT NULL REFERENCES agencies (id) ON DELETE CASCADE,
    unit_id      text NOT NULL,
    status       text NOT NULL,
    status_raw   text,
    status_at    timestamptz,
    updated_at   timestamptz NOT NULL,
    PRIMARY KEY (incident_id, unit_id)
);

-- Signatures seen inside the replay window: a second use is a replay.
CREATE TABLE intake_signatures (
    agency_id  uuid NOT NULL REFERENCES agencies (id) ON DELETE CASCADE,
    signature  bytea NOT NULL,
    seen_at    timestamptz NOT NULL,
    PRIMARY KEY (agency_id, signature)
);
CREATE INDEX intake_signatures_seen ON intake_signatures (seen_at);

-- CADs that only publish a JSON list of active incidents over HTTP: polled by a worker.
CREATE TABLE cad_feeds (
    id             bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    agency_id      uuid NOT NULL REFERENCES agencies (id) ON DELETE CASCADE,
    name           text NOT NULL,
    url            text NOT NULL CHECK (url ~ '^https?://'),
    interval_s     double precision NOT NULL DEFAULT 30 CHECK (interval_s >= 1),
    timeout_s      double precision NOT NULL DEFAULT 10 CHECK (timeout_s > 0 AND timeout_s <= 60),
    headers        jsonb NOT NULL DEFAULT '{}'::jsonb,
    mapping        jsonb NOT NULL,
    enabled        boolean NOT NULL DEFAULT true,
    next_poll_at   timestamptz NOT NULL DEFAULT now(),
    failures       integer NOT NULL DEFAULT 0,
    last_error     text,
    last_ok_at     timestamptz,
    UNIQUE (agency_id, name)
);
