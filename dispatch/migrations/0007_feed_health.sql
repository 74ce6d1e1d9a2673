-- Feed health that cannot hide: what the last poll saw and refused, kept per feed so the
-- API and `dispatch feed list` show it whichever process polled. Conditional-request
-- validators are kept only after a poll that succeeded, so a failing feed is fetched whole.

ALTER TABLE cad_feeds
    ADD COLUMN last_poll_at    timestamptz,
    -- ok, not_modified, fetch_failed, refused_document, all_items_refused, bad_mapping
    ADD COLUMN last_result     text,
    ADD COLUMN items_seen      integer,
    ADD COLUMN items_refused   integer,
    -- The refused items of the last poll that read a document: [{index, incident_id,
    -- pointer, detail}], at most 20.
    ADD COLUMN refused_items   jsonb NOT NULL DEFAULT '[]'::jsonb,
    ADD COLUMN etag            text,
    ADD COLUMN last_modified   text;

-- Refused feed items and documents are kept with the feed's name.
ALTER TABLE rejected_documents
    ADD COLUMN feed_name text;
