"""kefu-example: what an outside plugin author writes (see plugin.py)."""
