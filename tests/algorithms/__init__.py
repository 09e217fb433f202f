"""Algorithms written as a user would write one: each is one file on the agent frame (see the README's
"Adding an algorithm")."""
