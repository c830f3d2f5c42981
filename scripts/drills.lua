-- wrk script of the game-day drills (scripts/drills.py): a paced load, like the deploy tests'
-- paced.lua, that also tells what each response was and when the failed ones arrived.
--
-- Each connection waits DRILLS_DELAY_MS (default 100) between its requests: connections x 1000 /
-- DRILLS_DELAY_MS requests/s at most, steady, never flat out (a flat-out wrk would starve the
-- lab's CPUs and measure the load generator instead of the fault).
--
-- Per thread, response() counts every status, the 503s carrying a Retry-After header, the
-- responses marked `X-Cache: stale`, and for each failed response (status not 2xx/3xx, the same
-- as wrk's "Non-2xx or 3xx responses") its wall-clock time (CLOCK_REALTIME through LuaJIT's FFI,
-- microseconds; os.time() has a 1 s resolution) and its status, the first DRILLS_MAX_FAILURES
-- (default 20000) of them. done() gathers the threads' figures (thread:get) and prints one line:
--   DRILLS {"statuses": {"200": n, ...}, "retry_after_503": n, "stale": n, "failures": n,
--           "failure_times": [s, ...], "failure_statuses": [code, ...], "responses": n,
--           "latency_max_us": n}
-- (an empty object prints as []) after wrk's own summary (wrk prints it on SIGINT too, then calls done()).
local ffi = require("ffi")
ffi.cdef [[
typedef struct { long tv_sec; long tv_nsec; } drills_timespec;
int clock_gettime(int clk_id, drills_timespec *tp);
]]

local pause = tonumber(os.getenv("DRILLS_DELAY_MS") or "100")
local max_failures = tonumber(os.getenv("DRILLS_MAX_FAILURES") or "20000")
local clock = ffi.new("drills_timespec")
local threads = {}

local function now()
  ffi.C.clock_gettime(0, clock) -- CLOCK_REALTIME: the harness compares with time.time()
  return tonumber(clock.tv_sec) + tonumber(clock.tv_nsec) / 1e9
end

function setup(thread)
  table.insert(threads, thread)
end

function init(args)
  statuses = {}
  retry_after_503 = 0
  stale = 0
  failures = 0
  failure_times = {}
  failure_statuses = {}
  responses = 0
end

function delay()
  return pause
end

function response(status, headers, body)
  responses = responses + 1
  statuses[status] = (statuses[status] or 0) + 1
  local retry_after, cache = false, nil
  for name, value in pairs(headers) do
    local lower = string.lower(name)
    if lower == "retry-after" then
      retry_after = true
    elseif lower == "x-cache" then
      cache = string.lower(value)
    end
  end
  if cache == "stale" then
    stale = stale + 1
  end
  if status == 503 and retry_after then
    retry_after_503 = retry_after_503 + 1
  end
  if status < 200 or status > 399 then
    failures = failures + 1
    if #failure_times < max_failures then
      failure_times[#failure_times + 1] = now()
      failure_statuses[#failure_statuses + 1] = status
    end
  end
end

-- A minimal JSON encoder for what done() prints: numbers, strings, arrays and objects.
local function encode(value)
  local kind = type(value)
  if kind == "number" then
    if value == math.floor(value) and math.abs(value) < 1e15 then
      return string.format("%d", value)
    end
    return string.format("%.6f", value)
  elseif kind == "string" then
    return '"' .. value:gsub('[%c"\\]', function(c) return string.format("\\u%04x", c:byte()) end) .. '"'
  elseif kind == "table" then
    local parts = {}
    if #value > 0 or next(value) == nil then
      for _, item in ipairs(value) do
        parts[#parts + 1] = encode(item)
      end
      return "[" .. table.concat(parts, ",") .. "]"
    end
    for key, item in pairs(value) do
      parts[#parts + 1] = encode(tostring(key)) .. ":" .. encode(item)
    end
    return "{" .. table.concat(parts, ",") .. "}"
  end
  return "null"
end

function done(summary, latency, requests)
  local total = {
    statuses = {}, retry_after_503 = 0, stale = 0, failures = 0, failure_times = {},
    failure_statuses = {}, responses = 0, latency_max_us = latency.max,
  }
  for _, thread in ipairs(threads) do
    for code, n in pairs(thread:get("statuses") or {}) do
      local key = tostring(code)
      total.statuses[key] = (total.statuses[key] or 0) + n
    end
    for _, name in ipairs({ "retry_after_503", "stale", "failures", "responses" }) do
      total[name] = total[name] + (thread:get(name) or 0)
    end
    local times, codes = thread:get("failure_times") or {}, thread:get("failure_statuses") or {}
    for i, t in ipairs(times) do
      total.failure_times[#total.failure_times + 1] = t
      total.failure_statuses[#total.failure_statuses + 1] = codes[i]
    end
  end
  io.write("DRILLS " .. encode(total) .. "\n")
end
