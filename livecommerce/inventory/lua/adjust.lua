-- Change a loaded SKU's available units by a delta (restock, correction) and its list price.
-- KEYS: 1 stock hash
-- ARGV: 1 delta, 2 price ('' keeps it), 3 the events channel ('' : none), 4 the SKU id:
--       units added publish 'stock.back' there
-- Returns {'not_loaded'}, {'short', available} when the delta would go below zero, or
-- {'ok', available}.
local avail = redis.call('HGET', KEYS[1], 'avail')
if not avail then
  return {'not_loaded'}
end
local delta = tonumber(ARGV[1])
if tonumber(avail) + delta < 0 then
  return {'short', avail}
end
if ARGV[2] ~= '' then
  redis.call('HSET', KEYS[1], 'price', ARGV[2])
end
local now = redis.call('HINCRBY', KEYS[1], 'avail', delta)
if ARGV[3] and ARGV[3] ~= '' then
  if delta > 0 then
    redis.call('PUBLISH', ARGV[3],
      cjson.encode({event = 'stock.back', data = {sku_id = tonumber(ARGV[4])}}))
  end
end
return {'ok', tostring(now)}
