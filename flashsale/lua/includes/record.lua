--[[
  Positions in an order record (the layout: ORDER_FIELDS in includes/order.lua), with
  no function: what a script includes when it builds or reads a record inline (the
  purchase: creating a function costs every call, includes/order.lua says).
]]
-- positions in the record (ORDER_FIELDS, then the fingerprint)
local O_ID, O_USER, O_SERIAL, O_KIND, O_STATUS, O_VERSION = 1, 3, 4, 5, 6, 7
local O_EXPIRES, O_UPDATED, O_PAYMENT, O_REASON, O_IP, O_FINGERPRINT = 9, 10, 13, 14, 16, 17
local O_IP_HELD = 18 -- 'h': the address is counted in its IP home bucket, not here
local O_REPLY = 16 -- the reply carries ORDER_FIELDS, never the fingerprint
