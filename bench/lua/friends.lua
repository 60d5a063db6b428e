-- One page of friends, as REST (GET /v1/friends?limit=50) or as GraphQL (POST /graphql
-- asking for the same fields), by $BENCH_API = rest | graphql; cycling through the access
-- tokens in $BENCH_TOKENS (one a line; thread k of $BENCH_WRK_THREADS takes lines k, k+n, ...).
local report = require("report")

local requests = {}
local next_index = 0

setup = report.setup
done = report.done

local QUERY = '{"query":"{ friends(first: 50) { edges { since node { id username displayName '
    .. 'bio avatarUrl isPrivate friendsCount followersCount followingCount createdAt } } '
    .. 'pageInfo { hasNextPage endCursor } } }"}'

function init(args)
    local api = os.getenv("BENCH_API") or "rest"
    local nthreads = tonumber(os.getenv("BENCH_WRK_THREADS") or "1")
    local i = 0
    for line in io.lines(os.getenv("BENCH_TOKENS")) do
        if line ~= "" then
            if i % nthreads == tid then
                local headers = { Authorization = "Bearer " .. line }
                if api == "graphql" then
                    headers["Content-Type"] = "application/json"
                    table.insert(requests, wrk.format("POST", "/graphql", headers, QUERY))
                else
                    table.insert(requests, wrk.format("GET", "/v1/friends?limit=50", headers))
                end
            end
            i = i + 1
        end
    end
    if #requests == 0 then
        error("friends.lua: no tokens for thread " .. tid)
    end
end

function request()
    next_index = next_index % #requests + 1
    return requests[next_index]
end

function response(status, headers, body)
    -- GraphQL answers 200 even with errors: an answer with "errors" is a failure here.
    if status == 200 and string.find(body, '"errors"', 1, true) then
        report.ok(500)
    else
        report.ok(status)
    end
end
