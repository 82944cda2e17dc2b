"""flashsale.cli."""
