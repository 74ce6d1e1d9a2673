-- Every process follows every other process's position writes through one change number.
--
-- Each write of a last position (insert, update, and an eligibility change of its volunteer)
-- takes the next value of position_change_seq; a deleted position leaves a tombstone with
-- one. (Adding the column numbers the rows already there.) A process tails both tables
-- with "change_seq > last seen", in change order.
--
-- Tailing by a sequence is exact only if change numbers become visible in their order: a
-- reader that has seen 101 must never later find a 100 that committed after it. So every
-- writer takes a transaction-scoped advisory lock before drawing its number and holds it
-- until commit (PostgreSQL makes a commit visible before it releases the transaction's
-- locks). Position writers are short statements, so the lock costs little; a trigger
-- takes it so that every writer, a cascade included, keeps the rule.
--
-- Expand-only: the previous release writes positions through these triggers unchanged (its
-- upsert does not set change_seq, so the row trigger numbers its updates). Adding the column
-- with a sequence default rewrites volunteer_positions once (seconds for a million rows),
-- holding position writes meanwhile; they are retried from memory afterwards.

CREATE SEQUENCE position_change_seq;

-- Every statement that writes positions takes the lock before its first row draws a number
-- (a statement-level BEFORE trigger fires before any row is produced).
CREATE FUNCTION position_change_lock() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_advisory_xact_lock(4923745182013647409);
    RETURN NULL;
END
$$;

CREATE TRIGGER volunteer_positions_change_lock
    BEFORE INSERT OR UPDATE OR DELETE ON volunteer_positions
    FOR EACH STATEMENT EXECUTE FUNCTION position_change_lock();

-- An insert draws its number from the default; the position writer's upsert sets a new one
-- on update. An update that does not (any other writer) is numbered by the row trigger,
-- whose WHEN clause costs the upsert nothing.
ALTER TABLE volunteer_positions
    ADD COLUMN change_seq bigint NOT NULL DEFAULT nextval('position_change_seq');

CREATE FUNCTION position_change_number() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    NEW.change_seq := nextval('position_change_seq');
    RETURN NEW;
END
$$;

CREATE TRIGGER volunteer_positions_change_number
    BEFORE UPDATE ON volunteer_positions
    FOR EACH ROW WHEN (NEW.change_seq = OLD.change_seq)
    EXECUTE FUNCTION position_change_number();

-- Deleted positions: one tombstone per volunteer (the latest deletion is all a follower needs).
CREATE TABLE position_tombstones (
    volunteer_id  bigint PRIMARY KEY,
    agency_id     uuid NOT NULL,
    change_seq    bigint NOT NULL,
    deleted_at    timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX position_tombstones_change ON position_tombstones (change_seq);
CREATE INDEX position_tombstones_deleted ON position_tombstones (deleted_at);

CREATE FUNCTION position_tombstone() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO position_tombstones (volunteer_id, agency_id, change_seq)
    VALUES (OLD.volunteer_id, OLD.agency_id, nextval('position_change_seq'))
    ON CONFLICT (volunteer_id) DO UPDATE
        SET agency_id = EXCLUDED.agency_id, change_seq = EXCLUDED.change_seq,
            deleted_at = EXCLUDED.deleted_at;
    RETURN OLD;
END
$$;

CREATE TRIGGER volunteer_positions_tombstone
    AFTER DELETE ON volunteer_positions
    FOR EACH ROW EXECUTE FUNCTION position_tombstone();

CREATE FUNCTION position_change_notify() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('dispatch_positions', '');
    RETURN NULL;
END
$$;

CREATE TRIGGER volunteer_positions_notify
    AFTER INSERT OR UPDATE OR DELETE ON volunteer_positions
    FOR EACH STATEMENT EXECUTE FUNCTION position_change_notify();

-- A volunteer who stops or starts being alertable: their position is renumbered, so
-- followers re-read it and drop or index it.
CREATE FUNCTION volunteer_eligibility_change() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    UPDATE volunteer_positions SET change_seq = nextval('position_change_seq')
    WHERE volunteer_id = NEW.id;
    RETURN NULL;
END
$$;

CREATE TRIGGER volunteers_eligibility_change
    AFTER UPDATE OF verified, available ON volunteers
    FOR EACH ROW
    WHEN (OLD.verified IS DISTINCT FROM NEW.verified OR OLD.available IS DISTINCT FROM NEW.available)
    EXECUTE FUNCTION volunteer_eligibility_change();

CREATE INDEX volunteer_positions_change ON volunteer_positions (change_seq);

-- Tombstones are pruned after a while; a follower that last saw a number below the highest
-- pruned one may have missed a deletion and rebuilds from the table instead. A sequence,
-- not a row: raised before the pruning commits (setval is not transactional), so a
-- follower can never see the tombstones gone and the horizon not yet raised.
CREATE SEQUENCE position_tombstones_pruned MINVALUE 0 START 0;

-- Every process caches agency facts (settings, policy, live keys, whether it has AEDs) for
-- the intake hot path. A change made by any process, or the command line, tells them all
-- at commit, so a revoked key stops working everywhere at once (the cache's short expiry
-- remains the bound when a notification is lost).
CREATE FUNCTION agency_changed_notify() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    changed record := CASE WHEN TG_OP = 'DELETE' THEN OLD ELSE NEW END;
BEGIN
    IF TG_TABLE_NAME = 'agencies' THEN
        PERFORM pg_notify('dispatch_invalidate', changed.id::text);
    ELSE
        PERFORM pg_notify('dispatch_invalidate', changed.agency_id::text);
    END IF;
    RETURN NULL;
END
$$;

CREATE TRIGGER agencies_changed AFTER UPDATE OR DELETE ON agencies
    FOR EACH ROW EXECUTE FUNCTION agency_changed_notify();
CREATE TRIGGER agency_keys_changed AFTER INSERT OR UPDATE OR DELETE ON agency_keys
    FOR EACH ROW EXECUTE FUNCTION agency_changed_notify();
CREATE TRIGGER alert_policies_changed AFTER INSERT OR UPDATE OR DELETE ON alert_policies
    FOR EACH ROW EXECUTE FUNCTION agency_changed_notify();
CREATE TRIGGER aeds_changed AFTER INSERT OR UPDATE OR DELETE ON aeds
    FOR EACH ROW EXECUTE FUNCTION agency_changed_notify();

-- SMS and voice sends are spaced per sending number across every process: the next free
-- slot of each sender, taken atomically by whichever process sends next.
CREATE TABLE sender_pacing (
    sender     text PRIMARY KEY,
    -- The agency whose own number it is; NULL for the deployment's shared number.
    agency_id  uuid REFERENCES agencies (id) ON DELETE CASCADE,
    next_slot  timestamptz NOT NULL
);
