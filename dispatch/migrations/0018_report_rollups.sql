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
-- incident's age. (Its other updates, an earlier time, reach incident_review.)
CREATE FUNCTION alert_firsts_report_changed() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'UPDATE' THEN
        PERFORM report_changed(ARRAY[NEW.agency_id]);
    ELSE
        PERFORM report_changed(array_agg(DISTINCT o.agency_id)) FROM old_rows o;
    END IF;
    RETURN NULL;
END
$$;
CREATE TRIGGER alert_firsts_report_deleted
    AFTER DELETE ON alert_firsts REFERENCING OLD TABLE AS old_rows
    FOR EACH STATEMENT EXECUTE FUNCTION alert_firsts_report_changed();
CREATE TRIGGER alert_firsts_report_updated
    AFTER UPDATE ON alert_firsts FOR EACH ROW
    WHEN (OLD.volunteer_id IS DISTINCT FROM NEW.volunteer_id)
    EXECUTE FUNCTION alert_firsts_report_changed();

-- The response log's answers reach the report through its summary (0016), whose rows the
-- summary trigger inserts or updates only when an answer changes a count or a first time.
CREATE FUNCTION incident_review_report_changed() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM report_changed(array_agg(DISTINCT i.agency_id))
    FROM new_rows n JOIN incidents i ON i.id = n.incident_id
    WHERE report_settled(i.received_at);
    RETURN NULL;
END
$$;
CREATE TRIGGER incident_review_report_inserted
    AFTER INSERT ON incident_review REFERENCING NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION incident_review_report_changed();
CREATE TRIGGER incident_review_report_updated
    AFTER UPDATE ON incident_review REFERENCING NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION incident_review_report_changed();
