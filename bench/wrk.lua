-- wrk.lua: report exact totals as one JSON line; with BENCH_DELAY_MS set,
-- each connection waits that long after a response before its next request
-- (W8: a fixed request rate = connections / delay).
local d = tonumber(os.getenv("BENCH_DELAY_MS") or "")
if d then
   function delay() return d end
end

function done(s, latency, requests)
   local e = s.errors
   io.write(string.format(
      '\nBENCH {"us":%d,"requests":%d,"bytes":%d,"errors":%d,'
      .. '"p50_us":%d,"p99_us":%d}\n',
      s.duration, s.requests, s.bytes,
      e.connect + e.read + e.write + e.status + e.timeout,
      latency:percentile(50), latency:percentile(99)))
end
