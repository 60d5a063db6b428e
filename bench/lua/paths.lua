-- Authenticated GETs: each line of $BENCH_TOKENS is "<access token> <path>"; the requests
-- are cycled through (thread k of $BENCH_WRK_THREADS takes lines k, k+n, ...).
local report = require("report")

local requests = {}
local next_index = 0

setup = report.setup
done = report.done

function init(args)
    local nthreads = tonumber(os.getenv("BENCH_WRK_THREADS") or "1")
    local i = 0
    for line in io.lines(os.getenv("BENCH_TOKENS")) do
        local token, path = string.match(line, "^(%S+)%s+(%S+)$")
        if token ~= nil then
            if i % nthreads == tid then
                local headers = { Authorization = "Bearer " .. token }
                table.insert(requests, wrk.format("GET", path, headers))
            end
            i = i + 1
        end
    end
    if #requests == 0 then
        error("paths.lua: no requests for thread " .. tid)
    end
end

function request()
    next_index = next_index % #requests + 1
    return requests[next_index]
end

function response(status, headers, body)
    report.ok(status)
end
