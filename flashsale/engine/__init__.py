"""flashsale.engine."""
