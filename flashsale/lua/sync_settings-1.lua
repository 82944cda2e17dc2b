--[[
  sync_settings-1: bucket b > 0 of a bucketed drop takes the settings of bucket 0 (the
  sale's own slot, where tune-5 checked and wrote them) as they are now: absolute values,
  not the change, so a bucket that missed a tune (a crash, a lost connection midway) is
  brought level by the next one. Versions only move forward: a sync read before a newer
  tune and delivered after it changes nothing. No checks (bucket 0 made them), no event
  (bucket 0 wrote the sale's).

  KEYS[1] meta   the bucket's settings and counters

  ARGV[1] version   bucket 0's version the values were read at
  ARGV[2...] field, value, ...   bucket 0's settings (status, end_ms, limits, timeout)

  Replies:
  {1, version}   the bucket is at this version now (or was already, or at a later one)
  {-1, ''}       sale_not_found (the bucket has no meta: its keys were lost)
]]
local rcall = redis.call
local meta_key = KEYS[1]

--@include hot

local current = rcall('HGET', meta_key, 'version')
if not current then return {-1, ''} end
local version = tonumber(ARGV[1])
if tonumber(current) >= version then return {1, tonumber(current)} end
local fields = {}
for i = 2, #ARGV do fields[#fields + 1] = ARGV[i] end
fields[#fields + 1] = 'version'
fields[#fields + 1] = version
rcall('HSET', meta_key, unpack(fields))
refresh_hot(meta_key)
return {1, version}
