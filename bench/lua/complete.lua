-- complete: run with as many threads as connections, so each thread is one connection
-- acting as one student (STUDENT_AUTHS[tid]); it toggles one lesson of one of its courses:
-- completeLesson, incompleteLesson, completeLesson, ...
local headers = nil
local sent = 0
local course, lesson

function scenario_init()
  headers = {["Content-Type"] = "application/json", ["Authorization"] = STUDENT_AUTHS[tid]}
  course = STUDENT_COURSES[tid]
  lesson = STUDENT_LESSONS[tid]
end

function request()
  sent = sent + 1
  local body
  if sent % 2 == 1 then
    body = string.format(COMPLETE_BODY, course, lesson)
  else
    body = string.format(INCOMPLETE_BODY, course, lesson)
  end
  return wrk.format("POST", PATH, headers, body)
end
