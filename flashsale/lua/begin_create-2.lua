--[[
  begin_create-2: on bucket 0's slot, before a bucketed drop's buckets are written, draw
  the creation token that this attempt writes them with (create_sale-6's ARGV[19]). A
  newer token makes an older attempt's buckets orphans to replace and its bucket 0
  refused, so two creations of one id (a retry after a crash midway, or a race) never
  mix their settings and keys; none is drawn once the sale exists.

  KEYS[1] meta       hash    bucket 0's settings: the sale exists once it does
  KEYS[2] creation   string  the last token drawn for this sale id

  ARGV[1] none are read (the keys say it all)

  Replies:
  {1, token}   go on with this token
  {-12, ''}    sale_exists
]]
local rcall = redis.call
if rcall('EXISTS', KEYS[1]) == 1 then return {-12, ''} end
return {1, rcall('INCR', KEYS[2])}
