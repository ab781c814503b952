-- rest-progress: the REST facade's progress endpoint for a random enrolled pair.
local headers = {["Authorization"] = AUTH}

function request()
  local course, user = random_pair()
  return wrk.format("GET", string.format(PATH, course, user), headers)
end
