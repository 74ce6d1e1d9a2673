-- alert_firsts keeps one foreign key, to its alert; the ones to its incident and agency go.
--
-- Its rows are written only by the summary trigger on response_log (0016), which copies
-- incident_id and agency_id from the log rows the same statement has just inserted, and
-- those rows' own foreign keys checked (and key-share-locked) the very same incident and
-- agency a moment before. Checked again here they cost two look-ups and two row locks per
-- alert sent, accepted or on scene: in bench/notify.py 0.3-0.5 ms of the summary trigger's
-- 1.4-1.7 ms of PostgreSQL time per batch of 100 pushes recorded (EXPLAIN ANALYZE, the
-- same batches). Deletes still reach every row: an incident's or an agency's rows go with
-- its alerts (alerts cascade from both, and alert_firsts from its alert), since the log
-- names an alert's event under the alert's own incident and agency; an erased volunteer's
-- alerts stay (moved to the pseudonym), and so do their rows here.
ALTER TABLE alert_firsts DROP CONSTRAINT alert_firsts_incident_id_fkey;
ALTER TABLE alert_firsts DROP CONSTRAINT alert_firsts_agency_id_fkey;
