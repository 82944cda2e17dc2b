"""flashsale.loadtest."""
