-- CAD documents the intake refused, kept size-capped for audit (ARCHITECTURE invariant 6):
-- when a dispatch centre asks why an incident never alerted anyone, the answer is here.
-- Only documents from an authenticated integration are kept (so nobody else can fill the
-- table), and only the newest per agency within the retention period (dispatch.store.rejected).
CREATE TABLE rejected_documents (
    id            bigserial PRIMARY KEY,
    agency_id     uuid NOT NULL REFERENCES agencies (id) ON DELETE CASCADE,
    received_at   timestamptz NOT NULL,
    endpoint      text NOT NULL,
    content_type  text NOT NULL,
    status        smallint NOT NULL,
    problem_type  text NOT NULL,
    detail        text,
    pointer       text,
    -- The whole document's size and digest; body holds at most its first bytes.
    size_bytes    bigint,
    sha256        bytea,
    body          bytea,
    truncated     boolean NOT NULL DEFAULT false
);
CREATE INDEX rejected_documents_agency ON rejected_documents (agency_id, id DESC);
