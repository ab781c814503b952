-- progress (and baseline): courseProgress for a random enrolled (course, student) pair.
local headers = {["Content-Type"] = "application/json", ["Authorization"] = AUTH}

function request()
  local course, user = random_pair()
  return wrk.format("POST", PATH, headers, string.format(BODY, course, user))
end
