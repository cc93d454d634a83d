-- Load a SKU's counters from the system of record, unless another process already did.
-- KEYS: 1 stock hash, 2 holds zset, 3 hold data hash, 4 unpaid units by buyer hash
-- ARGV: 1 available, 2 price (minor units), 3 currency, then per live hold:
--       hold id, deadline (ms), qty|buyer|sale id|price
-- Returns 1 when loaded now, 0 when it was loaded already.
if redis.call('HEXISTS', KEYS[1], 'avail') == 1 then
  return 0
end
local held = 0
redis.call('DEL', KEYS[4])
for i = 4, #ARGV, 3 do
  redis.call('ZADD', KEYS[2], ARGV[i + 1], ARGV[i])
  redis.call('HSET', KEYS[3], ARGV[i], ARGV[i + 2])
  local qty, buyer = string.match(ARGV[i + 2], '^(%d+)|([^|]*)|')
  held = held + tonumber(qty)
  -- recreated holds count against their buyer's bound, whatever the bound is now
  redis.call('HINCRBY', KEYS[4], buyer, tonumber(qty))
end
redis.call('HSET', KEYS[1], 'avail', ARGV[1], 'held', held, 'sold', 0, 'price', ARGV[2], 'currency', ARGV[3])
return 1
