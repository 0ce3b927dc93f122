"""What the console checks and holds for the session's credentials: cloud SAM files and the SAM's DC session,
HCA certificates and CRLs, mobile HCA logins, virtual health card tokens. Pure checks; no I/O of their own."""
