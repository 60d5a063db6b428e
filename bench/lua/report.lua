-- Shared by every bench script: count non-2xx answers per thread, and print one JSON
-- line at the end ("BENCH_JSON {...}") with rate, latency percentiles and error counts.
-- Load it with require("report") (bench/harness/wrk.py sets LUA_PATH).

local M = {}
local threads = {}

-- Per-thread counters (globals of the thread's Lua state, read back in done()).
non2xx = 0
starved = 0
bad_body = 0

function M.setup(thread)
    thread:set("tid", #threads)
    table.insert(threads, thread)
end

-- Call from response(): true when the answer is a 2xx.
function M.ok(status)
    if status < 200 or status > 299 then
        non2xx = non2xx + 1
        return false
    end
    return true
end

local function sum(name)
    local total = 0
    for _, t in ipairs(threads) do
        total = total + (t:get(name) or 0)
    end
    return total
end

function M.done(summary, latency, requests)
    local e = summary.errors
    local fields = {
        string.format('"requests":%d', summary.requests),
        string.format('"duration_us":%d', summary.duration),
        string.format('"bytes":%d', summary.bytes),
        string.format('"latency_us":{"p50":%d,"p90":%d,"p99":%d,"p999":%d,"mean":%.1f,"max":%d}',
            latency:percentile(50), latency:percentile(90), latency:percentile(99),
            latency:percentile(99.9), latency.mean, latency.max),
        string.format('"errors":{"connect":%d,"read":%d,"write":%d,"timeout":%d,"status":%d}',
            e.connect, e.read, e.write, e.timeout, e.status),
        string.format('"non2xx":%d', sum("non2xx")),
        string.format('"starved":%d', sum("starved")),
        string.format('"bad_body":%d', sum("bad_body")),
    }
    io.write("BENCH_JSON {" .. table.concat(fields, ",") .. "}\n")
end

return M
