"""Authoring: courses, lessons, instructors and users, as their authors and everyone else see it.

Covers issue 2, section 3 "Authoring": createCourse, the courses/course queries' visibility of
drafts, updateCourse (publishing), addLesson, renameLesson, deleteLesson (progress recomputed
for every student), reorderLessons, addInstructor and createUser; and that a failing
mutation writes nothing. Mostly over GraphQL HTTP, plus resolver-level tests at the end.
"""

from typing import Any

import pytest
from aiohttp.test_utils import TestClient
from sqlalchemy import func, select
from sqlmodel import SQLModel

from coursepulse.models import (
    Course,
    CourseInstructor,
    CourseStatus,
    Enrollment,
    EnrollmentStatus,
    ProgressEvent,
    ProgressEventKind,
    Role,
    User,
)
from coursepulse.models.db import Database
from coursepulse.resolvers import completions, courses, enrollments, users
from coursepulse.resolvers.courses import CourseChanges
from coursepulse.resolvers.errors import (
    Forbidden,
    InvalidInput,
    NotFound,
    Unauthenticated,
)
from tests.conftest import (
    PASSWORD,
    Account,
    School,
    error_codes,
    graphql,
    make_course,
    make_user,
)

# The tables, for checks of what was stored.
COURSE_TABLE = Course.__table__
INSTRUCTOR_TABLE = CourseInstructor.__table__
ENROLLMENT_TABLE = Enrollment.__table__
EVENT_TABLE = ProgressEvent.__table__
USER_TABLE = User.__table__

# ---- GraphQL documents ---------------------------------------------------------------

COURSE_FIELDS = """
    id slug title description status totalLessons
    lessons { id title order }
    instructors { id username }
"""

CREATE_COURSE = f"""
mutation CreateCourse($input: CourseInput!) {{
  createCourse(input: $input) {{ {COURSE_FIELDS} }}
}}"""

UPDATE_COURSE = f"""
mutation UpdateCourse($id: ID!, $input: CourseUpdateInput!) {{
  updateCourse(id: $id, input: $input) {{ {COURSE_FIELDS} }}
}}"""

COURSES = "query Courses { courses { id slug status } }"

COURSE = f"""
query Course($id: ID!) {{
  course(id: $id) {{ {COURSE_FIELDS} }}
}}"""

ADD_LESSON = """
mutation AddLesson($courseId: ID!, $input: LessonInput!) {
  addLesson(courseId: $courseId, input: $input) { id courseId title order }
}"""

RENAME_LESSON = """
mutation RenameLesson($id: ID!, $title: String!) {
  renameLesson(id: $id, title: $title) { id courseId title order }
}"""

DELETE_LESSON = f"""
mutation DeleteLesson($id: ID!) {{
  deleteLesson(id: $id) {{ {COURSE_FIELDS} }}
}}"""

REORDER_LESSONS = f"""
mutation ReorderLessons($courseId: ID!, $lessonIds: [ID!]!) {{
  reorderLessons(courseId: $courseId, lessonIds: $lessonIds) {{ {COURSE_FIELDS} }}
}}"""

ADD_INSTRUCTOR = f"""
mutation AddInstructor($courseId: ID!, $userId: ID!) {{
  addInstructor(courseId: $courseId, userId: $userId) {{ {COURSE_FIELDS} }}
}}"""

CREATE_USER = """
mutation CreateUser($input: UserInput!) {
  createUser(input: $input) { id username displayName role }
}"""

ME = "query Me { me { id username displayName role } }"

ENROLL = """
mutation Enroll($courseId: ID!) {
  enroll(courseId: $courseId) { message progress { status } }
}"""

UNENROLL = "mutation Unenroll($courseId: ID!) { unenroll(courseId: $courseId) { message } }"

COMPLETE_LESSON = """
mutation CompleteLesson($courseId: ID!, $lessonId: ID!) {
  completeLesson(courseId: $courseId, lessonId: $lessonId) { progressPercentage }
}"""

COURSE_PROGRESS = """
query CourseProgress($courseId: ID!) {
  courseProgress(courseId: $courseId) {
    status progressPercentage completedLessons totalLessons completedAt
    nextLesson { id title order }
    lessons { lesson { id } completed }
  }
}"""

COURSE_STUDENTS = """
query CourseStudents($courseId: ID!) {
  courseStudents(courseId: $courseId, orderBy: DISPLAY_NAME, order: ASC) {
    total
    nodes { username status progressPercentage completedLessons completedAt }
  }
}"""


# ---- helpers ---------------------------------------------------------------------------


def data(body: dict[str, Any], field: str) -> Any:
    """The field of a successful answer; fails with the errors otherwise."""
    assert "errors" not in body, body["errors"]
    return body["data"][field]


async def create_course(client: TestClient, as_: Account | None, **fields: Any) -> dict[str, Any]:
    body = await graphql(client, CREATE_COURSE, {"input": fields}, as_=as_)
    return data(body, "createCourse")


async def course_ids(client: TestClient, as_: Account | None) -> set[int]:
    body = await graphql(client, COURSES, as_=as_)
    return {int(course["id"]) for course in data(body, "courses")}


async def lessons_of(
    client: TestClient, course_id: int, as_: Account
) -> list[tuple[int, str, int]]:
    """(id, title, order) of each lesson, as the course query lists them."""
    body = await graphql(client, COURSE, {"id": str(course_id)}, as_=as_)
    course = data(body, "course")
    assert course is not None
    return [(int(row["id"]), row["title"], row["order"]) for row in course["lessons"]]


async def enroll(client: TestClient, student: Account, course_id: int) -> None:
    data(await graphql(client, ENROLL, {"courseId": str(course_id)}, as_=student), "enroll")


async def complete(
    client: TestClient, student: Account, course_id: int, lesson_ids: list[int]
) -> None:
    for lesson_id in lesson_ids:
        body = await graphql(
            client,
            COMPLETE_LESSON,
            {"courseId": str(course_id), "lessonId": str(lesson_id)},
            as_=student,
        )
        data(body, "completeLesson")


async def progress_of(client: TestClient, student: Account, course_id: int) -> dict[str, Any]:
    body = await graphql(client, COURSE_PROGRESS, {"courseId": str(course_id)}, as_=student)
    return data(body, "courseProgress")


async def other_instructor(db: Database) -> Account:
    return await make_user(db, "other_teacher", role=Role.INSTRUCTOR, display_name="Alan Turing")


async def outsiders(db: Database, school: School) -> list[tuple[Account | None, str]]:
    """Who is not staff of the school's course, and the error code each one gets."""
    return [
        (await other_instructor(db), "forbidden"),
        (school.student, "forbidden"),
        (None, "unauthenticated"),
    ]


def who(account: Account | None) -> str:
    return account.username if account else "anonymous"


async def count_rows(db: Database, model: type[SQLModel]) -> int:
    async with db.read() as tx:
        return int(await tx.scalar(select(func.count()).select_from(model.__table__)) or 0)


# ---- createCourse ----------------------------------------------------------------------


async def test_instructor_creates_a_draft_course_taught_by_them(
    client: TestClient, school: School
) -> None:
    course = await create_course(client, school.instructor, title="Intro to Web Dev!")

    assert course["status"] == "DRAFT"
    assert course["slug"] == "intro-to-web-dev"
    assert course["title"] == "Intro to Web Dev!"
    assert course["description"] is None
    assert course["totalLessons"] == 0
    assert course["lessons"] == []
    assert course["instructors"] == [{"id": str(school.instructor.id), "username": "instructor"}]


async def test_admin_creates_a_course_with_explicit_slug_status_and_description(
    client: TestClient, school: School
) -> None:
    course = await create_course(
        client,
        school.admin,
        title="Databases",
        slug="db-101",
        description="Tables and joins",
        status="PUBLISHED",
    )

    assert course["slug"] == "db-101"
    assert course["description"] == "Tables and joins"
    assert course["status"] == "PUBLISHED"
    assert [row["username"] for row in course["instructors"]] == ["admin"]
    assert int(course["id"]) in await course_ids(client, None)


async def test_courses_with_the_same_title_get_distinct_slugs(
    client: TestClient, school: School
) -> None:
    first = await create_course(client, school.instructor, title="Python Basics")
    second = await create_course(client, school.instructor, title="Python Basics")
    third = await create_course(client, school.admin, title="python   basics")

    slugs = [first["slug"], second["slug"], third["slug"]]
    assert slugs[0] == "python-basics"
    assert len(set(slugs)) == 3
    assert all(slug.startswith("python-basics") for slug in slugs)


async def test_only_instructors_and_admins_create_courses(
    client: TestClient, school: School
) -> None:
    before = await course_ids(client, school.admin)

    for account, code in [(school.student, "forbidden"), (None, "unauthenticated")]:
        body = await graphql(client, CREATE_COURSE, {"input": {"title": "Sneaky"}}, as_=account)

        assert error_codes(body) == [code], who(account)
        assert body["data"] is None
    assert await course_ids(client, school.admin) == before


async def test_an_invalid_explicit_slug_is_invalid_input(
    client: TestClient, school: School
) -> None:
    before = await course_ids(client, school.admin)

    for slug in ["Has Spaces", "UPPER", "-leading", "trailing-", "a--b", "", "x" * 121]:
        body = await graphql(
            client,
            CREATE_COURSE,
            {"input": {"title": "Fine", "slug": slug}},
            as_=school.instructor,
        )

        assert error_codes(body) == ["invalid_input"], slug
        assert body["errors"][0]["extensions"]["status"] == 400
        assert body["errors"][0]["extensions"]["field"] == "slug"
    assert await course_ids(client, school.admin) == before


async def test_a_taken_slug_is_invalid_input_and_nothing_is_written(
    client: TestClient, school: School
) -> None:
    taken = await create_course(client, school.instructor, title="Original", slug="taken")
    before = await course_ids(client, school.admin)

    body = await graphql(
        client,
        CREATE_COURSE,
        {"input": {"title": "Copy", "slug": "taken"}},
        as_=school.admin,
    )

    assert error_codes(body) == ["invalid_input"]
    assert await course_ids(client, school.admin) == before
    original = data(await graphql(client, COURSE, {"id": taken["id"]}, as_=school.admin), "course")
    assert original["title"] == "Original"


async def test_an_empty_or_overlong_title_is_invalid_input_and_nothing_is_written(
    client: TestClient, db: Database, school: School
) -> None:
    courses_before = await count_rows(db, Course)
    staff_before = await count_rows(db, CourseInstructor)

    for title in ["", "   ", "x" * 201]:
        body = await graphql(
            client, CREATE_COURSE, {"input": {"title": title}}, as_=school.instructor
        )

        assert error_codes(body) == ["invalid_input"], title
        assert body["errors"][0]["extensions"]["field"] == "title"
    assert await count_rows(db, Course) == courses_before
    assert await count_rows(db, CourseInstructor) == staff_before


# ---- who sees which course -------------------------------------------------------------


async def test_drafts_are_seen_by_their_instructors_and_admins_only(
    client: TestClient, db: Database, school: School
) -> None:
    teacher = await other_instructor(db)
    draft = int((await create_course(client, school.instructor, title="Work in progress"))["id"])
    archived = int((await create_course(client, school.instructor, title="Old stuff"))["id"])
    data(
        await graphql(
            client,
            UPDATE_COURSE,
            {"id": str(archived), "input": {"status": "ARCHIVED"}},
            as_=school.instructor,
        ),
        "updateCourse",
    )
    published = school.course_id

    assert await course_ids(client, None) == {published}
    assert await course_ids(client, school.student) == {published}
    assert await course_ids(client, teacher) == {published}
    assert await course_ids(client, school.instructor) == {published, draft, archived}
    assert await course_ids(client, school.admin) == {published, draft, archived}


async def test_a_draft_course_reads_as_null_for_students_and_anonymous(
    client: TestClient, school: School
) -> None:
    draft = await create_course(client, school.instructor, title="Secret plans")

    for account in (school.student, None):
        body = await graphql(client, COURSE, {"id": draft["id"]}, as_=account)

        assert data(body, "course") is None, who(account)
    mine = await graphql(client, COURSE, {"id": draft["id"]}, as_=school.instructor)
    assert data(mine, "course")["title"] == "Secret plans"


# ---- updateCourse ----------------------------------------------------------------------


async def test_publishing_a_draft_makes_it_visible_and_enrollable(
    client: TestClient, school: School
) -> None:
    draft = await create_course(client, school.instructor, title="Fresh course")
    course_id = draft["id"]
    data(
        await graphql(
            client,
            ADD_LESSON,
            {"courseId": course_id, "input": {"title": "Welcome"}},
            as_=school.instructor,
        ),
        "addLesson",
    )
    refused = await graphql(client, ENROLL, {"courseId": course_id}, as_=school.student)
    assert error_codes(refused) == ["not_found"]

    body = await graphql(
        client,
        UPDATE_COURSE,
        {"id": course_id, "input": {"status": "PUBLISHED"}},
        as_=school.instructor,
    )

    assert data(body, "updateCourse")["status"] == "PUBLISHED"
    assert int(course_id) in await course_ids(client, None)
    anonymous = data(await graphql(client, COURSE, {"id": course_id}), "course")
    assert anonymous["title"] == "Fresh course"
    enrolled = await graphql(client, ENROLL, {"courseId": course_id}, as_=school.student)
    assert data(enrolled, "enroll")["progress"]["status"] == "ACTIVE"


async def test_a_partial_update_keeps_the_other_fields(client: TestClient, school: School) -> None:
    created = await create_course(
        client, school.instructor, title="Algebra", slug="algebra", description="Numbers"
    )

    first = await graphql(
        client,
        UPDATE_COURSE,
        {"id": created["id"], "input": {"description": "Letters too"}},
        as_=school.instructor,
    )
    second = await graphql(
        client,
        UPDATE_COURSE,
        {"id": created["id"], "input": {"title": "Linear Algebra"}},
        as_=school.instructor,
    )

    assert data(first, "updateCourse")["title"] == "Algebra"
    updated = data(second, "updateCourse")
    assert updated["title"] == "Linear Algebra"
    assert updated["slug"] == "algebra"
    assert updated["description"] == "Letters too"
    assert updated["status"] == "DRAFT"
    stored = data(await graphql(client, COURSE, {"id": created["id"]}, as_=school.admin), "course")
    assert stored == updated
    same_slug = await graphql(
        client,
        UPDATE_COURSE,
        {"id": created["id"], "input": {"slug": "algebra"}},
        as_=school.instructor,
    )
    assert data(same_slug, "updateCourse")["slug"] == "algebra"


async def test_the_admin_updates_any_course(client: TestClient, school: School) -> None:
    body = await graphql(
        client,
        UPDATE_COURSE,
        {"id": str(school.course_id), "input": {"slug": "web-dev", "status": "ARCHIVED"}},
        as_=school.admin,
    )

    updated = data(body, "updateCourse")
    assert (updated["slug"], updated["status"]) == ("web-dev", "ARCHIVED")
    assert await course_ids(client, None) == set()


async def test_only_the_course_staff_update_a_course(
    client: TestClient, db: Database, school: School
) -> None:
    for account, code in await outsiders(db, school):
        body = await graphql(
            client,
            UPDATE_COURSE,
            {"id": str(school.course_id), "input": {"title": "Hijacked", "status": "DRAFT"}},
            as_=account,
        )

        assert error_codes(body) == [code], who(account)
    course = data(await graphql(client, COURSE, {"id": str(school.course_id)}), "course")
    assert course["title"] == "Introduction to Web Development"
    assert course["status"] == "PUBLISHED"


async def test_updating_a_missing_course_is_not_found(client: TestClient, school: School) -> None:
    for course_id, code, status in [
        ("999999", "not_found", 404),
        ("0", "not_found", 404),
        ("9" * 30, "not_found", 404),
        ("-1", "invalid_input", 400),
        ("abc", "invalid_input", 400),
    ]:
        body = await graphql(
            client,
            UPDATE_COURSE,
            {"id": course_id, "input": {"title": "Ghost"}},
            as_=school.admin,
        )

        assert error_codes(body) == [code], course_id
        assert body["errors"][0]["extensions"]["status"] == status


async def test_a_failed_update_writes_none_of_its_fields(
    client: TestClient, school: School
) -> None:
    await create_course(client, school.instructor, title="Other", slug="other")

    taken = await graphql(
        client,
        UPDATE_COURSE,
        {"id": str(school.course_id), "input": {"title": "Renamed", "slug": "other"}},
        as_=school.instructor,
    )
    malformed = await graphql(
        client,
        UPDATE_COURSE,
        {"id": str(school.course_id), "input": {"description": "New", "slug": "Bad Slug"}},
        as_=school.instructor,
    )
    blank = await graphql(
        client,
        UPDATE_COURSE,
        {"id": str(school.course_id), "input": {"title": "  ", "status": "ARCHIVED"}},
        as_=school.instructor,
    )

    assert error_codes(taken) == error_codes(malformed) == error_codes(blank) == ["invalid_input"]
    course = data(await graphql(client, COURSE, {"id": str(school.course_id)}), "course")
    assert course["title"] == "Introduction to Web Development"
    assert course["slug"] == "introduction-to-web-development"
    assert course["description"] is None
    assert course["status"] == "PUBLISHED"


# ---- addLesson -------------------------------------------------------------------------


async def test_a_lesson_is_appended_when_order_is_omitted(
    client: TestClient, school: School
) -> None:
    body = await graphql(
        client,
        ADD_LESSON,
        {"courseId": str(school.course_id), "input": {"title": "  Wrap-up  "}},
        as_=school.instructor,
    )

    lesson = data(body, "addLesson")
    assert lesson["title"] == "Wrap-up"
    assert lesson["order"] == 5
    assert lesson["courseId"] == str(school.course_id)
    course = data(await graphql(client, COURSE, {"id": str(school.course_id)}), "course")
    assert course["totalLessons"] == 5
    assert course["lessons"][-1] == {"id": lesson["id"], "title": "Wrap-up", "order": 5}


@pytest.mark.parametrize(
    ("order", "titles"),
    [
        (1, ["New", "Lesson 1", "Lesson 2", "Lesson 3", "Lesson 4"]),
        (3, ["Lesson 1", "Lesson 2", "New", "Lesson 3", "Lesson 4"]),
        (5, ["Lesson 1", "Lesson 2", "Lesson 3", "Lesson 4", "New"]),
    ],
)
async def test_inserting_a_lesson_at_an_order_shifts_the_others(
    client: TestClient, school: School, order: int, titles: list[str]
) -> None:
    body = await graphql(
        client,
        ADD_LESSON,
        {"courseId": str(school.course_id), "input": {"title": "New", "order": order}},
        as_=school.instructor,
    )

    new = data(body, "addLesson")
    assert new["order"] == order
    lessons = await lessons_of(client, school.course_id, school.instructor)
    assert [title for _id, title, _order in lessons] == titles
    assert [position for _id, _title, position in lessons] == [1, 2, 3, 4, 5]
    assert lessons[order - 1][0] == int(new["id"])


async def test_an_order_outside_one_to_n_plus_one_is_invalid_input(
    client: TestClient, school: School
) -> None:
    before = await lessons_of(client, school.course_id, school.instructor)

    for order in [0, -1, 6, 2**31 - 1]:
        body = await graphql(
            client,
            ADD_LESSON,
            {"courseId": str(school.course_id), "input": {"title": "Nowhere", "order": order}},
            as_=school.instructor,
        )

        assert error_codes(body) == ["invalid_input"], order
        assert body["errors"][0]["extensions"]["field"] == "order"
    assert await lessons_of(client, school.course_id, school.instructor) == before


async def test_a_lesson_needs_a_title(client: TestClient, school: School) -> None:
    for title in ["", "   "]:
        body = await graphql(
            client,
            ADD_LESSON,
            {"courseId": str(school.course_id), "input": {"title": title}},
            as_=school.instructor,
        )

        assert error_codes(body) == ["invalid_input"], repr(title)
    course = data(await graphql(client, COURSE, {"id": str(school.course_id)}), "course")
    assert course["totalLessons"] == 4


async def test_only_the_course_staff_add_lessons(
    client: TestClient, db: Database, school: School
) -> None:
    for account, code in await outsiders(db, school):
        body = await graphql(
            client,
            ADD_LESSON,
            {"courseId": str(school.course_id), "input": {"title": "Intruder"}},
            as_=account,
        )

        assert error_codes(body) == [code], who(account)
    course = data(await graphql(client, COURSE, {"id": str(school.course_id)}), "course")
    assert course["totalLessons"] == 4


async def test_adding_a_lesson_to_a_completed_course_makes_the_student_active_again(
    client: TestClient, school: School
) -> None:
    await enroll(client, school.student, school.course_id)
    await complete(client, school.student, school.course_id, school.lesson_ids)
    done = await progress_of(client, school.student, school.course_id)
    assert (done["status"], done["progressPercentage"]) == ("COMPLETED", 100)
    assert done["completedAt"] is not None

    body = await graphql(
        client,
        ADD_LESSON,
        {"courseId": str(school.course_id), "input": {"title": "Bonus"}},
        as_=school.instructor,
    )
    bonus = data(body, "addLesson")

    progress = await progress_of(client, school.student, school.course_id)
    assert progress["status"] == "ACTIVE"
    assert progress["completedAt"] is None
    assert progress["completedLessons"] == 4
    assert progress["totalLessons"] == 5
    assert progress["progressPercentage"] == 80
    assert progress["nextLesson"] == {"id": bonus["id"], "title": "Bonus", "order": 5}


# ---- renameLesson ----------------------------------------------------------------------


async def test_the_staff_rename_a_lesson(client: TestClient, school: School) -> None:
    lesson_id = str(school.lesson_ids[1])

    by_instructor = await graphql(
        client, RENAME_LESSON, {"id": lesson_id, "title": "HTML basics"}, as_=school.instructor
    )
    by_admin = await graphql(
        client, RENAME_LESSON, {"id": lesson_id, "title": " CSS basics "}, as_=school.admin
    )

    assert data(by_instructor, "renameLesson")["title"] == "HTML basics"
    assert data(by_admin, "renameLesson") == {
        "id": lesson_id,
        "courseId": str(school.course_id),
        "title": "CSS basics",
        "order": 2,
    }
    lessons = await lessons_of(client, school.course_id, school.student)
    assert lessons[1] == (school.lesson_ids[1], "CSS basics", 2)


async def test_renaming_a_lesson_is_refused(
    client: TestClient, db: Database, school: School
) -> None:
    attempts = [(account, "Mine now", code) for account, code in await outsiders(db, school)]
    attempts += [(school.instructor, "", "invalid_input"), (school.admin, "  ", "invalid_input")]

    for account, title, code in attempts:
        body = await graphql(
            client, RENAME_LESSON, {"id": str(school.lesson_ids[0]), "title": title}, as_=account
        )

        assert error_codes(body) == [code], (who(account), title)
    lessons = await lessons_of(client, school.course_id, school.instructor)
    assert lessons[0][1] == "Lesson 1"


async def test_renaming_a_missing_lesson_is_not_found(client: TestClient, school: School) -> None:
    body = await graphql(
        client, RENAME_LESSON, {"id": "987654", "title": "Ghost"}, as_=school.admin
    )

    assert error_codes(body) == ["not_found"]


# ---- deleteLesson ----------------------------------------------------------------------


async def test_deleting_a_lesson_closes_up_the_positions(
    client: TestClient, school: School
) -> None:
    body = await graphql(
        client, DELETE_LESSON, {"id": str(school.lesson_ids[1])}, as_=school.instructor
    )

    course = data(body, "deleteLesson")
    assert course["totalLessons"] == 3
    expected = [
        {"id": str(school.lesson_ids[0]), "title": "Lesson 1", "order": 1},
        {"id": str(school.lesson_ids[2]), "title": "Lesson 3", "order": 2},
        {"id": str(school.lesson_ids[3]), "title": "Lesson 4", "order": 3},
    ]
    assert course["lessons"] == expected
    stored = data(await graphql(client, COURSE, {"id": str(school.course_id)}), "course")
    assert stored["lessons"] == expected
    assert stored["totalLessons"] == 3


async def test_deleting_a_lesson_recomputes_every_enrolled_student(
    client: TestClient, db: Database, school: School
) -> None:
    # Given three students at different points of the four lessons
    l1, l2, l3, l4 = school.lesson_ids
    third = await make_user(db, "max_mustermann", display_name="Max Mustermann")
    finished = await make_user(db, "zoe_zed", display_name="Zoe Zed")
    for student in (school.student, school.other_student, third, finished):
        await enroll(client, student, school.course_id)
    await complete(client, school.student, school.course_id, [l1, l2])  # did the deleted one
    await complete(client, school.other_student, school.course_id, [l1, l3, l4])  # all but it
    await complete(client, third, school.course_id, [l1])  # next lesson is the deleted one
    await complete(client, finished, school.course_id, [l1, l2, l3, l4])
    assert (await progress_of(client, third, school.course_id))["nextLesson"]["id"] == str(l2)

    # When the instructor deletes lesson 2
    data(
        await graphql(client, DELETE_LESSON, {"id": str(l2)}, as_=school.instructor), "deleteLesson"
    )

    # Then each student's counts, percentage, status and next lesson are recomputed
    john = await progress_of(client, school.student, school.course_id)
    assert john["completedLessons"] == 1
    assert john["totalLessons"] == 3
    assert john["progressPercentage"] == 33
    assert john["status"] == "ACTIVE"
    assert john["completedAt"] is None
    assert john["nextLesson"]["id"] == str(l3)
    assert [row["lesson"]["id"] for row in john["lessons"]] == [str(l1), str(l3), str(l4)]

    jane = await progress_of(client, school.other_student, school.course_id)
    assert jane["completedLessons"] == 3
    assert jane["progressPercentage"] == 100
    assert jane["status"] == "COMPLETED"
    assert jane["completedAt"] is not None
    assert jane["nextLesson"] is None

    max_ = await progress_of(client, third, school.course_id)
    assert max_["completedLessons"] == 1
    assert max_["nextLesson"] == {"id": str(l3), "title": "Lesson 3", "order": 2}

    zoe = await progress_of(client, finished, school.course_id)
    assert (zoe["status"], zoe["completedLessons"], zoe["progressPercentage"]) == (
        "COMPLETED",
        3,
        100,
    )

    # And the roster the instructor reads agrees
    roster = data(
        await graphql(
            client, COURSE_STUDENTS, {"courseId": str(school.course_id)}, as_=school.instructor
        ),
        "courseStudents",
    )
    assert roster["total"] == 4
    assert [
        (row["username"], row["status"], row["completedLessons"], row["progressPercentage"])
        for row in roster["nodes"]
    ] == [
        ("jane_roe", "COMPLETED", 3, 100),
        ("john_doe", "ACTIVE", 1, 33),
        ("max_mustermann", "ACTIVE", 1, 33),
        ("zoe_zed", "COMPLETED", 3, 100),
    ]


async def test_deleting_the_last_lesson_leaves_an_empty_course_nobody_has_completed(
    client: TestClient, db: Database, school: School
) -> None:
    course_id, (only,) = await make_course(db, school.instructor, title="Tiny", lessons=1)
    await enroll(client, school.student, course_id)
    await complete(client, school.student, course_id, [only])
    assert (await progress_of(client, school.student, course_id))["status"] == "COMPLETED"

    body = await graphql(client, DELETE_LESSON, {"id": str(only)}, as_=school.instructor)

    course = data(body, "deleteLesson")
    assert (course["totalLessons"], course["lessons"]) == (0, [])
    progress = await progress_of(client, school.student, course_id)
    assert progress["totalLessons"] == 0
    assert progress["completedLessons"] == 0
    assert progress["progressPercentage"] == 0
    assert progress["status"] == "ACTIVE"
    assert progress["completedAt"] is None
    assert progress["nextLesson"] is None


async def test_only_the_course_staff_delete_lessons(
    client: TestClient, db: Database, school: School
) -> None:
    before = await lessons_of(client, school.course_id, school.instructor)

    for account, code in await outsiders(db, school):
        body = await graphql(client, DELETE_LESSON, {"id": str(school.lesson_ids[0])}, as_=account)

        assert error_codes(body) == [code], who(account)
    assert await lessons_of(client, school.course_id, school.instructor) == before


async def test_deleting_a_missing_lesson_is_not_found(client: TestClient, school: School) -> None:
    body = await graphql(client, DELETE_LESSON, {"id": "424242"}, as_=school.admin)

    assert error_codes(body) == ["not_found"]
    course = data(await graphql(client, COURSE, {"id": str(school.course_id)}), "course")
    assert course["totalLessons"] == 4


# ---- reorderLessons --------------------------------------------------------------------


async def test_reordering_lessons_changes_lessons_and_next_lesson(
    client: TestClient, school: School
) -> None:
    l1, l2, l3, l4 = school.lesson_ids
    await enroll(client, school.student, school.course_id)
    await complete(client, school.student, school.course_id, [l1])
    assert (await progress_of(client, school.student, school.course_id))["nextLesson"]["id"] == str(
        l2
    )

    body = await graphql(
        client,
        REORDER_LESSONS,
        {"courseId": str(school.course_id), "lessonIds": [str(l4), str(l1), str(l3), str(l2)]},
        as_=school.instructor,
    )

    expected = [
        (l4, "Lesson 4", 1),
        (l1, "Lesson 1", 2),
        (l3, "Lesson 3", 3),
        (l2, "Lesson 2", 4),
    ]
    answered = data(body, "reorderLessons")["lessons"]
    assert [(int(row["id"]), row["title"], row["order"]) for row in answered] == expected
    assert await lessons_of(client, school.course_id, school.student) == expected
    progress = await progress_of(client, school.student, school.course_id)
    assert progress["nextLesson"] == {"id": str(l4), "title": "Lesson 4", "order": 1}
    assert progress["completedLessons"] == 1


async def test_a_reorder_that_does_not_list_every_lesson_once_changes_nothing(
    client: TestClient, db: Database, school: School
) -> None:
    l1, l2, l3, l4 = school.lesson_ids
    _other_course, (foreign, *_rest) = await make_course(
        db, school.instructor, title="Another", lessons=2
    )
    mistakes = {
        "missing one": [l4, l3, l2],
        "one twice": [l4, l3, l2, l1, l1],
        "one twice, one missing": [l4, l3, l2, l2],
        "another course's lesson instead": [l4, l3, l2, foreign],
        "another course's lesson as well": [l4, l3, l2, l1, foreign],
        "none": [],
    }
    before = await lessons_of(client, school.course_id, school.instructor)
    assert [lesson_id for lesson_id, _title, _order in before] == [l1, l2, l3, l4]

    for mistake, lesson_ids in mistakes.items():
        body = await graphql(
            client,
            REORDER_LESSONS,
            {"courseId": str(school.course_id), "lessonIds": [str(i) for i in lesson_ids]},
            as_=school.instructor,
        )

        assert error_codes(body) == ["invalid_input"], mistake
        assert body["errors"][0]["extensions"]["field"] == "lessonIds"
        assert await lessons_of(client, school.course_id, school.instructor) == before, mistake


async def test_a_reorder_with_a_non_numeric_id_is_invalid_input(
    client: TestClient, school: School
) -> None:
    ids = [str(i) for i in school.lesson_ids[:3]] + ["abc"]

    body = await graphql(
        client,
        REORDER_LESSONS,
        {"courseId": str(school.course_id), "lessonIds": ids},
        as_=school.instructor,
    )

    assert error_codes(body) == ["invalid_input"]


async def test_only_the_course_staff_reorder_lessons(
    client: TestClient, db: Database, school: School
) -> None:
    for account, code in await outsiders(db, school):
        body = await graphql(
            client,
            REORDER_LESSONS,
            {
                "courseId": str(school.course_id),
                "lessonIds": [str(i) for i in reversed(school.lesson_ids)],
            },
            as_=account,
        )

        assert error_codes(body) == [code], who(account)
    lessons = await lessons_of(client, school.course_id, school.instructor)
    assert [lesson_id for lesson_id, _title, _order in lessons] == school.lesson_ids


# ---- addInstructor ---------------------------------------------------------------------


async def test_an_added_instructor_sees_the_roster_and_updates_the_course(
    client: TestClient, db: Database, school: School
) -> None:
    teacher = await other_instructor(db)
    await enroll(client, school.student, school.course_id)
    course = {"courseId": str(school.course_id)}
    assert error_codes(await graphql(client, COURSE_STUDENTS, course, as_=teacher)) == ["forbidden"]

    body = await graphql(
        client, ADD_INSTRUCTOR, {**course, "userId": str(teacher.id)}, as_=school.instructor
    )

    assert [row["username"] for row in data(body, "addInstructor")["instructors"]] == [
        "instructor",
        "other_teacher",
    ]
    roster = data(await graphql(client, COURSE_STUDENTS, course, as_=teacher), "courseStudents")
    assert [row["username"] for row in roster["nodes"]] == ["john_doe"]
    updated = await graphql(
        client,
        UPDATE_COURSE,
        {"id": str(school.course_id), "input": {"title": "Co-taught"}},
        as_=teacher,
    )
    assert data(updated, "updateCourse")["title"] == "Co-taught"


async def test_adding_an_instructor_twice_lists_them_once(
    client: TestClient, db: Database, school: School
) -> None:
    teacher = await other_instructor(db)
    variables = {"courseId": str(school.course_id), "userId": str(teacher.id)}

    first = await graphql(client, ADD_INSTRUCTOR, variables, as_=school.admin)
    second = await graphql(client, ADD_INSTRUCTOR, variables, as_=school.instructor)

    assert (
        data(first, "addInstructor")["instructors"] == data(second, "addInstructor")["instructors"]
    )
    course = data(await graphql(client, COURSE, {"id": str(school.course_id)}), "course")
    assert [row["username"] for row in course["instructors"]] == ["instructor", "other_teacher"]


async def test_adding_an_unknown_user_as_instructor_is_not_found(
    client: TestClient, school: School
) -> None:
    body = await graphql(
        client,
        ADD_INSTRUCTOR,
        {"courseId": str(school.course_id), "userId": "777777"},
        as_=school.instructor,
    )

    assert error_codes(body) == ["not_found"]
    course = data(await graphql(client, COURSE, {"id": str(school.course_id)}), "course")
    assert [row["username"] for row in course["instructors"]] == ["instructor"]


async def test_only_the_course_staff_add_instructors(
    client: TestClient, db: Database, school: School
) -> None:
    attempts = await outsiders(db, school)
    teacher = attempts[0][0]
    assert teacher is not None

    for account, code in attempts:
        body = await graphql(
            client,
            ADD_INSTRUCTOR,
            {"courseId": str(school.course_id), "userId": str(teacher.id)},
            as_=account,
        )

        assert error_codes(body) == [code], who(account)
    course = data(await graphql(client, COURSE, {"id": str(school.course_id)}), "course")
    assert [row["username"] for row in course["instructors"]] == ["instructor"]


# ---- createUser ------------------------------------------------------------------------


async def test_an_admin_creates_a_student_who_can_then_sign_in(
    client: TestClient, school: School
) -> None:
    body = await graphql(
        client,
        CREATE_USER,
        {"input": {"username": "new_kid", "password": "a long password", "displayName": "New Kid"}},
        as_=school.admin,
    )

    created = data(body, "createUser")
    assert created["username"] == "new_kid"
    assert created["displayName"] == "New Kid"
    assert created["role"] == "STUDENT"
    newcomer = Account(viewer=school.student.viewer, username="new_kid", password="a long password")
    me = data(await graphql(client, ME, as_=newcomer), "me")
    assert me == created
    wrong = Account(viewer=school.student.viewer, username="new_kid", password="not the password")
    refused = await graphql(client, ME, as_=wrong, expect_status=401)
    assert error_codes(refused) == ["invalid_credentials"]


async def test_a_created_instructor_may_author_courses(client: TestClient, school: School) -> None:
    body = await graphql(
        client,
        CREATE_USER,
        {"input": {"username": "prof", "password": PASSWORD, "role": "INSTRUCTOR"}},
        as_=school.admin,
    )

    assert data(body, "createUser")["role"] == "INSTRUCTOR"
    assert data(body, "createUser")["displayName"] == "prof"
    prof = Account(viewer=school.student.viewer, username="prof")
    course = await create_course(client, prof, title="Prof's course")
    assert [row["username"] for row in course["instructors"]] == ["prof"]


async def test_only_admins_create_users(client: TestClient, db: Database, school: School) -> None:
    before = await count_rows(db, User)

    for account, code in [
        (school.instructor, "forbidden"),
        (school.student, "forbidden"),
        (None, "unauthenticated"),
    ]:
        body = await graphql(
            client,
            CREATE_USER,
            {"input": {"username": "intruder", "password": PASSWORD, "role": "ADMIN"}},
            as_=account,
        )

        assert error_codes(body) == [code], who(account)
    assert await count_rows(db, User) == before


async def test_a_taken_or_malformed_username_or_a_short_password_is_invalid_input(
    client: TestClient, db: Database, school: School
) -> None:
    before = await count_rows(db, User)
    attempts = [
        ("john_doe", "another password", "username"),  # taken
        ("  john_doe ", "another password", "username"),  # taken, once trimmed
        ("ab", PASSWORD, "username"),  # too short
        ("has space", PASSWORD, "username"),
        ("semi;colon", PASSWORD, "username"),
        ("", PASSWORD, "username"),
        ("x" * 61, PASSWORD, "username"),
        ("fresh_user", "short", "password"),
        ("fresh_user", "", "password"),
    ]

    for username, password, field in attempts:
        body = await graphql(
            client,
            CREATE_USER,
            {"input": {"username": username, "password": password}},
            as_=school.admin,
        )

        assert error_codes(body) == ["invalid_input"], (username, password)
        assert body["errors"][0]["extensions"]["field"] == field

    assert await count_rows(db, User) == before
    # the existing john_doe keeps his own password
    assert data(await graphql(client, ME, as_=school.student), "me")["username"] == "john_doe"


# ---- resolver level --------------------------------------------------------------------


async def test_resolver_create_course_checks_the_author_before_writing(
    db: Database, school: School
) -> None:
    before = await count_rows(db, Course)

    with pytest.raises(Unauthenticated):
        async with db.write() as tx:
            await courses.create_course(tx, None, title="Anonymous")
    with pytest.raises(Forbidden):
        async with db.write() as tx:
            await courses.create_course(tx, school.student.viewer, title="Student's")

    async def twice_with_one_slug() -> None:
        async with db.write() as tx:
            for _ in range(2):
                await courses.create_course(tx, school.instructor.viewer, title="Dup", slug="x")

    with pytest.raises(InvalidInput):
        await twice_with_one_slug()

    # the failed transaction also dropped the first, successful course of its block
    assert await count_rows(db, Course) == before


async def test_resolver_create_course_makes_unique_slugs(db: Database, school: School) -> None:
    async with db.write() as tx:
        first = await courses.create_course(tx, school.admin.viewer, title="Café Crème!")
        second = await courses.create_course(tx, school.admin.viewer, title="Cafe creme")
        third = await courses.create_course(tx, school.admin.viewer, title="!!!")

    assert first.slug == "cafe-creme"
    assert second.slug != first.slug
    assert second.slug.startswith("cafe-creme")
    assert third.slug  # a title without letters still gets a usable slug
    assert first.status == CourseStatus.DRAFT
    async with db.read() as tx:
        rows = await tx.all(
            select(INSTRUCTOR_TABLE.c.course_id).where(
                INSTRUCTOR_TABLE.c.user_id == school.admin.id
            )
        )
    assert {row.course_id for row in rows} == {first.id, second.id, third.id}


async def test_resolver_failed_update_rolls_back_fields_already_set(
    db: Database, school: School
) -> None:
    async with db.write() as tx:
        await courses.create_course(tx, school.admin.viewer, title="Taken", slug="taken")

    with pytest.raises(InvalidInput):
        async with db.write() as tx:
            await courses.update_course(
                tx,
                school.instructor.viewer,
                school.course_id,
                CourseChanges(title="Half written", description="nope", slug="taken"),
            )

    async with db.read() as tx:
        course = await tx.first(select(COURSE_TABLE).where(COURSE_TABLE.c.id == school.course_id))
    assert course is not None
    assert (course.title, course.description) == ("Introduction to Web Development", None)


async def test_resolver_update_of_a_missing_course_is_not_found(
    db: Database, school: School
) -> None:
    with pytest.raises(NotFound):
        async with db.write() as tx:
            await courses.update_course(
                tx, school.admin.viewer, 10**9, CourseChanges(title="Ghost")
            )


async def test_resolver_lesson_changes_keep_unenrolled_students_unenrolled(
    db: Database, school: School
) -> None:
    # Given john completed lessons 1 and 2 and then left the course
    l1, l2, _l3, _l4 = school.lesson_ids
    async with db.write() as tx:
        await enrollments.enroll(tx, school.student.viewer, school.course_id)
        for lesson_id in (l1, l2):
            await completions.complete_lesson(
                tx, school.student.viewer, school.course_id, lesson_id
            )
        await enrollments.unenroll(tx, school.student.viewer, school.course_id)

    # When lesson 2 is deleted and a lesson is added
    async with db.write() as tx:
        await courses.delete_lesson(tx, school.instructor.viewer, l2)
        await courses.add_lesson(
            tx, school.instructor.viewer, school.course_id, title="Extra", order=1
        )

    # Then his kept progress has one lesson less and he stays unenrolled
    async with db.read() as tx:
        enrollment = await tx.first(
            select(ENROLLMENT_TABLE).where(ENROLLMENT_TABLE.c.user_id == school.student.id)
        )
    assert enrollment is not None
    assert enrollment.status == EnrollmentStatus.UNENROLLED
    assert enrollment.completed_lessons == 1
    assert enrollment.completed_at is None

    # And re-enrolling restores exactly that
    async with db.write() as tx:
        record = await enrollments.enroll(tx, school.student.viewer, school.course_id)
    assert record.enrollment.status == EnrollmentStatus.ACTIVE
    assert (record.enrollment.completed_lessons, record.course.total_lessons) == (1, 4)
    assert record.percentage == 25


async def test_resolver_reorder_rejects_bad_lists_and_keeps_positions(
    db: Database, school: School
) -> None:
    l1, l2, l3, l4 = school.lesson_ids

    for bad in ([l1, l2, l3], [l1, l2, l3, l4, l4], [l1, l2, l3, 10**9]):
        with pytest.raises(InvalidInput):
            async with db.write() as tx:
                await courses.reorder_lessons(tx, school.instructor.viewer, school.course_id, bad)

    async with db.read() as tx:
        lessons = await courses.course_lessons(tx, school.course_id)
    assert [(lesson.id, lesson.position) for lesson in lessons] == [
        (l1, 1),
        (l2, 2),
        (l3, 3),
        (l4, 4),
    ]


async def test_resolver_add_instructor_is_idempotent(db: Database, school: School) -> None:
    teacher = await other_instructor(db)

    for _ in range(2):
        async with db.write() as tx:
            await courses.add_instructor(tx, school.instructor.viewer, school.course_id, teacher.id)

    async with db.read() as tx:
        rows = await tx.all(
            select(INSTRUCTOR_TABLE.c.user_id).where(
                INSTRUCTOR_TABLE.c.course_id == school.course_id
            )
        )
    assert sorted(row.user_id for row in rows) == sorted([school.instructor.id, teacher.id])
    with pytest.raises(NotFound):
        async with db.write() as tx:
            await courses.add_instructor(tx, school.admin.viewer, school.course_id, 10**9)


async def test_resolver_create_user_is_for_admins(db: Database, school: School) -> None:
    with pytest.raises(Forbidden):
        async with db.write() as tx:
            await users.create_user_as(
                tx, school.instructor.viewer, username="sneaky", password=PASSWORD
            )
    with pytest.raises(Unauthenticated):
        async with db.write() as tx:
            await users.create_user_as(tx, None, username="sneaky", password=PASSWORD)

    async with db.write() as tx:
        user = await users.create_user_as(
            tx, school.admin.viewer, username="welcome", password=PASSWORD
        )
    assert Role(user.role) == Role.STUDENT
    async with db.read() as tx:
        welcome = await users.user_to_sign_in(tx, "welcome")
        sneaky = await tx.first(select(USER_TABLE).where(USER_TABLE.c.username == "sneaky"))
    assert sneaky is None
    assert (await users.verify_sign_in(welcome, PASSWORD)).viewer.user_id == user.id


async def test_resolver_delete_lesson_logs_the_course_completions_it_causes(
    db: Database, school: School
) -> None:
    l1, l2, l3, l4 = school.lesson_ids
    async with db.write() as tx:
        await enrollments.enroll(tx, school.other_student.viewer, school.course_id)
        for lesson_id in (l1, l3, l4):
            await completions.complete_lesson(
                tx, school.other_student.viewer, school.course_id, lesson_id
            )

    async with db.write() as tx:
        await courses.delete_lesson(tx, school.instructor.viewer, l2)

    async with db.read() as tx:
        rows = await tx.all(
            select(EVENT_TABLE.c.kind)
            .where(EVENT_TABLE.c.user_id == school.other_student.id)
            .order_by(EVENT_TABLE.c.id)
        )
    kinds = [row.kind for row in rows]
    assert kinds[-1] == ProgressEventKind.COURSE_COMPLETED
