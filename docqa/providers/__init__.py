"""Provider families behind small protocols (see base.py); registry in registry.py."""
