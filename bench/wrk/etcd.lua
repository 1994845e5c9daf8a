-- etcd.lua: wrk driver for etcd's v3 JSON gateway (POST /v3/kv/put, /v3/kv/range, base64 keys).
-- Env: WRK_OP = put | get | serializable | load (sequential puts of every key once, then stop),
--      WRK_KEYS (default 100000), WRK_VALUE_BYTES (default 128).
-- Keys are "key-%012d", the names `metacenter bench` uses, so both systems see the same keys.
local op = os.getenv("WRK_OP") or "put"
local nkeys = tonumber(os.getenv("WRK_KEYS") or "100000")
local vbytes = tonumber(os.getenv("WRK_VALUE_BYTES") or "128")

local b64chars = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
local function b64(s)
  local out = {}
  for i = 1, #s, 3 do
    local x, y, z = s:byte(i, i + 2)
    local n = x * 65536 + (y or 0) * 256 + (z or 0)
    local function ch(v) return b64chars:sub(v + 1, v + 1) end
    out[#out + 1] = ch(math.floor(n / 262144) % 64) .. ch(math.floor(n / 4096) % 64) ..
        (y and ch(math.floor(n / 64) % 64) or "=") .. (z and ch(n % 64) or "=")
  end
  return table.concat(out)
end

local value64 = b64(string.rep("v", vbytes))
local counter = 0
local thread_count = 0

function setup(thread)
  thread:set("tid", thread_count)
  thread_count = thread_count + 1
end

local function key_at(i) return b64(string.format("key-%012d", i)) end

-- Requests are formatted once per key (b64 and wrk.format in every request() call cost wrk more
-- CPU than a server spends on the request); request() only picks one.
local reqs = {}
local function prepare()
  for i = 0, nkeys - 1 do
    local k = key_at(i)
    if op == "put" then
      reqs[i] = wrk.format(nil, "/v3/kv/put", nil, '{"key":"' .. k .. '","value":"' .. value64 .. '"}')
    elseif op == "serializable" then
      reqs[i] = wrk.format(nil, "/v3/kv/range", nil, '{"key":"' .. k .. '","serializable":true}')
    else
      reqs[i] = wrk.format(nil, "/v3/kv/range", nil, '{"key":"' .. k .. '"}')
    end
  end
end

-- WRK_PIPELINE=N (vs_etcd.sh --http-pipeline): each request() returns N requests, which wrk
-- writes at once and counts as N (HTTP/1.1 pipelining; both servers answer them in order). Up to
-- 4096 bundles of N random keys are built once, so request() still only picks one.
local depth = tonumber(os.getenv("WRK_PIPELINE") or "1")
local bundles, nbundles = {}, 0
local function bundle()
  nbundles = math.min(4096, math.max(1, math.floor(nkeys / depth)))
  for b = 1, nbundles do
    local parts = {}
    for j = 1, depth do parts[j] = reqs[math.random(0, nkeys - 1)] end
    bundles[b] = table.concat(parts)
  end
end

function init(args)
  math.randomseed(os.time() + (tid or 0) * 7919)
  wrk.method = "POST"
  wrk.headers["Content-Type"] = "application/json"
  nthreads = tonumber(os.getenv("WRK_THREADS") or "2")
  counter = tid or 0
  if op ~= "load" then
    prepare()
    if depth > 1 then bundle() end
  end
end

function request()
  if op == "load" then
    local k = counter
    counter = counter + nthreads
    if k >= nkeys then k = k % nkeys end
    return wrk.format(nil, "/v3/kv/put", nil, '{"key":"' .. key_at(k) .. '","value":"' .. value64 .. '"}')
  end
  if depth > 1 then return bundles[math.random(1, nbundles)] end
  return reqs[math.random(0, nkeys - 1)]
end

-- Only the load phase looks at responses: with a response() function wrk hands every response's
-- headers and body to Lua, which doubles its CPU per request.
if op == "load" then function response(status, headers, body)
  -- + 256: the first keys are written once more (wrapping), since the very first request of a
  -- run is sometimes never sent (seen with both servers: one key missing, 404s later).
  if op == "load" and counter >= nkeys + 256 and not stopped then
    -- wrk's main thread sleeps the whole -d regardless: leave a marker the script waits for.
    stopped = true
    local f = io.open((os.getenv("WRK_DONE_PREFIX") or "/tmp/wrk-load") .. "." .. tid, "w")
    if f then f:close() end
    wrk.thread:stop()
  end
end end

function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    '{"requests":%d,"duration_us":%d,"rps":%.1f,"p50_us":%d,"p90_us":%d,"p99_us":%d,"max_us":%d,' ..
    '"errors_connect":%d,"errors_read":%d,"errors_write":%d,"errors_status":%d,"errors_timeout":%d}\n',
    summary.requests, summary.duration, summary.requests / (summary.duration / 1e6),
    latency:percentile(50), latency:percentile(90), latency:percentile(99), latency.max,
    e.connect, e.read, e.write, e.status, e.timeout))
end
