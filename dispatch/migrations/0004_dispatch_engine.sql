-- The dispatch engine: versioned alert policies, volunteer eligibility, incident
-- progress and its deadline (the ticker polls next_check_at), AEDs.

CREATE TABLE alert_policies (
    agency_id   uuid NOT NULL REFERENCES agencies (id) ON DELETE CASCADE,
    version     integer NOT NULL,
    policy      jsonb NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (agency_id, version)
);

ALTER TABLE volunteers
    ADD COLUMN tier text NOT NULL DEFAULT 'lay' CHECK (tier IN ('lay', 'professional')),
    ADD COLUMN certified_until timestamptz,
    ADD COLUMN on_duty boolean NOT NULL DEFAULT true,
    ADD COLUMN quiet_from time,
    ADD COLUMN quiet_until time,
    ADD COLUMN time_zone text NOT NULL DEFAULT 'UTC',
    ADD COLUMN daily_budget integer CHECK (daily_budget IS NULL OR daily_budget >= 0),
    ADD COLUMN is_tester boolean NOT NULL DEFAULT false;

ALTER TABLE incidents
    ADD COLUMN state text NOT NULL DEFAULT 'received',
    ADD COLUMN policy_version integer,
    ADD COLUMN alerting_started_at timestamptz,
    ADD COLUMN next_check_at timestamptz;
CREATE INDEX incidents_due ON incidents (next_check_at) WHERE next_check_at IS NOT NULL;

ALTER TABLE alerts
    ADD COLUMN answered_at timestamptz;
-- "On another active incident" and the daily budget look alerts up by volunteer and time.
CREATE INDEX alerts_volunteer_state ON alerts (volunteer_id, state);

CREATE TABLE aeds (
    id                  bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    agency_id           uuid NOT NULL REFERENCES agencies (id) ON DELETE CASCADE,
    external_id         text,
    name                text NOT NULL,
    lat                 double precision NOT NULL CHECK (lat BETWEEN -90 AND 90),
    lon                 double precision NOT NULL CHECK (lon BETWEEN -180 AND 180),
    -- Weekly opening hours: {"mon": [["08:00", "18:00"]], ...}; NULL means always accessible.
    access_hours        jsonb,
    indoor_description  text,
    access_notes        text,
    active              boolean NOT NULL DEFAULT true,
    updated_at          timestamptz NOT NULL DEFAULT now(),
    UNIQUE (agency_id, external_id)
);
CREATE INDEX aeds_agency ON aeds (agency_id) WHERE active;

-- The AED an alert's volunteer is asked to fetch on the way (role 'aed').
ALTER TABLE alerts ADD COLUMN aed_id bigint REFERENCES aeds (id) ON DELETE SET NULL;
