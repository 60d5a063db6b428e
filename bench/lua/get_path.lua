-- One authenticated GET of $BENCH_PATH, cycling through the access tokens in the file
-- $BENCH_TOKENS (one a line; thread k of $BENCH_WRK_THREADS takes lines k, k+n, ...).
local report = require("report")

local requests = {}
local next_index = 0

setup = report.setup
done = report.done

function init(args)
    local path = os.getenv("BENCH_PATH")
    local nthreads = tonumber(os.getenv("BENCH_WRK_THREADS") or "1")
    local i = 0
    for line in io.lines(os.getenv("BENCH_TOKENS")) do
        if line ~= "" then
            if i % nthreads == tid then
                local headers = { Authorization = "Bearer " .. line }
                table.insert(requests, wrk.format("GET", path, headers))
            end
            i = i + 1
        end
    end
    if #requests == 0 then
        error("get_path.lua: no tokens for thread " .. tid)
    end
end

function request()
    next_index = next_index % #requests + 1
    return requests[next_index]
end

function response(status, headers, body)
    report.ok(status)
end
