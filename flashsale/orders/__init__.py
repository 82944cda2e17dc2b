"""Orders after the drop: checkouts of a cart split by merchant, bills, coins, after-sales.

- ``coins``: the coins ledger beside the balance, and the spread of a checkout's coins;
- ``checkout``: a cart bought all or nothing through the engine's purchase path;
- ``release``: what an order gives back when it expires, is cancelled or refunded;
- ``bills``: the parent and merchant bills and their payments.
"""
