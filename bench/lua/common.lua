-- Shared by every scenario. bench/run.py prepends the constants (C, PER, STEP, STUDENTS,
-- FIRST_ID, LESSONS, BIG, BIG_EVERY, AUTH, BODY, ...) and appends the scenario's request().
local threads = {}
local thread_count = 0

function setup(thread)
  thread_count = thread_count + 1
  thread:set("tid", thread_count)
  table.insert(threads, thread)
end

bad_status = 0
graphql_errors = 0
changes = 0

function init(args)
  math.randomseed(tid * 7919 + os.time())
  if scenario_init then scenario_init() end
end

-- The dataset's layout (bench/dataset.py Layout.courses_of): the courses of student u.
function courses_of(u)
  local chosen = {}
  local has_big = false
  for k = 0, PER - 1 do
    local c = ((u * 7 + k * STEP) % C) + 1
    chosen[#chosen + 1] = c
    if c == BIG then has_big = true end
  end
  if u % BIG_EVERY == 0 and not has_big then chosen[#chosen] = BIG end
  return chosen
end

function random_pair()
  local u = math.random(0, STUDENTS - 1)
  local courses = courses_of(u)
  return courses[math.random(1, #courses)], FIRST_ID + u
end

function response(status, headers, body)
  if status ~= 200 then
    bad_status = bad_status + 1
  elseif string.find(body, '"errors"', 1, true) then
    graphql_errors = graphql_errors + 1
  elseif string.find(body, 'Lesson marked as', 1, true) then
    changes = changes + 1
  end
end

function done(summary, latency, requests)
  local bad, gql, changed = 0, 0, 0
  for _, thread in ipairs(threads) do
    bad = bad + (thread:get("bad_status") or 0)
    gql = gql + (thread:get("graphql_errors") or 0)
    changed = changed + (thread:get("changes") or 0)
  end
  local e = summary.errors
  io.write(string.format(
    'BENCH_JSON {"requests":%d,"duration_us":%d,"bytes":%d,"errors_connect":%d,' ..
    '"errors_read":%d,"errors_write":%d,"errors_status":%d,"errors_timeout":%d,' ..
    '"bad_status":%d,"graphql_errors":%d,"changes":%d,"latency_p50_us":%d,' ..
    '"latency_p90_us":%d,"latency_p99_us":%d,"latency_max_us":%d,"latency_mean_us":%.1f}\n',
    summary.requests, summary.duration, summary.bytes, e.connect, e.read, e.write, e.status,
    e.timeout, bad, gql, changed, latency:percentile(50), latency:percentile(90),
    latency:percentile(99), latency.max, latency.mean))
end
