"""Testing support: the scenario runner (never imported by production code)."""
