--[[
  ip_rate-1: count one request in its client address's one-second window
  (the per-IP request rate limit, shared by every API worker).

  KEYS[1] window   string  request count of one address in one second

  ARGV[1] window TTL in seconds (a little over 1: the window dies by itself)

  Replies:
  n                the count so far in this window, this request included
]]
local rcall = redis.call
local window_key, ttl = KEYS[1], ARGV[1]

local n = rcall('INCR', window_key)
if n == 1 then rcall('EXPIRE', window_key, ttl) end
return n
