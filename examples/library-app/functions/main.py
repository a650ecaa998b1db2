"""The library app's Cloud Functions: its own (`lend_book`) and firetasks' for its jobs."""

from firebase_admin import initialize_app
from firebase_functions import https_fn
from firetasks import TaskProcessor, TaskQueue, sweep_trigger, task_trigger, wake_trigger

from library import loans
from library.handlers import registry

initialize_app()


@https_fn.on_call()
def lend_book(request: https_fn.CallableRequest) -> dict:
    """{memberUid, email, title} from a librarian (the `librarian` claim): lend a book; a job
    mails its receipt."""
    if request.auth is None:
        raise https_fn.HttpsError(https_fn.FunctionsErrorCode.UNAUTHENTICATED, "sign in first")
    if request.auth.token.get("librarian") is not True:
        raise https_fn.HttpsError(https_fn.FunctionsErrorCode.PERMISSION_DENIED,
                                  "only librarians lend books")
    data = request.data if isinstance(request.data, dict) else {}
    try:
        loan, jobs = loans.lend(data.get("memberUid"), data.get("email"), data.get("title"))
    except ValueError as exc:
        raise https_fn.HttpsError(https_fn.FunctionsErrorCode.INVALID_ARGUMENT, str(exc)) from exc
    return {"loan": loan.path, "jobs": [job.path for job in jobs]}


# firetasks: process the jobs under any document (loans/{loanId}/jobs/{jobId}), wake delayed ones
# and retries at their runAt (the function must be named wakeTasks), sweep up lost ones.
queue = TaskQueue(registry, collections=("jobs",))
processor = TaskProcessor(queue)
process_jobs = task_trigger(processor, name="process_jobs")
wakeTasks = wake_trigger(processor)
sweep_jobs = sweep_trigger(processor, name="sweep_jobs")
