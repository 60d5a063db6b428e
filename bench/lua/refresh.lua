-- Chained refresh-token rotation: POST /v1/auth/refresh.
-- Each thread holds a pool of live refresh tokens (from $BENCH_TOKENS; thread k of
-- $BENCH_WRK_THREADS takes lines k, k+n, ...). request() takes one from the pool;
-- response() parses the new refresh token out of the body and puts it back, so every
-- request carries a token that has never been spent. The pool must hold more tokens
-- than the thread has connections; "starved" counts requests sent without one.
local report = require("report")

local pool = {}
local head, tail = 1, 0
local headers = { ["Content-Type"] = "application/json" }

local function push(token)
    tail = tail + 1
    pool[tail] = token
end

local function pop()
    if head > tail then
        return nil
    end
    local token = pool[head]
    pool[head] = nil
    head = head + 1
    return token
end

setup = report.setup
done = report.done

function init(args)
    local nthreads = tonumber(os.getenv("BENCH_WRK_THREADS") or "1")
    local i = 0
    for line in io.lines(os.getenv("BENCH_TOKENS")) do
        if line ~= "" then
            if i % nthreads == tid then
                push(line)
            end
            i = i + 1
        end
    end
end

function request()
    local token = pop()
    if token == nil then
        starved = starved + 1
        token = "starved-no-live-refresh-token-left"
    end
    return wrk.format("POST", "/v1/auth/refresh", headers, '{"refresh_token":"' .. token .. '"}')
end

function response(status, headers, body)
    if not report.ok(status) then
        return
    end
    local token = string.match(body, '"refresh_token":"([^"]+)"')
    if token then
        push(token)
    else
        bad_body = bad_body + 1
    end
end
