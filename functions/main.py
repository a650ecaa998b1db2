"""Cloud Functions entry points: the Functions runtime loads the functions defined here."""

from firebase_functions import options

from firetasks import task_trigger
from shop.handlers import registry

options.set_global_options(region="us-central1")

# Every `tasks` subcollection one level down: orders/{orderId}/tasks/{taskId}, users/..., ...
# Another path needs one more line, e.g.
# process_invoice_jobs = task_trigger(registry, name="process_invoice_jobs",
#                                     document="invoices/{invoiceId}/jobs/{taskId}")
process_tasks = task_trigger(registry, name="process_tasks")
