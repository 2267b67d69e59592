"""Judges: whether a response carries out a request (attack success), and whether a text looks unsafe."""
