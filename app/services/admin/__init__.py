"""Administration: look users up, disable and enable them, revoke their sessions, change
their roles, and read the audit trail; for the admin API and the command line."""
