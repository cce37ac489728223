"""Consent-gated encrypted recording (issue 5, in progress).

Built so far: the encrypted file format and key wrapping (crypto_stream), the
server's signatures over every recording (signing), the consent policies
(consent), the signed audit log (audit) and its anchored checkpoints
(audit_anchor), RTP-to-WebM remuxing (webm_writer) and the per-participant
recorder fed by the SFU's producer taps (participant_recording), and the
hospital's command-line tool (cli: keygen, verify, export, audit-verify). Not yet: the consent
messages in signalling and restart detection of interrupted recordings.
"""
