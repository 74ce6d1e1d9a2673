-- Delivery: devices, channel preferences, the fallback chain's columns on the outbox,
-- and the per-agency fallback windows.

ALTER TABLE agencies
    ADD COLUMN push_ack_timeout_s integer NOT NULL DEFAULT 15
        CHECK (push_ack_timeout_s BETWEEN 1 AND 3600),
    ADD COLUMN answer_timeout_s integer NOT NULL DEFAULT 45
        CHECK (answer_timeout_s BETWEEN 1 AND 3600),
    -- Apple's critical-alert entitlement is granted per app and agency deployment.
    ADD COLUMN critical_alerts boolean NOT NULL DEFAULT false;

-- Push addresses. The token itself is a credential for reaching one phone: it is
-- stored (FCM needs it) but never logged.
CREATE TABLE devices (
    id                  bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    agency_id           uuid NOT NULL REFERENCES agencies (id) ON DELETE CASCADE,
    volunteer_id        bigint NOT NULL REFERENCES volunteers (id) ON DELETE CASCADE,
    platform            text NOT NULL CHECK (platform IN ('android', 'ios', 'web')),
    fcm_token           text NOT NULL UNIQUE CHECK (length(fcm_token) BETWEEN 8 AND 4096),
    active              boolean NOT NULL DEFAULT true,
    deactivated_reason  text,
    created_at          timestamptz NOT NULL DEFAULT now(),
    updated_at          timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX devices_volunteer_active ON devices (volunteer_id) WHERE active;

-- What a volunteer wants, and what providers told us about their number.
CREATE TABLE volunteer_channels (
    volunteer_id   bigint PRIMARY KEY REFERENCES volunteers (id) ON DELETE CASCADE,
    agency_id      uuid NOT NULL REFERENCES agencies (id) ON DELETE CASCADE,
    preferred      text CHECK (preferred IN ('push', 'sms', 'voice')),
    refused        text[] NOT NULL DEFAULT '{}'
                   CHECK (refused <@ ARRAY['push', 'sms', 'voice']::text[]),
    sms_opt_out    boolean NOT NULL DEFAULT false,
    phone_invalid  boolean NOT NULL DEFAULT false,
    updated_at     timestamptz NOT NULL DEFAULT now()
);

-- One outbox row per step of an alert's fallback chain. The intake writes one row
-- with channel 'auto'; the worker turns it into the first step and adds the later
-- ones with their deadlines in available_at (ARCHITECTURE invariant 4).
ALTER TABLE outbox
    ADD COLUMN provider_ref text,
    -- After an ambiguous Twilio failure the message may exist: look before resending.
    ADD COLUMN verify_before_send boolean NOT NULL DEFAULT false;
CREATE INDEX outbox_alert ON outbox (alert_id);
CREATE INDEX outbox_provider_ref ON outbox (provider_ref) WHERE provider_ref IS NOT NULL;
