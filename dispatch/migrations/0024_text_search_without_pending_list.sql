-- The incident list's text search reads the trigram indexes of 0016 and, with each, its
-- pending list: GIN's fast update queues new entries there (up to gin_pending_list_limit,
-- 4 MB by default) until a vacuum or a full list moves them into the index proper, and
-- every search reads the whole queue. In bench/review.py's database (100,000 incidents) a
-- queue of 378 + 176 pages made a search take 9.2 ms, 3.0 ms once it was emptied; and the
-- backend that finds the list full moves all of it inside its own insert, a stall an
-- intake request would pay. Incidents are written a few at a time: each now writes its
-- entries straight into the index (about 90 µs more per insert or changed address, from
-- 2,000 address changes in one statement: 134-143 against 36-58 µs a row).
-- The indexes exist only where pg_trgm could be installed.
DO $$
DECLARE
    name text;
BEGIN
    FOREACH name IN ARRAY ARRAY['incidents_number_trgm', 'incidents_address_trgm'] LOOP
        IF to_regclass(name) IS NOT NULL THEN
            EXECUTE format('ALTER INDEX %I SET (fastupdate = off)', name);
            -- Turning it off queues nothing new but leaves what is queued.
            PERFORM gin_clean_pending_list(to_regclass(name));
        END IF;
    END LOOP;
END
$$;
