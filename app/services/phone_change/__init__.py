"""Changing a user's number: a code to the new number, then the change."""
