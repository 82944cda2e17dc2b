"""flashsale.store."""
