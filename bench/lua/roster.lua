-- roster: one fixed courseStudents page on the largest course.
local headers = {["Content-Type"] = "application/json", ["Authorization"] = AUTH}
local prepared = nil

function request()
  if prepared == nil then
    prepared = wrk.format("POST", PATH, headers, BODY)
  end
  return prepared
end
