// coursepulse's live progress app: students follow their bars, instructors their rosters.
// Plain ES module; the only library is graphql-ws (loaded before this file as `graphqlWs`).
// Credentials live in sessionStorage and go out as `Authorization` on HTTP and in the
// websocket's connection_init; there is no cookie.

const AUTH_KEY = "coursepulse.authorization";
const main = document.getElementById("main");
const statusLine = document.getElementById("connection");

/** Ids of the events each live view received since it opened, by view ("course:7",
 * "roster:7"): for people debugging the page, and for the browser tests. */
export const received = { eventIds: {} };
window.coursepulse = received;

let authorization = sessionStorage.getItem(AUTH_KEY);
let me = null;
let client = null;
const subscriptions = new Map(); // key -> dispose()

// ------------------------------------------------------------------ HTTP

class ApiError extends Error {
  constructor(errors) {
    super(errors.map((error) => error.message).join("; "));
    this.codes = errors.map((error) => error.extensions?.code);
  }
}

async function graphql(query, variables = {}) {
  const response = await fetch("/graphql", {
    method: "POST",
    headers: {
      "Content-Type": "application/json",
      Authorization: authorization,
      // The service then answers bad credentials without a Basic challenge, so the browser
      // does not open its own login dialog over this page's form.
      "X-Requested-With": "XMLHttpRequest",
    },
    body: JSON.stringify({ query, variables }),
  });
  const body = await response.json();
  if (body.errors) throw new ApiError(body.errors);
  return body.data;
}

// ------------------------------------------------------------------ live events

function websocketURL() {
  const url = new URL("/graphql", window.location.href);
  url.protocol = url.protocol === "https:" ? "wss:" : "ws:";
  return url.toString();
}

function setConnection(state) {
  statusLine.dataset.state = state;
  statusLine.textContent =
    state === "live" ? "Live" : state === "reconnecting" ? "Reconnecting…" : "Connecting…";
}

function liveClient() {
  if (client) return client;
  client = graphqlWs.createClient({
    url: websocketURL(),
    connectionParams: () => ({ Authorization: authorization }),
    lazy: true,
    keepAlive: 10_000,
    retryAttempts: Infinity,
    shouldRetry: () => true,
    retryWait: (retries) => new Promise((resolve) => setTimeout(resolve, Math.min(250 * 2 ** retries, 3_000))),
    on: {
      connecting: () => setConnection(statusLine.dataset.state === "live" ? "reconnecting" : "connecting"),
      connected: () => setConnection("live"),
      closed: () => {
        if (subscriptions.size) setConnection("reconnecting");
      },
    },
  });
  return client;
}

/**
 * Follow a subscription field, resuming after the last event seen on every reconnect.
 * graphql-ws sends the same payload object again when it reconnects, so `after` is kept in
 * its variables and moved forward with every event: nothing is lost or delivered twice.
 */
function follow(key, field, variables, onEvent) {
  stopFollowing(key);
  const seen = (received.eventIds[key] = []);
  const payload = {
    query: `subscription($courseId: ID!, $after: ID) {
      ${field}(courseId: $courseId, after: $after) {
        id kind courseId userId lessonId progressPercentage completedLessons totalLessons
      }
    }`,
    variables: { ...variables },
  };
  const dispose = liveClient().subscribe(payload, {
    next: ({ data, errors }) => {
      if (errors) return showError(new ApiError(errors));
      const event = data[field];
      if (payload.variables.after !== null && Number(event.id) <= Number(payload.variables.after)) return;
      payload.variables.after = event.id;
      seen.push(Number(event.id));
      onEvent(event);
    },
    error: (error) => showError(error instanceof Error ? error : new Error("The live connection failed")),
    complete: () => {},
  });
  subscriptions.set(key, dispose);
}

function stopFollowing(key) {
  subscriptions.get(key)?.();
  subscriptions.delete(key);
}

function stopAll() {
  for (const key of [...subscriptions.keys()]) stopFollowing(key);
}

// ------------------------------------------------------------------ markup

function element(tag, attributes = {}, ...children) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attributes)) {
    if (name === "text") node.textContent = value;
    else if (name.startsWith("on")) node.addEventListener(name.slice(2), value);
    else if (value !== null && value !== undefined && value !== false) node.setAttribute(name, value === true ? "" : value);
  }
  node.append(...children.filter((child) => child !== null && child !== undefined));
  return node;
}

function progressBar(label, percentage) {
  const fill = element("span", { class: "fill" });
  const bar = element(
    "div",
    { class: "bar", role: "progressbar", "aria-label": label, "aria-valuemin": "0", "aria-valuemax": "100" },
    fill,
    element("span", { class: "value" }),
  );
  setBar(bar, percentage);
  return bar;
}

function setBar(bar, percentage) {
  bar.setAttribute("aria-valuenow", String(percentage));
  bar.querySelector(".fill").style.width = `${percentage}%`;
  bar.querySelector(".value").textContent = `${percentage}%`;
}

function showError(error) {
  const alert = document.getElementById("alert");
  alert.textContent = error.message;
  alert.hidden = false;
}

function clearError() {
  document.getElementById("alert").hidden = true;
}

function render(...children) {
  clearError();
  main.replaceChildren(...children.filter((child) => child !== null && child !== undefined));
}

// ------------------------------------------------------------------ sign in

function signInPage(message = "") {
  stopAll();
  const username = element("input", { id: "username", name: "username", autocomplete: "username", required: true });
  const password = element("input", { id: "password", name: "password", type: "password", autocomplete: "current-password", required: true });
  const form = element(
    "form",
    { class: "card sign-in", "aria-labelledby": "sign-in-title" },
    element("h1", { id: "sign-in-title", text: "Sign in to coursepulse" }),
    element("label", { for: "username", text: "Username" }),
    username,
    element("label", { for: "password", text: "Password" }),
    password,
    message ? element("p", { class: "error", role: "alert", text: message }) : null,
    element("button", { type: "submit", text: "Sign in" }),
  );
  form.addEventListener("submit", async (submitted) => {
    submitted.preventDefault();
    authorization = "Basic " + btoa(String.fromCodePoint(...new TextEncoder().encode(`${username.value}:${password.value}`)));
    try {
      await loadViewer();
      sessionStorage.setItem(AUTH_KEY, authorization);
      route();
    } catch (error) {
      authorization = null;
      signInPage(error.codes?.includes("invalid_credentials") || !me ? "Wrong username or password." : error.message);
    }
  });
  document.getElementById("account").replaceChildren();
  render(form);
  username.focus();
}

async function loadViewer() {
  const data = await graphql("{ me { id username displayName role } }");
  if (!data.me) throw new Error("Wrong username or password.");
  me = data.me;
  document.getElementById("account").replaceChildren(
    element("span", { text: `${me.displayName} (${me.role.toLowerCase()})` }),
    element("button", { type: "button", class: "link", text: "Sign out", onclick: signOut }),
  );
}

function signOut() {
  stopAll();
  client?.dispose();
  client = null;
  me = null;
  authorization = null;
  sessionStorage.removeItem(AUTH_KEY);
  window.location.hash = "";
  signInPage();
}

// ------------------------------------------------------------------ student pages

async function myCoursesPage() {
  const data = await graphql(`{
    myCourses { courseId progressPercentage completedLessons totalLessons lastEventId course { title } }
    courses { id title instructors { id } }
  }`);
  const list = element("ul", { class: "courses", "aria-label": "My courses" });
  for (const progress of data.myCourses) {
    const bar = progressBar(progress.course.title, progress.progressPercentage);
    list.append(
      element(
        "li",
        { class: "card" },
        element("a", { href: `#/course/${progress.courseId}`, text: progress.course.title }),
        bar,
      ),
    );
    follow(`course:${progress.courseId}`, "progressUpdated", { courseId: progress.courseId, after: progress.lastEventId }, (event) =>
      setBar(bar, event.progressPercentage),
    );
  }
  const taught = data.courses.filter(
    (course) => me.role === "ADMIN" || course.instructors.some((instructor) => instructor.id === me.id),
  );
  render(
    element("h1", { text: "My courses" }),
    data.myCourses.length ? list : element("p", { text: "You are not enrolled in any course yet." }),
    taught.length
      ? element(
          "section",
          { "aria-labelledby": "teaching-title" },
          element("h2", { id: "teaching-title", text: "Courses I teach" }),
          element(
            "ul",
            { class: "taught" },
            ...taught.map((course) => element("li", {}, element("a", { href: `#/roster/${course.id}`, text: course.title }))),
          ),
        )
      : null,
  );
}

async function coursePage(courseId) {
  const data = await graphql(
    `query($courseId: ID!) {
      courseProgress(courseId: $courseId) {
        progressPercentage
        lastEventId
        course { title }
        nextLesson { id }
        lessons { completed locked unlocksAt lesson { id title order } }
      }
    }`,
    { courseId },
  );
  const progress = data.courseProgress;
  // Some lessons wait for others or for a date: a completion may open another one.
  const gated = progress.lessons.some(({ locked }) => locked);
  const bar = progressBar(progress.course.title, progress.progressPercentage);
  const items = new Map();
  const list = element("ol", { class: "lessons", "aria-label": "Lessons" });
  for (const { completed, locked, unlocksAt, lesson } of progress.lessons) {
    const box = element("input", { type: "checkbox", id: `lesson-${lesson.id}`, checked: completed });
    box.checked = completed;
    box.disabled = locked;
    box.addEventListener("change", () => toggleLesson(courseId, lesson.id, box));
    const note = locked
      ? element("span", {
          class: "locked",
          text: unlocksAt ? ` (opens on ${new Date(unlocksAt).toLocaleString()})` : " (after the lessons before it)",
        })
      : null;
    const item = element("li", { "data-lesson-id": lesson.id }, box, element("label", { for: box.id, text: lesson.title }), note);
    items.set(lesson.id, { item, box });
    list.append(item);
  }
  const highlightNext = () => {
    let next = null;
    for (const [id, { item, box }] of items) {
      const isNext = next === null && !box.checked;
      if (isNext) next = id;
      item.classList.toggle("next", isNext);
      if (isNext) item.setAttribute("aria-current", "step");
      else item.removeAttribute("aria-current");
    }
  };
  highlightNext();
  render(
    element("p", {}, element("a", { href: "#/", text: "← My courses" })),
    element("h1", { text: progress.course.title }),
    bar,
    list,
  );
  follow(`course:${courseId}`, "progressUpdated", { courseId, after: progress.lastEventId }, (event) => {
    const opensOthers = gated && (event.kind === "LESSON_COMPLETED" || event.kind === "LESSON_INCOMPLETED");
    const startedOver = event.kind === "PROGRESS_RESET";
    if (opensOthers || startedOver || (event.kind === "PROGRESS_RECALCULATED" && event.totalLessons !== items.size)) {
      // The course gained or lost a lesson: show it as it is now.
      coursePage(courseId).catch(showError);
      return;
    }
    setBar(bar, event.progressPercentage);
    const lesson = items.get(event.lessonId);
    if (lesson && (event.kind === "LESSON_COMPLETED" || event.kind === "LESSON_INCOMPLETED")) {
      lesson.box.checked = event.kind === "LESSON_COMPLETED";
      highlightNext();
    }
  });
}

async function toggleLesson(courseId, lessonId, box) {
  const mutation = box.checked ? "completeLesson" : "incompleteLesson";
  box.disabled = true;
  try {
    await graphql(
      `mutation($courseId: ID!, $lessonId: ID!) { ${mutation}(courseId: $courseId, lessonId: $lessonId) { message } }`,
      { courseId, lessonId },
    );
  } catch (error) {
    box.checked = !box.checked;
    showError(error);
  } finally {
    box.disabled = false;
  }
}

// ------------------------------------------------------------------ instructor pages

// One query reads one snapshot: the roster follows courseActivity from the newest event
// of that same picture, so nothing between the read and the subscription is missed.
const ROSTER = `query($courseId: ID!) {
  course(id: $courseId) { title }
  courseStats(courseId: $courseId) {
    lastEventId enrolledCount activeCount completedCount averageProgress completionRate
  }
  courseStudents(courseId: $courseId, perPage: 100, orderBy: PROGRESS, order: DESC) {
    total
    nodes { userId displayName username progressPercentage completedLessons status }
  }
}`;

async function rosterPage(courseId) {
  const data = await graphql(ROSTER, { courseId });
  const rows = new Map();
  const body = element("tbody");
  const stats = element("dl", { class: "stats", "aria-label": "Course statistics" });
  const showStats = (s) =>
    stats.replaceChildren(
      ...[
        ["Enrolled", s.enrolledCount],
        ["Active", s.activeCount],
        ["Completed", s.completedCount],
        ["Average progress", `${Math.round(s.averageProgress)}%`],
        ["Completion rate", `${Math.round(s.completionRate * 100)}%`],
      ].map(([name, value]) => element("div", {}, element("dt", { text: name }), element("dd", { text: String(value) }))),
    );
  const sortRows = () => {
    const ordered = [...rows.values()].sort(
      (a, b) => b.percentage - a.percentage || a.name.localeCompare(b.name),
    );
    body.replaceChildren(...ordered.map((row) => row.element));
  };
  const addRow = (student) => {
    const bar = progressBar(student.displayName, student.progressPercentage);
    const row = {
      percentage: student.progressPercentage,
      name: student.displayName,
      bar,
      element: element(
        "tr",
        { "data-user-id": student.userId },
        element("th", { scope: "row", text: student.displayName }),
        element("td", {}, bar),
      ),
    };
    rows.set(student.userId, row);
  };
  data.courseStudents.nodes.forEach(addRow);
  sortRows();
  showStats(data.courseStats);
  render(
    element("p", {}, element("a", { href: "#/", text: "← My courses" })),
    element("h1", { text: `${data.course.title}: roster` }),
    stats,
    element(
      "table",
      { class: "roster", "aria-label": "Roster by progress" },
      element("thead", {}, element("tr", {}, element("th", { scope: "col", text: "Student" }), element("th", { scope: "col", text: "Progress" }))),
      body,
    ),
  );
  let refresh = null;
  const refreshSoon = () => {
    clearTimeout(refresh);
    refresh = setTimeout(async () => {
      try {
        const fresh = await graphql(ROSTER, { courseId });
        showStats(fresh.courseStats);
        for (const student of fresh.courseStudents.nodes) if (!rows.has(student.userId)) addRow(student);
        sortRows();
      } catch (error) {
        showError(error);
      }
    }, 200);
  };
  const after = data.courseStats.lastEventId;
  follow(`roster:${courseId}`, "courseActivity", { courseId, after }, (event) => {
    const row = rows.get(event.userId);
    if (row) {
      row.percentage = event.progressPercentage;
      setBar(row.bar, event.progressPercentage);
      sortRows();
    }
    refreshSoon();
  });
}

// ------------------------------------------------------------------ routing

async function route() {
  if (!authorization) return signInPage();
  stopAll();
  try {
    if (!me) await loadViewer();
    const [, page, id] = window.location.hash.match(/^#\/(course|roster)\/(\d+)$/) || [];
    if (page === "course") await coursePage(id);
    else if (page === "roster") await rosterPage(id);
    else await myCoursesPage();
  } catch (error) {
    if (error.codes?.includes("unauthenticated") || error.codes?.includes("invalid_credentials")) {
      authorization = null;
      sessionStorage.removeItem(AUTH_KEY);
      return signInPage("Please sign in again.");
    }
    showError(error);
  }
}

window.addEventListener("hashchange", route);
route();
