-- Web Push (RFC 8030/8291/8292): the service's VAPID key pair and volunteers' browser
-- push subscriptions.

-- One key pair per installation, made at first start by whichever process gets there
-- first. The private key is PKCS#8 DER; when DISPATCH_WEBPUSH_KEY_PASSPHRASE is set it is
-- stored encrypted with it (sealed = true) and the database alone cannot sign for us.
-- It is never served, exported or logged; only the public key leaves (GET /v1/webpush/key).
CREATE TABLE webpush_vapid_key (
    id           smallint PRIMARY KEY DEFAULT 1 CHECK (id = 1),
    private_key  bytea NOT NULL CHECK (length(private_key) BETWEEN 32 AND 4096),
    public_key   text NOT NULL CHECK (length(public_key) = 87),
    sealed       boolean NOT NULL,
    created_at   timestamptz NOT NULL
);

-- A browser's push subscription. The endpoint and keys are a credential for reaching
-- one browser: stored (the push service needs them) but never logged.
CREATE TABLE webpush_subscriptions (
    id                  bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    agency_id           uuid NOT NULL REFERENCES agencies (id) ON DELETE CASCADE,
    volunteer_id        bigint NOT NULL REFERENCES volunteers (id) ON DELETE CASCADE,
    session_id          bigint REFERENCES volunteer_sessions (id) ON DELETE SET NULL,
    endpoint            text NOT NULL UNIQUE CHECK (length(endpoint) BETWEEN 8 AND 2048),
    p256dh              bytea NOT NULL CHECK (length(p256dh) = 65),
    auth_secret         bytea NOT NULL CHECK (length(auth_secret) = 16),
    -- The applicationServerKey the browser subscribed with: after a key change the
    -- subscription cannot be used and the app must subscribe again.
    vapid_public_key    text NOT NULL,
    active              boolean NOT NULL DEFAULT true,
    deactivated_reason  text,
    created_at          timestamptz NOT NULL,
    updated_at          timestamptz NOT NULL
);
CREATE INDEX webpush_subscriptions_volunteer ON webpush_subscriptions (volunteer_id);
CREATE INDEX webpush_subscriptions_session ON webpush_subscriptions (session_id);
