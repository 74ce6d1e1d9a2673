-- The versioned alert policy becomes the only place for who is alerted (radius and count).
--
-- Agencies that never stored a policy were alerting with one derived from the
-- alert_radius_m / alert_limit columns (version 0, never written down). That policy is
-- written now as their version 1, with the same waves the code derived (first wave the
-- columns, a second at 60 s to at least 1,300 m and 15, at most max(30, that) in all),
-- and incidents running under version 0 follow version 1, which alerts exactly alike.
--
-- Expand/contract: the two columns stay (the code no longer reads or writes them) so a
-- server of the previous release still starts against this schema; a later migration
-- drops them once no such server runs.
INSERT INTO alert_policies (agency_id, version, policy)
SELECT a.id, 1, jsonb_build_object(
    'waves', jsonb_build_array(
        jsonb_build_object('after_s', 0, 'radius_m', a.alert_radius_m, 'live', a.alert_limit),
        jsonb_build_object('after_s', 60, 'radius_m', greatest(1300, a.alert_radius_m),
                           'live', greatest(15, a.alert_limit))),
    'max_alerted', greatest(30, a.alert_limit))
FROM agencies a
WHERE NOT EXISTS (SELECT 1 FROM alert_policies p WHERE p.agency_id = a.id);

UPDATE incidents SET policy_version = 1 WHERE policy_version = 0;

-- The policy's "silent this long counts as not coming" has its own name now
-- (answer_timeout_s meant that here and "no answer after the text: call" in delivery).
UPDATE alert_policies
SET policy = (policy - 'answer_timeout_s')
             || jsonb_build_object('not_coming_after_s', policy -> 'answer_timeout_s')
WHERE policy ? 'answer_timeout_s';

COMMENT ON COLUMN agencies.alert_radius_m IS 'unused since 0014: see alert_policies; to be dropped';
COMMENT ON COLUMN agencies.alert_limit IS 'unused since 0014: see alert_policies; to be dropped';
COMMENT ON COLUMN agencies.answer_timeout_s IS
    'API name next_channel_after_s: no answer this long after a text (or call), next channel';
