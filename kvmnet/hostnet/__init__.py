"""Host side: NICs, bridges, plans, runners. Pure value objects live in ``state`` and ``plan``."""
