"""Dialogue flows: pure state machines from (state, parse, context) to a Turn of replies and effects."""
