"""The bench's NHI web-API twin (shared/design/web-api.md; docs/web-api-twin.md): SIMULATION ONLY.

The 6.0 console only signs; a HIS does everything else with a card (its insurance data, a sequence number, the
treatment number 就醫識別碼, the visit's codes and fees, prescriptions, a rollback) by calling the NHI's web
API with the console's signature. The NHI's web-API specification is not public: this twin serves the paths
and fields public HIS code calls and the 2022 就醫識別碼 form of the seed, checks every signature the console
made, and keeps one consistent story per bench card, so a HIS can test its whole workflow offline. It is not
the NHI's service, and where it had to choose (codes, limits, what a call changes) docs/web-api-twin.md says so.

It runs in the DC simulator's process (`python -m sim.dc serve --web-api-port N`), on a loopback port of its own.

Modules: `codes` (every answer code), `formats` (ROC dates, sequence and treatment numbers), `signatures` (the
signed bytes and the SAM checks), `fields` (reading a body), `state` (SQLite), `signer` (the twin's signing
key), `paths` (the 6.0 paths and their state rules), `service` (dispatch, faults, the seed's `/TreatNum`, no
sockets), `controls` (the bench's controls, on the DC simulator's port), `server` (HTTPS and the twin's
files), `client` (a small HTTPS client for tests and examples).
"""
