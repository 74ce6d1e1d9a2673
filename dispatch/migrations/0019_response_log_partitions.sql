-- The response log becomes a table partitioned by month on `at`, so that retention drops
-- whole months (DETACH + DROP, no row-by-row delete, no bloat) and a query for a time range
-- reads only its months. Same name, columns, identity, defaults, foreign keys, indexes and
-- summary trigger: the previous release inserts and reads exactly as before.
--
-- The existing table is not copied: it becomes the partition of everything before the
-- next month (MINVALUE .. start of next month, UTC), so the migration holds its exclusive
-- lock only for a scan checking that bound and for building the new (id, at) key index,
-- not for rewriting the log (2,000,000 events: seconds, not minutes). That partition is
-- dropped like any other once wholly older than the retention.
--
-- The primary key must include the partition key: (id, at). Nothing relies on id alone
-- being unique beyond the identity that hands it out (no foreign key points at the log;
-- timelines and cursors order by (at, id); the board's change mark reads max(id)).

LOCK TABLE response_log IN ACCESS EXCLUSIVE MODE;

ALTER TABLE response_log RENAME TO response_log_legacy;
DROP TRIGGER incident_review_record ON response_log_legacy;
ALTER TABLE response_log_legacy DROP CONSTRAINT response_log_pkey;
ALTER INDEX response_log_incident RENAME TO response_log_legacy_incident;
ALTER INDEX response_log_alert_idx RENAME TO response_log_legacy_alert_idx;

CREATE TABLE response_log (
    id            bigint GENERATED ALWAYS AS IDENTITY,
    agency_id     uuid NOT NULL REFERENCES agencies (id) ON DELETE CASCADE,
    incident_id   uuid NOT NULL REFERENCES incidents (id) ON DELETE CASCADE,
    alert_id      uuid REFERENCES alerts (id) ON DELETE CASCADE,
    volunteer_id  bigint,
    event         text NOT NULL,
    at            timestamptz NOT NULL,
    details       jsonb NOT NULL DEFAULT '{}'::jsonb,
    PRIMARY KEY (id, at)
) PARTITION BY RANGE (at);
-- The timeline and ON DELETE CASCADE from incidents / alerts look rows up by these keys;
-- each partition gets its own copy (the legacy partition's existing ones are adopted).
CREATE INDEX response_log_incident ON response_log (incident_id, at, id);
CREATE INDEX response_log_alert_idx ON response_log (alert_id) WHERE alert_id IS NOT NULL;

-- Rows for a month that has no partition land here rather than failing the insert; the
-- housekeeping job moves them into their month's partition when it creates it, and
-- deletes those older than the retention by `at` (hence this partition's own index).
CREATE TABLE response_log_default PARTITION OF response_log DEFAULT;
CREATE INDEX response_log_default_at ON response_log_default (at);

DO $$
DECLARE
    next_id   bigint;
    bound     timestamptz := date_trunc('month', now() AT TIME ZONE 'UTC') AT TIME ZONE 'UTC'
                             + interval '1 month';
    month     timestamptz;
BEGIN
    -- The identity continues where the old one stopped (ids stay increasing for the
    -- board's change mark), and the old sequence goes with the old identity.
    EXECUTE format(
        'SELECT CASE WHEN is_called THEN last_value + 1 ELSE last_value END FROM %s',
        pg_get_serial_sequence('response_log_legacy', 'id'))
    INTO next_id;
    ALTER TABLE response_log_legacy ALTER COLUMN id DROP IDENTITY;
    EXECUTE format('ALTER TABLE response_log ALTER COLUMN id RESTART WITH %s', next_id);

    -- This month's successor and two more, so that no insert needs the housekeeping job
    -- before it first runs; it keeps the same lead from then on.
    FOR i IN 0..2 LOOP
        month := bound + make_interval(months => i);
        EXECUTE format(
            'CREATE TABLE %I PARTITION OF response_log FOR VALUES FROM (%L) TO (%L)',
            'response_log_' || to_char(month AT TIME ZONE 'UTC', 'YYYY_MM'),
            month, month + interval '1 month');
    END LOOP;

    -- Rows stamped after the bound (a clock ahead) go to their month, or to the default.
    WITH ahead AS (DELETE FROM response_log_legacy WHERE at >= bound RETURNING *)
    INSERT INTO response_log OVERRIDING SYSTEM VALUE
    SELECT id, agency_id, incident_id, alert_id, volunteer_id, event, at, details FROM ahead;

    EXECUTE format(
        'ALTER TABLE response_log ATTACH PARTITION response_log_legacy'
        ' FOR VALUES FROM (MINVALUE) TO (%L)', bound);
END
$$;

-- PostgreSQL 15 fires a statement trigger with a transition table on the partitioned
-- parent for rows inserted through it, whichever partitions they land in. Rows the
-- housekeeping job moves from the default partition go straight into the partition and
-- do not fire it: they were summarised when first logged.
CREATE TRIGGER incident_review_record
    AFTER INSERT ON response_log REFERENCING NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION incident_review_record();
