"""The monitored subjects: list and get (read), create, change and delete (admin).

Edits go through ``SubjectStore.edit`` (compare-and-set), so two analysts editing at once never
lose a change, and every worker applies them within ``YUQING_SUBJECTS_RELOAD_S``. An invalid
definition is refused with 422 and the reason before anything is written.
"""

from __future__ import annotations

from collections.abc import Callable

from fastapi import APIRouter, Request, Response

from pipeline.api.auth import AdminAccess, ReadAccess
from pipeline.api.errors import ApiProblem
from pipeline.api.guard import WRITE_RESPONSES
from pipeline.api.params import SubjectPath
from pipeline.api.state import api_state
from pipeline.domain.subjects import SubjectError
from pipeline.domain.subjects.model import Subject, SubjectSet

router = APIRouter(tags=["subjects"])


class _Conflict(SubjectError):
    """Raised inside an edit so that the store writes nothing; answered as 409."""


class _Missing(SubjectError):
    """Raised inside an edit so that the store writes nothing; answered as 404."""


def _same(a: str, b: str) -> bool:
    return a.casefold() == b.casefold()  # the store compares names ignoring case


def _edit(request: Request, change: Callable[[SubjectSet], SubjectSet]) -> SubjectSet:
    state = api_state(request)
    try:
        return state.subjects.edit(change)
    except _Conflict as exc:
        raise ApiProblem(409, str(exc)) from None
    except _Missing as exc:
        raise ApiProblem(404, str(exc)) from None
    finally:
        state.forget_monitored()  # the next known-subject check reads the store again


@router.get("/subjects", response_model=SubjectSet, summary="The monitored subject set")
def list_subjects(request: Request, _who: ReadAccess) -> SubjectSet:
    return api_state(request).subjects.load()


@router.get("/subjects/{name}", response_model=Subject, summary="One monitored subject")
def get_subject(request: Request, _who: ReadAccess, name: SubjectPath) -> Subject:
    subject = api_state(request).subjects.load().get(name)
    if subject is None:
        raise ApiProblem(404, f"no monitored subject named {name!r}")
    return subject


@router.post(
    "/subjects",
    response_model=SubjectSet,
    status_code=201,
    responses=WRITE_RESPONSES,
    summary="Create a subject (admin)",
)
def create_subject(request: Request, _who: AdminAccess, subject: Subject) -> SubjectSet:
    def change(current: SubjectSet) -> SubjectSet:
        if any(_same(s.name, subject.name) for s in current.subjects):
            raise _Conflict(f"a subject named {subject.name!r} exists; change it with PUT /api/v1/subjects/{{name}}")
        return current.revised([*current.subjects, subject])

    return _edit(request, change)


@router.put(
    "/subjects/{name}", response_model=SubjectSet, responses=WRITE_RESPONSES, summary="Change a subject (admin)"
)
def change_subject(request: Request, _who: AdminAccess, name: SubjectPath, subject: Subject) -> SubjectSet:
    """Replaces the definition of an existing subject; the body's name must be the path's."""
    if subject.name != name:
        raise ApiProblem(422, f"the body names {subject.name!r} but the path names {name!r}")

    def change(current: SubjectSet) -> SubjectSet:
        if current.get(name) is None:
            raise _Missing(f"no monitored subject named {name!r}; create it with POST /api/v1/subjects")
        return current.revised([subject if s.name == name else s for s in current.subjects])

    return _edit(request, change)


@router.delete(
    "/subjects/{name}", status_code=204, responses=WRITE_RESPONSES, summary="Stop monitoring a subject (admin)"
)
def delete_subject(request: Request, _who: AdminAccess, name: SubjectPath) -> Response:
    def change(current: SubjectSet) -> SubjectSet:
        if current.get(name) is None:
            raise _Missing(f"no monitored subject named {name!r}")
        return current.revised([s for s in current.subjects if s.name != name])

    _edit(request, change)
    return Response(status_code=204)
