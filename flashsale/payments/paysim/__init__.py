"""The payment-provider simulator (run as `flashsale paysim`)."""
