"""flashsale: a high-contention flash-sale engine for NFT drops."""

__version__ = "0.1.0"
