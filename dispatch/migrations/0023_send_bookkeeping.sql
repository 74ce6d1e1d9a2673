-- alert_firsts keeps one foreign key, to its alert; the ones to its incident and agency go.
--
-- Its rows are written only by the summary trigger on response_log (0016), which copies
-- incident_id and agency_id from the log rows the same statement has just inserted, and
-- those rows' own foreign keys checked (and key-share-locked) the very same incident and
-- agency a moment before. Checked again here they cost two look-ups and two row locks per
-- alert sent, accepted or on scene: 0.3-0.5 ms of the summary trigger's 1.4-1.7 ms of
-- PostgreSQL time per batch of 100 pushes recorded (bench/notify.py's seeding; batches of
-- 100 claimed and recorded one after another on one connection, each statement under
-- EXPLAIN ANALYZE, with and without these keys). Deletes still reach every row: an incident's or an agency's rows go with
-- its alerts (alerts cascade from both, and alert_firsts from its alert), since the log
-- names an alert's event under the alert's own incident and agency; an erased volunteer's
-- alerts stay (moved to the pseudonym), and so do their rows here.
ALTER TABLE alert_firsts DROP CONSTRAINT alert_firsts_incident_id_fkey;
ALTER TABLE alert_firsts DROP CONSTRAINT alert_firsts_agency_id_fkey;

-- The index of provider ids holds only texts and calls. Twilio's status callbacks are the
-- one look-up by provider id (a message or call SID); FCM answers with a message name too,
-- which is kept in the row but never looked up, and its index entry was written with every
-- push recorded (the row's done version is a new tuple: done_at is named by the pending
-- index). Ending the leases of a batch of 100 pushes took 1.9-2.0 ms of PostgreSQL time
-- instead of 2.1-2.5 ms (measured as above, on a loaded machine).
-- A row's channel is the step it sent once it is done, so an SMS or call has its entry.
DROP INDEX outbox_provider_ref;
CREATE INDEX outbox_provider_ref ON outbox (provider_ref)
    WHERE provider_ref IS NOT NULL AND channel IN ('sms', 'voice');
