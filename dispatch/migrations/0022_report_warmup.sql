-- Housekeeping keeps the activations report of each settled calendar month and year
-- computed (and computes it again after a late change), so that a supervisor asking for
-- one is answered from activations_cache. Those entries are marked, so that the limit on
-- the other kept ranges (the ones computed most recently) never pushes them out.
ALTER TABLE activations_cache ADD COLUMN warmed boolean NOT NULL DEFAULT false;

-- The change count's trigger on incident_review (0018) runs once per statement that writes
-- the summary: for the summary trigger's upserts, twice each (an INSERT … ON CONFLICT fires
-- both the insert and the update statement triggers), and also for its statements that
-- change no row. Each run called report_changed() whatever it found, and that is a whole
-- INSERT … ON CONFLICT statement even for no agency. Now the function is called only when a
-- settled incident's summary changed; the count moves exactly as before.
CREATE OR REPLACE FUNCTION incident_review_report_changed() RETURNS trigger
    LANGUAGE plpgsql AS $$
DECLARE
    changed uuid[];
BEGIN
    SELECT array_agg(DISTINCT i.agency_id) INTO changed
    FROM new_rows n JOIN incidents i ON i.id = n.incident_id
    WHERE report_settled(i.received_at);
    IF changed IS NOT NULL THEN
        PERFORM report_changed(changed);
    END IF;
    RETURN NULL;
END
$$;
