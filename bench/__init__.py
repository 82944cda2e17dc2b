"""flashsale.bench."""
