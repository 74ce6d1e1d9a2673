-- Housekeeping keeps the activations report of each settled calendar month and year
-- computed (and computes it again after a late change), so that a supervisor asking for
-- one is answered from activations_cache. Those entries are marked, so that the limit on
-- the other kept ranges (the ones computed most recently) never pushes them out.
ALTER TABLE activations_cache ADD COLUMN warmed boolean NOT NULL DEFAULT false;
