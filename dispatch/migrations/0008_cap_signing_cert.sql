-- An agency may pin the certificate its CAP sender signs with (PEM). When set, a CAP alert
-- without a valid enveloped XML signature from that certificate's key is refused; when
-- NULL (the default) signatures are not checked and the incident's timeline says so.
ALTER TABLE agencies
    ADD COLUMN cap_signing_cert text
        CHECK (cap_signing_cert IS NULL OR length(cap_signing_cert) BETWEEN 1 AND 16384);
