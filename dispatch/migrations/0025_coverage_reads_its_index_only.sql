-- migrate: each statement on its own
-- The coverage report reads, for one agency and hour of the week, each presence row's
-- volunteer and last time seen. With the index of 0016 it fetched every row from the table
-- as well (879 rows for an hour in bench/review.py's database: 2.5-3.0 ms); with both
-- columns carried in the index it reads the index alone (1.2 ms once the table is vacuumed).
-- Built CONCURRENTLY, so position writes (whose trigger writes presence rows) go on during
-- the build. Each statement may run again after a crash: a build that failed half-way
-- leaves an invalid index of this name, which the first statement drops.
DROP INDEX CONCURRENTLY IF EXISTS coverage_presence_cells;
CREATE INDEX CONCURRENTLY coverage_presence_cells ON coverage_presence (agency_id, hour_of_week, cell)
    INCLUDE (volunteer_id, last_seen_at);
DROP INDEX CONCURRENTLY IF EXISTS coverage_presence_hour;
