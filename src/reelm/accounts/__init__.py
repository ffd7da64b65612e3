"""Accounts: sign-up, login, sessions, profile; the protected part lives in the home region."""
