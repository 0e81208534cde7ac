-- wrk script for the Phone Auth benchmark: every request gets its own number.
--
--   wrk -c64 -d10s -s bench/wrk/phone_auth.lua http://127.0.0.1:8000 -- MODE BASE
--
-- MODE send:   POST send-verification, number BASE, BASE+1, ...
--      verify: POST verify-code for numbers BASE, BASE+1, ... (bench/run.py seeds a
--              pending verification for each, so every check goes to the fake Twilio)
--      login:  a whole login: send for a new number; when its 200 arrives, the next
--              request on that connection is the verify of that number
-- Number k (same formula as bench/run.py): even k → +996 555 xxx xxx (KG),
-- odd k → +1 212 2xx xxxx (US).

local threads = {}
local next_id = 0

function setup(thread)
   thread:set("id", next_id)
   thread:set("nthreads", 0)
   next_id = next_id + 1
   table.insert(threads, thread)
end

local mode, base, step, counter = "send", 0, 1, 0
-- globals, so that done() can read them from every thread with thread:get()
logins, non2xx = 0, 0
local ready = {}
local headers = { ["Content-Type"] = "application/json" }

function init(args)
   mode = args[1] or "send"
   base = tonumber(args[2] or "0") + id
   step = tonumber(args[3] or "1")
end

local function phone(k)
   if k % 2 == 0 then
      return string.format("+996555%06d", math.floor(k / 2) % 1000000)
   end
   return string.format("+1212%07d", 2000000 + math.floor((k - 1) / 2) % 8000000)
end

local function next_phone()
   local k = base + counter * step
   counter = counter + 1
   return phone(k)
end

local function send(p)
   return wrk.format("POST", "/api/v1/auth/send-verification", headers,
                     '{"phone": "' .. p .. '"}')
end

local function verify(p)
   return wrk.format("POST", "/api/v1/auth/verify-code", headers,
                     '{"phone": "' .. p .. '", "verification_code": "123456"}')
end

function request()
   if mode == "verify" then
      return verify(next_phone())
   end
   if mode == "login" and #ready > 0 then
      return verify(table.remove(ready))
   end
   return send(next_phone())
end

function response(status, hdrs, body)
   if status < 200 or status > 299 then
      non2xx = non2xx + 1
      return
   end
   if mode ~= "login" then
      return
   end
   if body:find('"access_token"', 1, true) then
      logins = logins + 1
   else
      local p = body:match('"phone":%s*"(%+%d+)"')
      if p then
         table.insert(ready, p)
      end
   end
end

function done(summary, latency, requests)
   local total_logins, total_non2xx = 0, 0
   for _, t in ipairs(threads) do
      total_logins = total_logins + (t:get("logins") or 0)
      total_non2xx = total_non2xx + (t:get("non2xx") or 0)
   end
   local e = summary.errors
   io.write(string.format(
      'WRK {"requests": %d, "duration_us": %d, "non2xx": %d, "status_errors": %d, ' ..
      '"socket_errors": %d, "timeouts": %d, "p50_us": %d, "p99_us": %d, "max_us": %d, ' ..
      '"logins": %d}\n',
      summary.requests, summary.duration, total_non2xx, e.status,
      e.connect + e.read + e.write, e.timeout,
      latency:percentile(50), latency:percentile(99), latency.max, total_logins))
end
