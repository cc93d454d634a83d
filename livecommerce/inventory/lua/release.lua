-- Put holds' units back on the shelf; a second call for the same hold does nothing.
-- KEYS: 1 stock hash, 2 holds zset, 3 hold data hash, 4 sale hash, 5 sale buyers hash,
--       6 unpaid units by buyer hash, 7 (optional) the idempotency key that made the hold
-- ARGV: 1 the events channel ('' : none), 2 the SKU id, then the hold ids (with KEYS[7]:
--       exactly one). Units put back publish a 'stock.back' event there.
-- Returns, per hold released now, {hold id, qty, buyer id}; a hold already gone is left out.
-- KEYS[7] is deleted if it still names the hold, so the buyer may use that key again.
local released = {}
local current_sale = redis.call('HGET', KEYS[4], 'id')
for i = 3, #ARGV do
  local hold_id = ARGV[i]
  local data = redis.call('HGET', KEYS[3], hold_id)
  if data then
    local qty, buyer, sale_id = string.match(data, '^(%d+)|([^|]*)|([^|]*)|')
    qty = tonumber(qty)
    redis.call('HDEL', KEYS[3], hold_id)
    redis.call('ZREM', KEYS[2], hold_id)
    redis.call('HINCRBY', KEYS[1], 'avail', qty)
    redis.call('HINCRBY', KEYS[1], 'held', -qty)
    if redis.call('HINCRBY', KEYS[6], buyer, -qty) <= 0 then
      redis.call('HDEL', KEYS[6], buyer)
    end
    if sale_id ~= '' and current_sale == sale_id then
      redis.call('HINCRBY', KEYS[4], 'sold', -qty)
      redis.call('HINCRBY', KEYS[5], buyer, -qty)
    end
    released[#released + 1] = {hold_id, qty, buyer}
  end
end
if KEYS[7] and redis.call('GET', KEYS[7]) == ARGV[3] then
  redis.call('DEL', KEYS[7])
end
if #released > 0 and ARGV[1] ~= '' then
  redis.call('PUBLISH', ARGV[1],
    cjson.encode({event = 'stock.back', data = {sku_id = tonumber(ARGV[2])}}))
end
return released
