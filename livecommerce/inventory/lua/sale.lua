-- Start (or replace) the flash sale on a SKU; a new sale starts its per-buyer counts afresh.
-- KEYS: 1 sale hash, 2 sale buyers hash
-- ARGV: 1 sale id, 2 price, 3 cap, 4 starts (ms), 5 ends (ms), 6 per-buyer limit,
--       7 the stream it runs in ('' : any purchase)
redis.call('DEL', KEYS[1], KEYS[2])
redis.call('HSET', KEYS[1], 'id', ARGV[1], 'price', ARGV[2], 'cap', ARGV[3], 'sold', 0,
  'starts', ARGV[4], 'ends', ARGV[5], 'limit', ARGV[6], 'stream', ARGV[7])
return 1
