-- Deleting a parent row makes PostgreSQL look up each referencing table by the key's
-- columns; without an index leading with them every delete scans the child table
-- (deleting 10,000 alerts took over 5 s). Keys to agencies are left unindexed on purpose:
-- the service never deletes an agency, and an agency_id index on the hot insert paths
-- (outbox, response_log) would cost every intake.
CREATE INDEX response_log_alert_idx ON response_log (alert_id) WHERE alert_id IS NOT NULL;
CREATE INDEX alert_feedback_alert_idx ON alert_feedback (alert_id);
CREATE INDEX alert_feedback_handled_by_idx ON alert_feedback (handled_by)
    WHERE handled_by IS NOT NULL;
CREATE INDEX alerts_aed_idx ON alerts (aed_id) WHERE aed_id IS NOT NULL;
CREATE INDEX credentials_reviewed_by_idx ON credentials (reviewed_by)
    WHERE reviewed_by IS NOT NULL;
CREATE INDEX devices_session_idx ON devices (session_id) WHERE session_id IS NOT NULL;
