--[[
  peer-decr-1: the featureless peer's purchase (bench/peer.py, issue #14): one DECR.
  No window, no limit, no serial, no order, no event: the least a purchase can be.

  KEYS[1] stock    string  units left (engine/keys.py: bench_peer_stock)

  ARGV    none

  Replies:
  n                the units left after this purchase (n >= 0)
  -1               sold out (the counter is put back, so it never goes below 0)
]]
local left = redis.call('DECR', KEYS[1])
if left < 0 then
  redis.call('INCR', KEYS[1])
  return -1
end
return left
