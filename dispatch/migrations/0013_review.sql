-- Supervisors' review: the incident list and the reports read the agency's incidents by
-- received time, newest first, a keyset page at a time.
CREATE INDEX incidents_agency_received ON incidents (agency_id, received_at DESC, id DESC);

-- The roster is paged by id within the agency; erased accounts are never listed.
CREATE INDEX volunteers_agency_roster ON volunteers (agency_id, id) WHERE erased_at IS NULL;
