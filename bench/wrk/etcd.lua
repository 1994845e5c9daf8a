-- etcd.lua: wrk driver for etcd's v3 JSON gateway (POST /v3/kv/put, /v3/kv/range, base64 keys).
-- Env: WRK_OP = put | get | serializable | load (sequential puts of every key once, then stop),
--      WRK_KEYS (default 100000), WRK_VALUE_BYTES (default 128).
-- Keys are "key-%012d", the names `metacenter bench` uses, so both systems see the same keys.
local op = os.getenv("WRK_OP") or "put"
local nkeys = tonumber(os.getenv("WRK_KEYS") or "100000")
local vbytes = tonumber(os.getenv("WRK_VALUE_BYTES") or "128")

local b64chars = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
local function b64(s)
  return ((s:gsub(".", function(x)
    local r, b = "", x:byte()
    for i = 8, 1, -1 do r = r .. (b % 2 ^ i - b % 2 ^ (i - 1) > 0 and "1" or "0") end
    return r
  end) .. "0000"):gsub("%d%d%d?%d?%d?%d?", function(x)
    if #x < 6 then return "" end
    local c = 0
    for i = 1, 6 do c = c + (x:sub(i, i) == "1" and 2 ^ (6 - i) or 0) end
    return b64chars:sub(c + 1, c + 1)
  end) .. ({ "", "==", "=" })[#s % 3 + 1])
end

local value64 = b64(string.rep("v", vbytes))
local counter = 0
local thread_count = 0

function setup(thread)
  thread:set("tid", thread_count)
  thread_count = thread_count + 1
end

function init(args)
  math.randomseed(os.time() + (tid or 0) * 7919)
  wrk.method = "POST"
  wrk.headers["Content-Type"] = "application/json"
  nthreads = tonumber(os.getenv("WRK_THREADS") or "2")
  counter = tid or 0
end

local function key_at(i) return b64(string.format("key-%012d", i)) end

function request()
  if op == "load" then
    local k = counter
    counter = counter + nthreads
    if k >= nkeys then k = k % nkeys end
    return wrk.format(nil, "/v3/kv/put", nil, '{"key":"' .. key_at(k) .. '","value":"' .. value64 .. '"}')
  end
  local k = key_at(math.random(0, nkeys - 1))
  if op == "put" then
    return wrk.format(nil, "/v3/kv/put", nil, '{"key":"' .. k .. '","value":"' .. value64 .. '"}')
  elseif op == "serializable" then
    return wrk.format(nil, "/v3/kv/range", nil, '{"key":"' .. k .. '","serializable":true}')
  end
  return wrk.format(nil, "/v3/kv/range", nil, '{"key":"' .. k .. '"}')
end

function response(status, headers, body)
  -- + 256: the first keys are written once more (wrapping), since the very first request of a
  -- run is sometimes never sent (seen with both servers: one key missing, 404s later).
  if op == "load" and counter >= nkeys + 256 and not stopped then
    -- wrk's main thread sleeps the whole -d regardless: leave a marker the script waits for.
    stopped = true
    local f = io.open((os.getenv("WRK_DONE_PREFIX") or "/tmp/wrk-load") .. "." .. tid, "w")
    if f then f:close() end
    wrk.thread:stop()
  end
end

function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    '{"requests":%d,"duration_us":%d,"rps":%.1f,"p50_us":%d,"p90_us":%d,"p99_us":%d,"max_us":%d,' ..
    '"errors_connect":%d,"errors_read":%d,"errors_write":%d,"errors_status":%d,"errors_timeout":%d}\n',
    summary.requests, summary.duration, summary.requests / (summary.duration / 1e6),
    latency:percentile(50), latency:percentile(90), latency:percentile(99), latency.max,
    e.connect, e.read, e.write, e.status, e.timeout))
end
