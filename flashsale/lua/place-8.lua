--[[
  place-8: the second half of a bucketed purchase whose home bucket was dry: every
  check of purchase-10 again (replay, window, status, limits), then the order is
  written here, in the buyer's home bucket, holding the serial take-5 lent from
  another bucket. Refused: the caller gives the serial back (give_back 'return').

  KEYS[1] meta     hash   settings and counters ("reserved", "borrowed" += 1)
  KEYS[2] buyers   hash   "l:<user>" live order suffixes, "h:<user>" released ones
  KEYS[3] ips      hash   "<ip>" live orders from that address
  KEYS[4] expiry   zset   order_id scored by its payment deadline (ms)
  KEYS[5] events   stream the bucket's event stream
  KEYS[6] orders   hash   order_id -> packed order
  KEYS[7] idem     string as the purchase's idempotency key (meta when none)
  KEYS[8] fences   hash   order ids fenced by the claim sweeper (fence-2)

  ARGV[1] sale_id   ARGV[2] user_id   ARGV[3] ip   ARGV[4] now_ms   ARGV[5] '1' with an
  Idempotency-Key   ARGV[6] fingerprint   ARGV[7] idempotency TTL (s)
  ARGV[8] the order's id (of this bucket's slot)   ARGV[9] deadline_ms ('' = none)
  ARGV[10] ip_mode (the values purchase-10 is given, in the engine's order)
  ARGV[11] serial kind ('r' | 'l')   ARGV[12] serial   ARGV[13] draw (-1: a released one)

  Replies: as purchase-10 (-20 included), but never sold_out, plus
  {-19, ''}   the order id was fenced (its claim was swept) or is placed already:
              nothing done
]]
local rcall = redis.call
local meta_key, buyers_key, ips_key, expiry_key = KEYS[1], KEYS[2], KEYS[3], KEYS[4]
local events_key, orders_key, idem_key, fences_key = KEYS[5], KEYS[6], KEYS[7], KEYS[8]
local sale_id, user, ip, now = ARGV[1], ARGV[2], ARGV[3], tonumber(ARGV[4])
local has_idem, fingerprint, order_id = ARGV[5] == '1', ARGV[6], ARGV[8]
local ip_mode, idem_ttl = ARGV[10], ARGV[7]

--@include record
--@include live

if ARGV[9] ~= '' then
  local t = rcall('TIME')
  if t[1] * 1000 + math.floor(t[2] / 1000) > tonumber(ARGV[9]) then return {-18, ''} end
end
-- placed once at most: a fenced id, or one already written (a call sent twice)
if rcall('HEXISTS', fences_key, order_id) == 1 or rcall('HEXISTS', orders_key, order_id) == 1 then
  return {-19, ''}
end

--@include admit

local kind, serial, draw = ARGV[11], ARGV[12], tonumber(ARGV[13])
rcall('HINCRBY', meta_key, 'reserved', 1)
rcall('HINCRBY', meta_key, 'borrowed', 1)

--@include book
