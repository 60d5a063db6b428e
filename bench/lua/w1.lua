-- W1 — social graph API mix (bench/workloads/w1_mix.py writes the data files).
--
-- $BENCH_TOKENS: line k = "<user id> <access token>" of caller k.
-- $BENCH_SLOTS:  one request per line, "<op> <caller k> [<arg>]"; thread t of
--                $BENCH_WRK_THREADS takes lines t, t+n, ... and cycles through them.
-- $BENCH_ROUTES: the request of each op but FR, "<op>\t<method>\t<path>\t<body>" per line
--                (w1_mix.ROUTES; {arg} = the slot's argument, {n} = the request's serial).
-- $BENCH_W1_STATS: done() writes per-op counts there (JSON).
--
-- Every request carries X-Request-ID "<op>-<n>" (the server echoes it), so response()
-- knows which request it answers: that is how a friend request is followed by its accept.
-- FR slot: if this thread holds an accept whose friend request has been answered 200, send
-- that accept (POST /v1/friends/requests/{requester}/accept, as the other side); else send a
-- new friend request (POST /v1/friends/requests as the caller, to the caller of <arg>) and
-- remember its accept. So each accept follows its own request's response, on the same
-- thread (any of its connections), and the FR share splits about evenly between the two.
local report = require("report")

local uids, auths = {}, {}
local slots = {}
local routes = {} -- op -> { method, path, body }
local next_slot = 0
local serial = 0
local pending = {} -- friend-request serial -> the accept request to send once it is answered
local ready, ready_head, ready_tail = {}, 1, 0 -- queue of accepts to send
local json_headers = { ["Content-Type"] = "application/json" }

-- per-thread counters, read back in done()
sent = {}
answered = {}
failed = {}
statuses = {}

local threads = {}

function setup(thread)
    report.setup(thread)
    table.insert(threads, thread)
end

local function bump(t, k)
    t[k] = (t[k] or 0) + 1
end

function init(args)
    local nthreads = tonumber(os.getenv("BENCH_WRK_THREADS") or "1")
    for line in io.lines(os.getenv("BENCH_TOKENS")) do
        local uid, token = line:match("^(%d+) (%S+)$")
        if uid then
            table.insert(uids, uid)
            table.insert(auths, "Bearer " .. token)
        end
    end
    for line in io.lines(os.getenv("BENCH_ROUTES")) do
        local op, method, path, body = line:match("^(%u+)\t(%u+)\t([^\t]+)\t(.*)$")
        if op then
            routes[op] = { method, path, body }
        end
    end
    local i = 0
    for line in io.lines(os.getenv("BENCH_SLOTS")) do
        if line ~= "" then
            if i % nthreads == tid then
                local op, k, arg = line:match("^(%u+) (%d+) ?(%S*)$")
                table.insert(slots, { op, tonumber(k), arg })
            end
            i = i + 1
        end
    end
    if #slots == 0 or #auths == 0 then
        error("w1.lua: no slots or tokens for thread " .. tid)
    end
end

local function req(op, method, path, k, body, extra)
    serial = serial + 1
    local headers = { Authorization = auths[k], ["X-Request-ID"] = op .. "-" .. serial }
    if body then
        headers["Content-Type"] = "application/json"
    end
    bump(sent, op)
    return wrk.format(method, path, headers, body), serial
end

function request()
    next_slot = next_slot % #slots + 1
    local slot = slots[next_slot]
    local op, k, arg = slot[1], slot[2], slot[3]
    local route = routes[op]
    if route then
        local path = route[2]:gsub("{arg}", arg)
        local body = nil
        if route[3] ~= "" then
            body = route[3]:gsub("{n}", tostring(serial + 1))
        end
        return req(op, route[1], path, k, body)
    elseif op == "FR" then
        if ready_head <= ready_tail then
            local accept = ready[ready_head]
            ready[ready_head] = nil
            ready_head = ready_head + 1
            return req("FA", "POST", accept[1], accept[2])
        end
        local other = tonumber(arg)
        local body = '{"user_id":"' .. uids[other] .. '"}'
        local s, n = req("FR", "POST", "/v1/friends/requests", k, body)
        pending[n] = { "/v1/friends/requests/" .. uids[k] .. "/accept", other }
        return s
    end
    error("w1.lua: unknown op " .. tostring(op))
end

function response(status, headers, body)
    local ok = report.ok(status)
    local rid = headers["x-request-id"] or headers["X-Request-ID"] or headers["X-Request-Id"]
    local op, n = "?", nil
    if rid then
        local o, s = rid:match("^(%u+)%-(%d+)$")
        if o then
            op, n = o, tonumber(s)
        end
    end
    bump(answered, op)
    if not ok then
        bump(failed, op)
        bump(statuses, op .. ":" .. status)
    end
    if op == "FR" and n then
        local accept = pending[n]
        pending[n] = nil
        if ok and accept then
            ready_tail = ready_tail + 1
            ready[ready_tail] = accept
        end
    end
end

local function merge(into, name)
    for _, t in ipairs(threads) do
        local v = t:get(name)
        if v then
            for k, n in pairs(v) do
                into[k] = (into[k] or 0) + n
            end
        end
    end
end

local function encode(t)
    local parts = {}
    for k, n in pairs(t) do
        table.insert(parts, string.format('"%s":%d', k, n))
    end
    return "{" .. table.concat(parts, ",") .. "}"
end

function done(summary, latency, requests)
    report.done(summary, latency, requests)
    local path = os.getenv("BENCH_W1_STATS")
    if path then
        local all = { sent = {}, answered = {}, failed = {}, statuses = {} }
        for name, t in pairs(all) do
            merge(t, name)
        end
        local f = io.open(path, "w")
        f:write(string.format('{"sent":%s,"answered":%s,"failed":%s,"statuses":%s}\n',
            encode(all.sent), encode(all.answered), encode(all.failed), encode(all.statuses)))
        f:close()
    end
end
