"""The demo `make dev` runs: seeded orders end as the README says, and the retry works."""

from tools import demo


def test_the_demo_seeds_one_failure_that_customer_care_can_fix(db):
    demo.seed(db)
    tasks = demo.wait_processed(db)
    states = {(t.reference.parent.parent.id, t.get("action")): t.get("state") for t in tasks}
    assert states == {
        (order, action): "failed" if (order, action) == (demo.BAD_ORDER, "sendConfirmationEmail")
        else "completed"
        for order in demo.DEMO_ORDERS for action in ("sendConfirmationEmail", "initiateProcessing")
    }

    demo.retry(db)
    retried = demo.wait_processed(db)
    assert {t.get("state") for t in retried} == {"completed"}
