--[[
  fence-2: before a stale claim's serial goes back to its bucket, settle at the order's
  home bucket whether the order was placed. Place-8 runs on the same slot and refuses a
  fenced id, so exactly one of them wins: a serial is never both given back and sold.

  KEYS[1] orders   hash  order_id -> packed order (the home bucket's)
  KEYS[2] fences   hash  order_id -> ms: ids that may never be placed here

  ARGV[1] order_id   ARGV[2] now_ms

  Replies:
  1   the order exists: it holds the serial (the claim is only dropped)
  0   fenced now (or before): the order will never exist; give the serial back
]]
local rcall = redis.call
if rcall('HEXISTS', KEYS[1], ARGV[1]) == 1 then return 1 end
rcall('HSETNX', KEYS[2], ARGV[1], ARGV[2])
return 0
