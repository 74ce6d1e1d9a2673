-- Recency and precision guards: an old, future-dated or vaguely located incident is stored
-- but never alerts anyone (a 2019 feed item once alerted volunteers in 2026).

ALTER TABLE agencies
    -- A new incident received longer ago than this never starts alerting.
    ADD COLUMN max_incident_age_s integer NOT NULL DEFAULT 1800
        CHECK (max_incident_age_s BETWEEN 60 AND 86400),
    -- A received time further ahead of our clock than this is a broken CAD clock.
    ADD COLUMN max_clock_skew_s integer NOT NULL DEFAULT 300
        CHECK (max_clock_skew_s BETWEEN 0 AND 3600),
    -- A location vaguer than this (CAP polygon centroid, coarse PIDF-LO circle) alerts nobody.
    ADD COLUMN max_location_uncertainty_m double precision NOT NULL DEFAULT 250
        CHECK (max_location_uncertainty_m BETWEEN 10 AND 100000);

ALTER TABLE incidents
    ADD COLUMN location_uncertainty_m double precision,
    -- Set once, before alerting starts, when the incident may never alert (too_old,
    -- in_future): later snapshots of the same incident cannot lift it.
    ADD COLUMN alert_blocked text;
