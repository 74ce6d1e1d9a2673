-- Supervisors' review: the incident list and the reports read the agency's incidents by
-- received time, newest first, a keyset page at a time.
CREATE INDEX incidents_agency_received ON incidents (agency_id, received_at DESC, id DESC);
-- The selective filters get the same order under their own key, so a page of a rare state,
-- call type or of test incidents reads its own rows rather than filtering everyone's.
CREATE INDEX incidents_agency_state ON incidents (agency_id, state, received_at DESC, id DESC);
CREATE INDEX incidents_agency_call_type
    ON incidents (agency_id, call_type_code, received_at DESC, id DESC);
CREATE INDEX incidents_agency_test ON incidents (agency_id, received_at DESC, id DESC)
    WHERE is_test;

-- Text search in the incident list (`q`: address or incident number, ILIKE '%…%') uses
-- trigram indexes when pg_trgm can be installed (it is a trusted extension: the database
-- owner may); without it the same query scans the agency's incidents, newest first.
DO $$
BEGIN
    CREATE EXTENSION IF NOT EXISTS pg_trgm;
EXCEPTION WHEN insufficient_privilege OR undefined_file OR feature_not_supported THEN
    RAISE NOTICE 'pg_trgm is not available: incident text search will scan';
END
$$;
DO $$
BEGIN
    IF EXISTS (SELECT 1 FROM pg_extension WHERE extname = 'pg_trgm') THEN
        CREATE INDEX incidents_number_trgm ON incidents USING gin (source_incident_id gin_trgm_ops);
        CREATE INDEX incidents_address_trgm ON incidents
            USING gin ((report #>> '{address,text}') gin_trgm_ops);
    END IF;
END
$$;

-- The roster is paged by id within the agency; erased accounts are never listed.
CREATE INDEX volunteers_agency_roster ON volunteers (agency_id, id) WHERE erased_at IS NULL;

-- Coverage by hour of the week: where on-duty volunteers were, coarsely. One row per
-- volunteer, hour of the week (UTC: 0 = Monday 00:00) and H3 resolution-8 cell (about
-- 0.7 km2), holding only when it was last seen. Written by the trigger below whenever a last
-- position is stored (positions are stored only while on duty); rows not seen for 28 days
-- are purged by housekeeping, and deleted with the volunteer. The coverage report counts
-- people per cell and hides cells with fewer than three.
CREATE TABLE coverage_presence (
    volunteer_id  bigint NOT NULL REFERENCES volunteers (id) ON DELETE CASCADE,
    agency_id     uuid NOT NULL REFERENCES agencies (id) ON DELETE CASCADE,
    hour_of_week  smallint NOT NULL CHECK (hour_of_week BETWEEN 0 AND 167),
    cell          bigint NOT NULL,
    last_seen_at  timestamptz NOT NULL,
    PRIMARY KEY (volunteer_id, hour_of_week, cell)
);
CREATE INDEX coverage_presence_hour ON coverage_presence (agency_id, hour_of_week, cell);
CREATE INDEX coverage_presence_seen ON coverage_presence (last_seen_at);

-- UTC, not the agency's zone: a trigger on the position write path must never fail, and a
-- zone name PostgreSQL does not know would fail it. The report maps local hours to UTC.
CREATE FUNCTION coverage_hour(at timestamptz) RETURNS smallint
    LANGUAGE sql IMMUTABLE PARALLEL SAFE
    RETURN ((extract(isodow FROM at AT TIME ZONE 'UTC')::int - 1) * 24
            + extract(hour FROM at AT TIME ZONE 'UTC')::int)::smallint;

-- The resolution-8 parent of a stored cell: resolution field set to 8, the digits of
-- resolutions 9 to 15 set to 7 ("unused"), as H3 lays out a cell index.
CREATE FUNCTION coverage_cell(cell bigint) RETURNS bigint
    LANGUAGE sql IMMUTABLE PARALLEL SAFE
    RETURN (cell & ~(15::bigint << 52)) | (8::bigint << 52) | 2097151;

-- Set-based, once per statement (the position writer stores a batch of fixes in one
-- statement), and only for fixes that enter another hour or resolution-8 cell than the
-- volunteer's previous one: a row-level upsert for every fix halved the writer's
-- throughput (20,000 vs 44,000 fixes/s). last_seen_at is then the first fix of that hour
-- in that cell (or an hour-old mark), fresh enough for "seen in the last 28 days".
CREATE FUNCTION coverage_presence_upsert(
    volunteer_ids bigint[], agency_ids uuid[], cells bigint[], seen timestamptz[]
) RETURNS void LANGUAGE sql AS $$
    INSERT INTO coverage_presence (volunteer_id, agency_id, hour_of_week, cell, last_seen_at)
    SELECT DISTINCT ON (f.volunteer_id, coverage_hour(f.at), coverage_cell(f.cell))
           f.volunteer_id, f.agency_id, coverage_hour(f.at), coverage_cell(f.cell), f.at
    FROM unnest(volunteer_ids, agency_ids, cells, seen) AS f(volunteer_id, agency_id, cell, at)
    ORDER BY f.volunteer_id, coverage_hour(f.at), coverage_cell(f.cell), f.at DESC
    ON CONFLICT (volunteer_id, hour_of_week, cell) DO UPDATE
        SET last_seen_at = EXCLUDED.last_seen_at
        WHERE coverage_presence.last_seen_at < EXCLUDED.last_seen_at - interval '1 hour'
$$;

CREATE FUNCTION coverage_presence_record() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'INSERT' THEN
        PERFORM coverage_presence_upsert(
            array_agg(c.volunteer_id), array_agg(c.agency_id), array_agg(c.cell),
            array_agg(c.reported_at))
        FROM changed c WHERE c.cell IS NOT NULL;
    ELSE
        PERFORM coverage_presence_upsert(
            array_agg(c.volunteer_id), array_agg(c.agency_id), array_agg(c.cell),
            array_agg(c.reported_at))
        FROM changed c
        WHERE c.cell IS NOT NULL
          AND NOT EXISTS (
              SELECT 1 FROM before b
              WHERE b.volunteer_id = c.volunteer_id AND b.cell IS NOT NULL
                AND coverage_cell(b.cell) = coverage_cell(c.cell)
                AND coverage_hour(b.reported_at) = coverage_hour(c.reported_at)
                AND b.reported_at > c.reported_at - interval '1 hour');
    END IF;
    RETURN NULL;
END
$$;
-- Transition tables need one trigger per event.
CREATE TRIGGER coverage_presence_inserted
    AFTER INSERT ON volunteer_positions REFERENCING NEW TABLE AS changed
    FOR EACH STATEMENT EXECUTE FUNCTION coverage_presence_record();
CREATE TRIGGER coverage_presence_updated
    AFTER UPDATE ON volunteer_positions REFERENCING OLD TABLE AS before NEW TABLE AS changed
    FOR EACH STATEMENT EXECUTE FUNCTION coverage_presence_record();

-- What the lists and reports count per incident, kept up to date by the trigger below so
-- that a report reads one row per incident instead of every event of its timeline. The
-- response log stays the source: every column here is a function of its rows (tested).
--
-- alert_firsts: the first time each alert was sent, accepted and reported on scene. Its
-- key makes "counted once" exact even when two transactions log the same alert's event
-- (an alert sent by push and then by SMS is one alert sent).
-- volunteer_id is the alert's (copied so that the burden per volunteer needs no join;
-- erasure moves it to the pseudonym with the alerts).
CREATE TABLE alert_firsts (
    alert_id      uuid NOT NULL REFERENCES alerts (id) ON DELETE CASCADE,
    event         text NOT NULL,
    incident_id   uuid NOT NULL REFERENCES incidents (id) ON DELETE CASCADE,
    agency_id     uuid NOT NULL REFERENCES agencies (id) ON DELETE CASCADE,
    volunteer_id  bigint NOT NULL,
    at            timestamptz NOT NULL,
    PRIMARY KEY (alert_id, event)
);
CREATE INDEX alert_firsts_incident ON alert_firsts (incident_id, event);

CREATE TABLE incident_review (
    incident_id        uuid PRIMARY KEY REFERENCES incidents (id) ON DELETE CASCADE,
    agency_id          uuid NOT NULL REFERENCES agencies (id) ON DELETE CASCADE,
    alerts_sent        integer NOT NULL DEFAULT 0,
    alerts_accepted    integer NOT NULL DEFAULT 0,
    alerts_on_scene    integer NOT NULL DEFAULT 0,
    -- A volunteer sent to fetch an AED reported arrival.
    aed_on_scene       boolean NOT NULL DEFAULT false,
    first_sent_at      timestamptz,
    first_accept_at    timestamptz,
    first_on_scene_at  timestamptz,
    -- The first reason the timeline gives for not alerting.
    not_alertable      text
);

CREATE FUNCTION incident_review_record() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF NOT EXISTS (
        SELECT 1 FROM new_rows
        WHERE event IN ('alert_sent', 'alert_accepted', 'alert_on_scene', 'not_alertable')
    ) THEN
        RETURN NULL;
    END IF;
    -- Rows are locked in key order (alerts, then incidents) so that two statements
    -- covering the same incidents cannot deadlock on each other.
    WITH firsts AS (
        INSERT INTO alert_firsts AS f (alert_id, event, incident_id, agency_id, volunteer_id, at)
        SELECT DISTINCT ON (n.alert_id, n.event)
               n.alert_id, n.event, n.incident_id, n.agency_id, a.volunteer_id, n.at
        FROM new_rows n JOIN alerts a ON a.id = n.alert_id
        WHERE n.alert_id IS NOT NULL
          AND n.event IN ('alert_sent', 'alert_accepted', 'alert_on_scene')
        ORDER BY n.alert_id, n.event, n.at
        ON CONFLICT (alert_id, event) DO UPDATE SET at = EXCLUDED.at WHERE EXCLUDED.at < f.at
        RETURNING f.alert_id, f.event, f.incident_id, f.agency_id, f.at, f.xmax = 0 AS inserted
    )
    INSERT INTO incident_review AS r (incident_id, agency_id, alerts_sent, alerts_accepted,
        alerts_on_scene, aed_on_scene, first_sent_at, first_accept_at, first_on_scene_at)
    SELECT f.incident_id, f.agency_id,
           count(*) FILTER (WHERE f.inserted AND f.event = 'alert_sent'),
           count(*) FILTER (WHERE f.inserted AND f.event = 'alert_accepted'),
           count(*) FILTER (WHERE f.inserted AND f.event = 'alert_on_scene'),
           coalesce(bool_or(a.role = 'aed') FILTER (WHERE f.event = 'alert_on_scene'), false),
           min(f.at) FILTER (WHERE f.event = 'alert_sent'),
           min(f.at) FILTER (WHERE f.event = 'alert_accepted'),
           min(f.at) FILTER (WHERE f.event = 'alert_on_scene')
    FROM firsts f JOIN alerts a ON a.id = f.alert_id
    GROUP BY f.incident_id, f.agency_id
    ORDER BY f.incident_id
    ON CONFLICT (incident_id) DO UPDATE SET
        alerts_sent = r.alerts_sent + EXCLUDED.alerts_sent,
        alerts_accepted = r.alerts_accepted + EXCLUDED.alerts_accepted,
        alerts_on_scene = r.alerts_on_scene + EXCLUDED.alerts_on_scene,
        aed_on_scene = r.aed_on_scene OR EXCLUDED.aed_on_scene,
        first_sent_at = least(r.first_sent_at, EXCLUDED.first_sent_at),
        first_accept_at = least(r.first_accept_at, EXCLUDED.first_accept_at),
        first_on_scene_at = least(r.first_on_scene_at, EXCLUDED.first_on_scene_at);

    INSERT INTO incident_review AS r (incident_id, agency_id, not_alertable)
    SELECT DISTINCT ON (n.incident_id) n.incident_id, n.agency_id, n.details ->> 'reason'
    FROM new_rows n
    WHERE n.event = 'not_alertable'
    ORDER BY n.incident_id, n.id
    ON CONFLICT (incident_id) DO UPDATE
        SET not_alertable = coalesce(r.not_alertable, EXCLUDED.not_alertable);
    RETURN NULL;
END
$$;
CREATE TRIGGER incident_review_record
    AFTER INSERT ON response_log REFERENCING NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION incident_review_record();

-- What the log already holds when this migration runs.
INSERT INTO alert_firsts (alert_id, event, incident_id, agency_id, volunteer_id, at)
SELECT r.alert_id, r.event, r.incident_id, r.agency_id, a.volunteer_id, min(r.at)
FROM response_log r JOIN alerts a ON a.id = r.alert_id
WHERE r.event IN ('alert_sent', 'alert_accepted', 'alert_on_scene')
GROUP BY r.alert_id, r.event, r.incident_id, r.agency_id, a.volunteer_id;

INSERT INTO incident_review (incident_id, agency_id, alerts_sent, alerts_accepted,
    alerts_on_scene, aed_on_scene, first_sent_at, first_accept_at, first_on_scene_at)
SELECT f.incident_id, f.agency_id,
       count(*) FILTER (WHERE f.event = 'alert_sent'),
       count(*) FILTER (WHERE f.event = 'alert_accepted'),
       count(*) FILTER (WHERE f.event = 'alert_on_scene'),
       coalesce(bool_or(a.role = 'aed') FILTER (WHERE f.event = 'alert_on_scene'), false),
       min(f.at) FILTER (WHERE f.event = 'alert_sent'),
       min(f.at) FILTER (WHERE f.event = 'alert_accepted'),
       min(f.at) FILTER (WHERE f.event = 'alert_on_scene')
FROM alert_firsts f JOIN alerts a ON a.id = f.alert_id
GROUP BY f.incident_id, f.agency_id;

INSERT INTO incident_review AS r (incident_id, agency_id, not_alertable)
SELECT DISTINCT ON (incident_id) incident_id, agency_id, details ->> 'reason'
FROM response_log
WHERE event = 'not_alertable'
ORDER BY incident_id, id
ON CONFLICT (incident_id) DO UPDATE SET not_alertable = EXCLUDED.not_alertable;
