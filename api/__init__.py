"""flashsale.api."""
