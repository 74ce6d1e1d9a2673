-- Placeholder: this number is reserved for a migration on another branch that has not
-- landed yet, so that a later number can be applied without a gap. Drop this file when
-- that branch's migration takes the number.
SELECT 1;
