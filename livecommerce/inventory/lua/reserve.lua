-- Reserve qty units of one SKU for one buyer, atomically.
-- KEYS: 1 stock hash, 2 holds zset, 3 hold data hash, 4 idempotency key, 5 sale hash,
--       6 sale buyers hash, 7 unpaid units by buyer hash (all carry the same {sku} hash tag)
-- ARGV: 1 hold id, 2 buyer id, 3 qty, 4 now (ms), 5 hold deadline (ms), 6 idempotency ttl (s),
--       7 stream the purchase names ('' for none), 8 most unpaid units per buyer (0: no bound),
--       9 (optional) the events channel, 10 the SKU id: a 'stock.out' event is published there
--       when this hold takes the last unit (of the SKU or of its sale), and at most once a second
--       when a purchase is refused for want of units, so every process can refuse the crowd
--       itself (inventory/soldout.py), 11 the most the buyer agreed to pay a unit ('' for no
--       bound): a dearer unit (a sale that ended, a price raised) is refused before anything is
--       taken
-- Returns {status, ...}: ok: hold id, available after, unit price, sale id;
--   replay: hold id; not_loaded; insufficient: available; sale_sold_out: left in the cap;
--   limit_exceeded: units this buyer may still take in the sale;
--   too_many_unpaid: units this buyer already holds unpaid; price_changed: the unit price now.
local replay = redis.call('GET', KEYS[4])
if replay then
  return {'replay', replay}
end
local stock = redis.call('HMGET', KEYS[1], 'avail', 'price')
if not stock[1] then
  return {'not_loaded'}
end
local qty = tonumber(ARGV[3])
local now = tonumber(ARGV[4])
local channel = ARGV[9]
local sale
local function say_out(avail, sale_left, refused)
  if channel == nil or channel == '' then
    return
  end
  if refused and now - tonumber(redis.call('HGET', KEYS[1], 'said') or '0') < 1000 then
    return
  end
  redis.call('HSET', KEYS[1], 'said', now)
  local data = {sku_id = tonumber(ARGV[10]), available = tonumber(avail)}
  if sale[1] then
    data.sale_id = sale[1]
    data.sale_stream = sale[8] or ''
    data.sale_starts = tonumber(sale[5])
    data.sale_ends = tonumber(sale[6])
    data.sale_limit = tonumber(sale[7])
    data.sale_left = sale_left
  end
  redis.call('PUBLISH', channel, cjson.encode({event = 'stock.out', data = data}))
end
local price = stock[2]
local sale_id = ''
sale = redis.call('HMGET', KEYS[5], 'id', 'price', 'cap', 'sold', 'starts', 'ends', 'limit',
  'stream')
-- A sale belongs to one stream: its price is for purchases made in that stream only.
local in_sale_stream = sale[8] == false or sale[8] == '' or sale[8] == ARGV[7]
if sale[1] and in_sale_stream and now >= tonumber(sale[5]) and now < tonumber(sale[6]) then
  local left = tonumber(sale[3]) - tonumber(sale[4])
  if qty > left then
    if left == 0 then
      say_out(stock[1], 0, true)
    end
    return {'sale_sold_out', tostring(left)}
  end
  -- held and paid units of this sale both count: release gives them back, commit does not
  local mine = tonumber(redis.call('HGET', KEYS[6], ARGV[2]) or '0')
  if mine + qty > tonumber(sale[7]) then
    return {'limit_exceeded', tostring(tonumber(sale[7]) - mine)}
  end
  sale_id = sale[1]
  price = sale[2]
end
local bound = tonumber(ARGV[8])
local unpaid = tonumber(redis.call('HGET', KEYS[7], ARGV[2]) or '0')
if bound > 0 and unpaid + qty > bound then
  return {'too_many_unpaid', tostring(unpaid)}
end
local avail = tonumber(stock[1])
if avail < qty then
  if avail == 0 then
    local sale_left = sale[1] and tonumber(sale[3]) - tonumber(sale[4]) or 0
    say_out(0, sale_left, true)
  end
  return {'insufficient', tostring(avail)}
end
local most = ARGV[11]
if most and most ~= '' and tonumber(price) > tonumber(most) then
  return {'price_changed', price}
end
avail = redis.call('HINCRBY', KEYS[1], 'avail', -qty)
redis.call('HINCRBY', KEYS[1], 'held', qty)
redis.call('ZADD', KEYS[2], ARGV[5], ARGV[1])
redis.call('HSET', KEYS[3], ARGV[1], qty .. '|' .. ARGV[2] .. '|' .. sale_id .. '|' .. price)
redis.call('HINCRBY', KEYS[7], ARGV[2], qty)
local sale_left = -1
if sale_id ~= '' then
  sale_left = tonumber(sale[3]) - redis.call('HINCRBY', KEYS[5], 'sold', qty)
  redis.call('HINCRBY', KEYS[6], ARGV[2], qty)
elseif sale[1] then
  sale_left = tonumber(sale[3]) - tonumber(sale[4])
end
if avail == 0 or (sale_id ~= '' and sale_left == 0) then
  say_out(avail, math.max(sale_left, 0), false)
end
redis.call('SET', KEYS[4], ARGV[1], 'EX', ARGV[6])
return {'ok', ARGV[1], tostring(avail), price, sale_id}
