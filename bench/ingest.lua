-- wrk script: POST unique e-consult request events (closed loop, maximum throughput).
--   wrk -t2 -c32 -d20s -s bench/ingest.lua http://127.0.0.1:8080/ingest/econsult
-- Reads the template event from EVENT_FILE (default tests/data/econsult/request.json).
-- AUTHORIZATION, when set, is sent as the Authorization header (scripts/bench-auth); CLOSE=1 sends
-- "Connection: close" (wrk's -H is not applied to requests this script formats itself).
local path = os.getenv("EVENT_FILE") or "tests/data/econsult/request.json"
local file = assert(io.open(path, "r"))
local template = file:read("*a")
file:close()
local authorization = os.getenv("AUTHORIZATION")
local close = os.getenv("CLOSE") == "1"
local counter = 0
local thread_id = 0
-- RUN_ID keeps the events of several wrk processes started in one second apart (scripts/bench-scale).
local run = (os.getenv("RUN_ID") or "") .. tostring(os.time())

function setup(thread)
  thread_id = thread_id + 1
  thread:set("thread_id", thread_id)
end

function request()
  counter = counter + 1
  local suffix = run .. "-" .. tostring(thread_id) .. "-" .. tostring(counter)
  local body = template:gsub("evt%-7f3a%-0001", "evt-" .. suffix):gsub("EC%-2026%-000451", "EC-" .. suffix)
  local headers = { ["Content-Type"] = "application/json" }
  if authorization then headers["Authorization"] = authorization end
  if close then headers["Connection"] = "close" end
  return wrk.format("POST", "/ingest/econsult", headers, body)
end

function response(status, headers, body)
  if status ~= 202 then
    io.stderr:write("unexpected status " .. status .. "\n")
  end
end
