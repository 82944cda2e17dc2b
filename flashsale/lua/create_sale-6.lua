--[[
  create_sale-6: create a sale with its first segment of serials.

  KEYS[1] meta       hash  settings and counters of the sale
  KEYS[2] segments   hash  serial segments
  KEYS[3] items      hash  explicit serials of list segments
  KEYS[4] itemset    set   explicit serials, to refuse duplicates
  KEYS[5] events     stream the sale's event stream
  KEYS[6] creation   string the creation token of this slot (bucketed drops, ARGV[19])

  ARGV[1]  sale_id          ARGV[2]  name
  ARGV[3]  status ('open' or 'loading' while a long list is still being added)
  ARGV[4]  start_ms         ARGV[5]  end_ms
  ARGV[6]  per_user_limit   ARGV[7]  per_ip_limit (0 = off)
  ARGV[8]  timeout_ms       ARGV[9]  price_cents      ARGV[10] currency
  ARGV[11] assignment ('sequential' | 'random')
  ARGV[12] perm_key (secret)  ARGV[13] commitment (hex sha256 of perm_key)
  ARGV[14] now_ms
  ARGV[15] merchant_id (who sells the drop; 'platform' by default)
  ARGV[16] after_sales_ms (how long a delivered order stays open to after-sales)
  ARGV[17] buckets B of a bucketed drop ('' or 1: not bucketed)
  ARGV[18] this slot's bucket b (0..B-1; engine/buckets.py): each bucket draws its own
           window of the one draw sequence (so a random drop's permutation and `verify`
           are the sale's): bucket b > 0 the b-th share [(b-1)s, bs) with s = total // B,
           bucket 0 the tail [(B-1)s, total), so that stock added later (tune-5 on
           bucket 0) extends its window. Only bucket 0 writes the sale_created event.
  ARGV[19] creation token of a bucketed drop ('' for a sale of one slot): a number
           begin_create-2 drew on bucket 0's slot (docs/design.md, "Bucketed drops").
           Bucket 0: created only while KEYS[6] still holds this token (no newer
           creation of the id began since). Bucket b > 0: KEYS[6] keeps the token of
           the creation that wrote it; a bucket left by an older creation that
           stopped midway (an orphan: no bucket 0, so no buyer ever reached it) is
           replaced; one written by this or a newer creation is refused, and so is
           one deleted by housekeeping (drop_orphan-6 leaves a newer token behind).
  ARGV[20...] the first segment: 'r', lo, hi  |  'l', serial, serial, ...
           | 's', total, off, size, j, serial, j, serial, ...: a bucketed drop's list,
           this bucket's share of its first segment (includes/segments.lua,
           append_share); `total` is the whole list's length, the windows are cut from
           it, and the list's further segments follow with load_serials-5

  Replies:
  {1, total}            created
  {-12, ''}             sale_exists (or, bucketed, a newer creation of the id owns it)
  {-15, reason}         serials refused (overlap, duplicate)
]]
local rcall = redis.call
local meta_key, segments_key, items_key, itemset_key, events_key = KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5]
local now = ARGV[14]

--@include segments
--@include hot

local buckets, bucket = tonumber(ARGV[17]) or 1, tonumber(ARGV[18]) or 0
local token = ARGV[19]
if token ~= '' and bucket == 0 and rcall('GET', KEYS[6]) ~= token then return {-12, ''} end
if rcall('EXISTS', meta_key) == 1 then
  local held = tonumber(rcall('GET', KEYS[6]) or '0')
  if token == '' or bucket == 0 or held >= tonumber(token) then return {-12, ''} end
  rcall('DEL', meta_key, segments_key, items_key, itemset_key, events_key)  -- an orphan
elseif token ~= '' and bucket > 0 and tonumber(rcall('GET', KEYS[6]) or '0') > tonumber(token) then
  return {-12, ''}  -- housekeeping deleted this bucket as an orphan of a newer verdict
end
if token ~= '' and bucket > 0 then rcall('SET', KEYS[6], token) end

local spec = segment_spec(20)
if not spec or (spec.kind == 's' and buckets < 2) then return redis.error_reply('ERR bad segment spec') end
-- meta must exist before append_segment counts segments; write it only once the
-- serials are known to be acceptable (a list is checked against itself first)
local added, why
if spec.kind == 's' then
  added = append_share(spec) and spec.total
else
  added, why = append_segment(spec)
end
if not added then
  rcall('DEL', meta_key, segments_key, items_key, itemset_key)
  return {-15, why}
end

rcall('HSET', meta_key,
  'sale_id', ARGV[1], 'name', ARGV[2], 'status', ARGV[3],
  'start_ms', ARGV[4], 'end_ms', ARGV[5],
  'per_user_limit', ARGV[6], 'peak_user_limit', ARGV[6], 'per_ip_limit', ARGV[7],
  'timeout_ms', ARGV[8], 'price_cents', ARGV[9], 'currency', ARGV[10], 'assignment', ARGV[11],
  'perm_key', ARGV[12], 'commitment', ARGV[13], 'serials_kind', spec.kind == 's' and 'l' or spec.kind,
  'merchant_id', ARGV[15],
  'created_ms', now, 'updated_ms', now, 'version', 1,
  'drawn', 0, 'cur_segment', 1, 'reserved', 0, 'sold', 0, 'after_sales_ms', ARGV[16])
if buckets > 1 then
  local share = math.floor(added / buckets)
  local first, last = (buckets - 1) * share, added
  if bucket > 0 then first, last = (bucket - 1) * share, bucket * share end
  rcall('HSET', meta_key, 'buckets', buckets, 'bucket', bucket, 'first', first,
    'drawn', first, 'total', last)
end
refresh_hot(meta_key)
if bucket > 0 then return {1, rcall('HGET', meta_key, 'total')} end

rcall('XADD', events_key, '*', 'type', 'sale_created', 'at_ms', now, 'sale_id', ARGV[1],
  'name', ARGV[2], 'status', ARGV[3], 'start_ms', ARGV[4], 'end_ms', ARGV[5],
  'per_user_limit', ARGV[6], 'per_ip_limit', ARGV[7], 'timeout_ms', ARGV[8],
  'price_cents', ARGV[9], 'currency', ARGV[10], 'assignment', ARGV[11],
  'commitment', ARGV[13], 'merchant_id', ARGV[15], 'after_sales_ms', ARGV[16],
  'total', rcall('HGET', meta_key, 'total'), 'version', 1)
return {1, rcall('HGET', meta_key, 'total')}
