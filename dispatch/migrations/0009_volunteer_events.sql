-- Things that happen to a volunteer outside any incident: a push device moving to or
-- away from them, an SMS opt-out or opt-in from their number. They get a table of their
-- own rather than a nullable incident_id on response_log: the response log is an
-- incident's timeline, and every report and metric reads it per incident.
CREATE TABLE volunteer_events (
    id            bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    agency_id     uuid NOT NULL REFERENCES agencies (id) ON DELETE CASCADE,
    volunteer_id  bigint NOT NULL REFERENCES volunteers (id) ON DELETE CASCADE,
    event         text NOT NULL,
    at            timestamptz NOT NULL,
    details       jsonb NOT NULL DEFAULT '{}'::jsonb
);
CREATE INDEX volunteer_events_volunteer ON volunteer_events (volunteer_id, id DESC);

-- Inbound SMS and opt-outs find volunteers by number.
CREATE INDEX volunteers_phone ON volunteers (phone_e164) WHERE phone_e164 IS NOT NULL;

-- The AED registry is listed a page at a time, newest first.
CREATE INDEX aeds_agency_page ON aeds (agency_id, id DESC) WHERE active;
