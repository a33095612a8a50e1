"""A guest and its host bridge in one plan: `lanplan` (the plan and its result as values) and
`onboard` (building and applying it: ``Host.bridge_guest`` / ``Host.nat_guest``).
"""
