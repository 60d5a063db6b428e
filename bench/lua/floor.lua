-- The framework floor: GET / on the bare Litestar + msgspec app (bench/harness/floor.py).
local report = require("report")

wrk.method = "GET"
wrk.path = "/"

setup = report.setup
done = report.done

function response(status, headers, body)
    report.ok(status)
end
