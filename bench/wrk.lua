-- wrk script for bench/api.py. BENCH_MODE: "debit" (POST a debit of 1 for users bench-1..bench-BENCH_USERS
-- in turn), "balance" (GET the balance with the tokens of the file BENCH_TOKENS in turn) or "health".
-- done() prints one line `WRK_JSON {...}` with the figures the bench reads.
local mode = os.getenv("BENCH_MODE") or "health"
local users = tonumber(os.getenv("BENCH_USERS") or "1")
-- BENCH_AMOUNT: the debit's amount as JSON text ("0.1": fractional charges, which accrue).
local amount = os.getenv("BENCH_AMOUNT") or "1"
local threads = 0
local counter = 0
local tokens = {}

function setup(thread)
  -- Threads start at different users so they do not walk the same rows in lockstep.
  thread:set("first", threads * 7919)
  threads = threads + 1
end

function init(args)
  counter = first or 0
  if mode == "balance" then
    for line in io.lines(os.getenv("BENCH_TOKENS")) do
      tokens[#tokens + 1] = line
    end
  end
end

local debit_headers = {
  ["Content-Type"] = "application/json",
  ["X-Service-Key"] = os.getenv("BENCH_SERVICE_KEY"),
  ["X-App-Id"] = "bench",
}

function request()
  counter = counter + 1
  if mode == "debit" then
    local body = '{"userId":"bench-' .. (counter % users + 1)
      .. '","amount":' .. amount .. ',"appId":"bench","description":"bench debit"}'
    return wrk.format("POST", "/api/v1/internal/credits/use", debit_headers, body)
  elseif mode == "balance" then
    local token = tokens[counter % #tokens + 1]
    return wrk.format("GET", "/api/v1/credits/balance", { ["Authorization"] = "Bearer " .. token })
  end
  return wrk.format("GET", "/health")
end

function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    'WRK_JSON {"requests":%d,"duration_us":%d,"p50_us":%d,"p99_us":%d,"connect":%d,"read":%d,'
      .. '"write":%d,"status":%d,"timeout":%d}\n',
    summary.requests, summary.duration, latency:percentile(50), latency:percentile(99),
    e.connect, e.read, e.write, e.status, e.timeout))
end
