"""flashsale.payments."""
