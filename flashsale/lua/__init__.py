"""Lua scripts, one per state transition, loaded as package data."""
