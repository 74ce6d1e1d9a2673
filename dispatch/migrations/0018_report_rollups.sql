-- The activations report of a finished range, kept once computed.
--
-- A report computes exact medians and percentiles over every incident (and every alerted
-- volunteer) of its range. Those cannot be merged from per-month sums without keeping every
-- value, so what is kept is the finished report itself, and it is trusted only while
-- nothing it depends on has changed since:
--
-- - a range is kept only when it ended at least two days ago (the reader's clock);
-- - any change that can alter a number of an incident received more than a day ago (the
--   writer's clock) adds one to the agency's `report_changes.changes`, in the transaction
--   that makes the change;
-- - a kept report records the count it was computed at, read in the same snapshot as the
--   incidents it counted; a count that has moved since means the report is computed again.
--
-- The day between the two margins covers a writer whose transaction began before the
-- reader's: it would have to stay open for a day to slip through. Changes to incidents
-- received in the last day (the live traffic) touch neither table, so intake and alerting
-- never wait on these rows.

-- No foreign key: the triggers below also run while an agency is being deleted, when a row
-- for it could not be inserted. A leftover row is a number nobody reads.
CREATE TABLE report_changes (
    agency_id  uuid PRIMARY KEY,
    changes    bigint NOT NULL
);

CREATE TABLE activations_cache (
    agency_id    uuid NOT NULL REFERENCES agencies (id) ON DELETE CASCADE,
    time_zone    text NOT NULL,
    range_from   timestamptz NOT NULL,
    range_to     timestamptz NOT NULL,
    changes      bigint NOT NULL,
    groups       jsonb NOT NULL,
    computed_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (agency_id, time_zone, range_from, range_to)
);

-- Agencies in key order, so that two statements changing the same agencies cannot deadlock.
CREATE FUNCTION report_changed(agency_ids uuid[]) RETURNS void LANGUAGE sql AS $$
    INSERT INTO report_changes AS c (agency_id, changes)
    SELECT DISTINCT a.id, 1 FROM agencies a WHERE a.id = ANY(agency_ids) ORDER BY a.id
    ON CONFLICT (agency_id) DO UPDATE SET changes = c.changes + 1
$$;

-- "Received more than a day ago": old enough that a kept report may count it.
CREATE FUNCTION report_settled(received_at timestamptz) RETURNS boolean
    LANGUAGE sql VOLATILE RETURN received_at < clock_timestamp() - interval '1 day';

-- Incidents: a late CAD report (a received time in the past), a deletion, or a change to a
-- column the report reads.
CREATE FUNCTION incidents_report_changed() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'INSERT' THEN
        PERFORM report_changed(ARRAY[NEW.agency_id]);
    ELSIF TG_OP = 'UPDATE' THEN
        IF report_settled(least(OLD.received_at, NEW.received_at)) THEN
            PERFORM report_changed(ARRAY[OLD.agency_id, NEW.agency_id]);
        END IF;
    ELSE
        PERFORM report_changed(array_agg(DISTINCT o.agency_id))
        FROM old_rows o WHERE report_settled(o.received_at);
    END IF;
    RETURN NULL;
END
$$;
-- Row level with a WHEN, so that intake of a current incident never calls the function.
CREATE TRIGGER incidents_report_inserted
    AFTER INSERT ON incidents FOR EACH ROW WHEN (report_settled(NEW.received_at))
    EXECUTE FUNCTION incidents_report_changed();
CREATE TRIGGER incidents_report_deleted
    AFTER DELETE ON incidents REFERENCING OLD TABLE AS old_rows
    FOR EACH STATEMENT EXECUTE FUNCTION incidents_report_changed();
-- An update that leaves these columns alone (most do: state, status, versions) never calls
-- the function.
CREATE TRIGGER incidents_report_updated
    AFTER UPDATE ON incidents FOR EACH ROW
    WHEN (OLD.received_at IS DISTINCT FROM NEW.received_at
          OR OLD.created_at IS DISTINCT FROM NEW.created_at
          OR OLD.agency_id IS DISTINCT FROM NEW.agency_id
          OR OLD.is_test IS DISTINCT FROM NEW.is_test
          OR OLD.alert_blocked IS DISTINCT FROM NEW.alert_blocked
          OR OLD.alerting_started_at IS DISTINCT FROM NEW.alerting_started_at
          OR OLD.first_ems_on_scene_at IS DISTINCT FROM NEW.first_ems_on_scene_at)
    EXECUTE FUNCTION incidents_report_changed();

-- alert_firsts rows go when a volunteer's alerts are deleted with the account, and change
-- volunteer on erasure: the burden per volunteer may move. Rare, so counted whatever the
-- incident's age.
CREATE FUNCTION alert_firsts_report_changed() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM report_changed(array_agg(DISTINCT o.agency_id)) FROM old_rows o;
    RETURN NULL;
END
$$;
CREATE TRIGGER alert_firsts_report_deleted
    AFTER DELETE ON alert_firsts REFERENCING OLD TABLE AS old_rows
    FOR EACH STATEMENT EXECUTE FUNCTION alert_firsts_report_changed();
CREATE TRIGGER alert_firsts_report_updated
    AFTER UPDATE ON alert_firsts REFERENCING OLD TABLE AS old_rows
    FOR EACH STATEMENT EXECUTE FUNCTION alert_firsts_report_changed();

-- The response log's summary trigger (0016), unchanged but for its last statement: an
-- answer logged for an incident received more than a day ago counts as a change.
CREATE OR REPLACE FUNCTION incident_review_record() RETURNS trigger LANGUAGE plpgsql AS $$
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

    PERFORM report_changed(array_agg(DISTINCT i.agency_id))
    FROM new_rows n JOIN incidents i ON i.id = n.incident_id
    WHERE n.event IN ('alert_sent', 'alert_accepted', 'alert_on_scene', 'not_alertable')
      AND report_settled(i.received_at);
    RETURN NULL;
END
$$;
