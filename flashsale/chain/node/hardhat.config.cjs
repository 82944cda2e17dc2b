// The local development chain of `flashsale chain` (flashsale/devservers/chain.py).
// The embedded node's settings come from its environment:
//   CHAIN_BLOCK_MS  also mine an (empty) block this often, so confirmations
//                   accrue without traffic; 0: a block per transaction only
//   CHAIN_CACHE_DIR hardhat's cache (the node's own directory)
const blockMs = Number(process.env.CHAIN_BLOCK_MS ?? "1000");

module.exports = {
  paths: { cache: process.env.CHAIN_CACHE_DIR || "cache" },
  networks: {
    hardhat: {
      chainId: 31337,
      hardfork: "cancun",
      loggingEnabled: false,
      mining: { auto: true, interval: blockMs > 0 ? blockMs : 0 },
    },
  },
};
