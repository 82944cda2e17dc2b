-- The reference purchase of ../shared/perf/ (README there), copied unchanged below this
-- line: the yardstick bench/script.py runs beside lua/purchase-10.lua.
local m = redis.call('HMGET', KEYS[1], 'status', 'start_ms', 'end_ms', 'limit', 'total', 'drawn', 'price')
if m[1] ~= 'open' then return {-2} end
local now = tonumber(ARGV[2])
if now < tonumber(m[2]) or now >= tonumber(m[3]) then return {-2} end
local held = tonumber(redis.call('HGET', KEYS[2], ARGV[1]) or '0')
if held >= tonumber(m[4]) then return {-6} end
local serial = redis.call('LPOP', KEYS[3])
if not serial then
  local drawn = tonumber(m[6])
  if drawn >= tonumber(m[5]) then return {-5} end
  serial = drawn + 1
  redis.call('HSET', KEYS[1], 'drawn', serial)
end
redis.call('HINCRBY', KEYS[2], ARGV[1], 1)
local oid = ARGV[1] .. ':' .. serial
local packed = cmsgpack.pack({oid, ARGV[1], serial, 'pending_payment', 1, now, now + 900000, m[7]})
redis.call('HSET', KEYS[4], oid, packed)
redis.call('ZADD', KEYS[5], now + 900000, oid)
redis.call('XADD', KEYS[6], '*', 'e', packed)
return {1, oid, serial}
