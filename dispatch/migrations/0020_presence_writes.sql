-- Coverage presence without a foreign-key check per row.
--
-- With presence written (0016), persisted fixes fell from 44,000 to 18,000/s when every fix
-- enters a new cell. PostgreSQL's CPU per such fix in one run: 14.0 us with presence off,
-- 35.0 with 0016's trigger and keys, 24.9 without the keys (docs/benchmarks.md). Each
-- presence row's key checks looked up the volunteer and the agency and locked both rows
-- (FOR KEY SHARE), although the same statement had just joined the volunteer. The statement
-- trigger was not the cost: writing the same rows from the position writer's own statement
-- cost as much (29.0 vs 28.9 us in another run), and a body without the array round trip no
-- less; so 0016's trigger stays as it is, and every writer, of this release or the previous
-- one, records presence alike.
--
-- The keys' one remaining job, deleting a deleted volunteer's presence (erasure; deleting
-- an agency deletes its volunteers), is done by the trigger below, once per statement. A
-- presence row cannot be left behind by a position write racing the deletion: erasure
-- deletes the position first, under the position change lock, and a fix written after that
-- fails on volunteer_positions' own key to the volunteer. Even so, the report joins
-- volunteers, and housekeeping purges rows not seen for 28 days.
--
-- Rolling upgrade: the previous release never writes coverage_presence itself and relied
-- on the cascade only, which the trigger keeps.

ALTER TABLE coverage_presence
    DROP CONSTRAINT coverage_presence_volunteer_id_fkey,
    DROP CONSTRAINT coverage_presence_agency_id_fkey;

CREATE FUNCTION coverage_presence_forget() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    DELETE FROM coverage_presence p USING gone g WHERE p.volunteer_id = g.id;
    RETURN NULL;
END
$$;

CREATE TRIGGER volunteers_forget_presence
    AFTER DELETE ON volunteers REFERENCING OLD TABLE AS gone
    FOR EACH STATEMENT EXECUTE FUNCTION coverage_presence_forget();
