-- Supervisors' review: the incident list and the reports read the agency's incidents by
-- received time, newest first, a keyset page at a time.
CREATE INDEX incidents_agency_received ON incidents (agency_id, received_at DESC, id DESC);

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
CREATE FUNCTION coverage_presence_record() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    utc timestamp := NEW.reported_at AT TIME ZONE 'UTC';
BEGIN
    IF NEW.cell IS NULL THEN
        RETURN NULL;
    END IF;
    INSERT INTO coverage_presence (volunteer_id, agency_id, hour_of_week, cell, last_seen_at)
    VALUES (
        NEW.volunteer_id,
        NEW.agency_id,
        (extract(isodow FROM utc)::int - 1) * 24 + extract(hour FROM utc)::int,
        -- The resolution-8 parent of the stored cell: resolution field set to 8, the digits
        -- of resolutions 9 to 15 set to 7 ("unused"), as H3 lays out a cell index.
        (NEW.cell & ~(15::bigint << 52)) | (8::bigint << 52) | 2097151,
        NEW.reported_at
    )
    ON CONFLICT (volunteer_id, hour_of_week, cell) DO UPDATE
        SET last_seen_at = greatest(coverage_presence.last_seen_at, EXCLUDED.last_seen_at);
    RETURN NULL;
END
$$;
CREATE TRIGGER coverage_presence_record
    AFTER INSERT OR UPDATE OF reported_at, cell ON volunteer_positions
    FOR EACH ROW EXECUTE FUNCTION coverage_presence_record();
