-- The incident list's text search (ILIKE '%text%' on the address and the CAD incident
-- number) is planned for its text, and the planner chooses between the trigram indexes
-- (every match read, then sorted) and the agency's incidents newest first (filtered until a
-- page is full). Its row estimate for a pattern comes from the columns' histograms; with the
-- default 100 entries it read 994 rows for a text 465 incidents hold in bench/review.py's
-- database, and a new sample moved it enough to flip the plan between runs (7 and 41 ms).
-- With 1,000 entries the estimate was 464 in each of five samples. The sample is 300 rows
-- per entry, so a larger table costs ANALYZE no more than 300,000 rows.
DO $$
BEGIN
    IF to_regclass('incidents_address_trgm') IS NOT NULL THEN
        ALTER INDEX incidents_address_trgm ALTER COLUMN 1 SET STATISTICS 1000;
    END IF;
END
$$;
ALTER TABLE incidents ALTER COLUMN source_incident_id SET STATISTICS 1000;
ANALYZE incidents;
