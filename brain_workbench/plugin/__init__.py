"""Plugin machinery: hookspecs, typed options, the registry, optional base classes, conformance checks and the scaffold."""
