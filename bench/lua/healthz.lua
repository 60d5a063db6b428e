-- Framework floor: GET /healthz (no auth, no database), a static request.
local report = require("report")

wrk.method = "GET"
wrk.path = "/healthz"

setup = report.setup
done = report.done

function response(status, headers, body)
    report.ok(status)
end
